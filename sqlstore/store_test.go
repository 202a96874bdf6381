package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
)

// writer prepares and activates (as Dispatcher.Register does) the write function fn.
func writer(t *testing.T, s *Store, fn string, p hook.Point, mods ...func(*hook.Rule)) hook.WriteAction {
	t.Helper()
	r := &hook.Rule{Name: "test." + fn, Point: p, Action: hook.RuleAction{Function: fn}}
	for _, m := range mods {
		m(r)
	}
	a, err := s.Prepare(r)
	if err == nil {
		err = s.Activate(t.Context(), []hook.Action{a})
	}
	if err != nil {
		t.Fatal(err)
	}
	return a.(hook.WriteAction)
}

func mustWrite(t *testing.T, w hook.WriteAction, e hook.Event) {
	t.Helper()
	if err := w.Write(context.Background(), e); err != nil {
		t.Fatal(err)
	}
}

func ids(msgs []*hook.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// TestAckNeverMovesBack: a client's position for a topic is the id of the newest message it
// acknowledged there; an ack of an older message (a late QoS 2 ack) leaves it, whether the
// two acks are written in one batch or in two.
func TestAckNeverMovesBack(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := t.Context()
			pub, ack := writer(t, s, hook.OnMessagePublish, hook.MessagePublish), writer(t, s, hook.OnMessageAcked, hook.MessageAcked)
			g := hook.NewIDGenerator("")
			var m []*hook.Message // m[1] .. m[4]
			for i := range 5 {
				m = append(m, &hook.Message{ID: g.Next(), Topic: "t/1", QoS: 1, Payload: []byte{byte('0' + i)}})
				if i > 0 {
					mustWrite(t, pub, &hook.PublishEvent{Message: m[i]})
				}
			}
			for _, sep := range []bool{false, true} {
				client := fmt.Sprint("c-", sep)
				mustWrite(t, ack, &hook.AckedEvent{ClientID: client, Message: m[3]})
				if sep {
					s.Flush(ctx)
				}
				mustWrite(t, ack, &hook.AckedEvent{ClientID: client, Message: m[1]})
				s.Flush(ctx)
				got, err := s.Fetch(ctx, client, "t/#", hook.OfflineOpts{})
				if err != nil || len(got) != 1 || got[0].ID != m[4].ID {
					t.Fatalf("separate batches %v: fetch after acking m3 then m1 = %v, %v; want [m4 %s]", sep, ids(got), err, m[4].ID)
				}
			}
		})
	}
}

// TestExpiry: messages older than the storing rule's expired_time are not fetched, and
// PurgeExpired deletes them (and only them).
func TestExpiry(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := t.Context()
			exp := writer(t, s, hook.OnMessagePublish, hook.MessagePublish, func(r *hook.Rule) { r.Topic = "exp/#"; r.ExpiredTime = time.Minute })
			keep := writer(t, s, hook.OnMessagePublish, hook.MessagePublish, func(r *hook.Rule) { r.Topic = "keep/#" })
			old, fresh := time.Now().Add(-2*time.Minute), time.Now()
			msgs := []*hook.Message{
				{ID: "old-exp", Topic: "exp/a", QoS: 1, Timestamp: old},
				{ID: "new-exp", Topic: "exp/a", QoS: 1, Timestamp: fresh},
				{ID: "old-keep", Topic: "keep/a", QoS: 1, Timestamp: old},
			}
			mustWrite(t, exp, &hook.PublishEvent{Message: msgs[0]})
			mustWrite(t, exp, &hook.PublishEvent{Message: msgs[1]})
			mustWrite(t, keep, &hook.PublishEvent{Message: msgs[2]})
			s.Flush(ctx)
			got, err := s.Fetch(ctx, "c", "#", hook.OfflineOpts{})
			if err != nil || len(got) != 2 || got[0].ID != "new-exp" || got[1].ID != "old-keep" {
				t.Fatalf("fetch before purge = %v, %v; want [new-exp old-keep]", ids(got), err)
			}
			n, err := s.PurgeExpired(ctx)
			if err != nil || n != 1 {
				t.Fatalf("PurgeExpired = %d, %v; want 1 deleted", n, err)
			}
			var left int64
			s.query(ctx, "SELECT COUNT(*) FROM mqtt_msg", nil, func(scan func(...any) error) error { return scan(&left) })
			if left != 2 {
				t.Errorf("%d rows left after the purge, want 2", left)
			}
		})
	}
}

// TestTransientFailureRetriedOnce: a write that times out behind a lock (PostgreSQL, MySQL) or
// on a busy database (SQLite) is retried once the lock is gone, and each message is stored
// once.
func TestTransientFailureRetriedOnce(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			s := openStore(t, Config{Dialect: d, DSN: dsnFor(t, d), EnsureSchema: true,
				Options: backend.Options{QueryTimeout: 200 * time.Millisecond, BatchInterval: time.Millisecond, Logger: quiet,
					Retry: backend.Retry{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}}})
			defer s.Close(ctx)
			pub := writer(t, s, hook.OnMessagePublish, hook.MessagePublish)
			unlock := lockMsgTable(t, s)
			g := hook.NewIDGenerator("")
			for range 50 {
				mustWrite(t, pub, &hook.PublishEvent{Message: &hook.Message{ID: g.Next(), Topic: "t", QoS: 1, Payload: []byte("x")}})
			}
			time.Sleep(600 * time.Millisecond)
			unlock()
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.Retried == 0 || st.Success != 50 || st.Failed != 0 {
				t.Errorf("stats %+v: want retries, 50 written, none failed", st)
			}
			got, err := s.Fetch(ctx, "c", "t", hook.OfflineOpts{})
			if err != nil || len(got) != 50 {
				t.Errorf("fetch: %d messages, %v; want 50", len(got), err)
			}
		})
	}
}

func TestTransientClassification(t *testing.T) {
	for _, c := range []struct {
		name string
		f    func(error) bool
		err  error
		want bool
	}{
		{"pg deadlock", pgTransient, &pgconn.PgError{Code: "40P01"}, true},
		{"pg serialization", pgTransient, &pgconn.PgError{Code: "40001"}, true},
		{"pg admin shutdown", pgTransient, &pgconn.PgError{Code: "57P01"}, true},
		{"pg connection", pgTransient, &pgconn.PgError{Code: "08006"}, true},
		{"pg unique", pgTransient, &pgconn.PgError{Code: "23505"}, false},
		{"pg syntax", pgTransient, &pgconn.PgError{Code: "42601"}, false},
		{"pg timeout", pgTransient, context.DeadlineExceeded, true},
		{"mysql deadlock", mysqlTransient, &mysql.MySQLError{Number: 1213}, true},
		{"mysql lock wait", mysqlTransient, &mysql.MySQLError{Number: 1205}, true},
		{"mysql duplicate", mysqlTransient, &mysql.MySQLError{Number: 1062}, false},
		{"mysql bad conn", mysqlTransient, mysql.ErrInvalidConn, true},
		{"mysql data too long", mysqlTransient, &mysql.MySQLError{Number: 1406}, false},
		{"sqlite other", sqliteTransient, errors.New("no such table"), false},
	} {
		if got := c.f(c.err); got != c.want {
			t.Errorf("%s: transient = %v, want %v", c.name, got, c.want)
		}
	}
	// A real SQLITE_BUSY: a second writer without a busy timeout.
	s := newStore(t, SQLite)
	unlock := lockMsgTable(t, s)
	defer unlock()
	db, err := sql.Open("sqlite", s.cfg.DSN+"?_pragma=busy_timeout(0)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.Exec("INSERT INTO mqtt_client (clientid) VALUES ('busy')")
	if err == nil || !sqliteTransient(err) {
		t.Errorf("write while another holds the lock: %v; want a transient SQLITE_BUSY", err)
	}
}

// TestOpenExisting: OpenPool and OpenDB use the caller's pool, which Close leaves open.
func TestOpenExisting(t *testing.T) {
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, dsnFor(t, Postgres))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := OpenPool(ctx, pool, Config{EnsureSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddSubscription(ctx, "c", hook.Subscription{Topic: "a/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	if err := pool.Ping(ctx); err != nil {
		t.Errorf("the pool was closed with the store: %v", err)
	}

	db, err := openSQLite(dsnFor(t, SQLite), backend.Options{PoolSize: 2, QueryTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err = OpenDB(ctx, db, Config{Dialect: SQLite, EnsureSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AddSubscription(ctx, "c", hook.Subscription{Topic: "a/#", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	subs, err := s.Subscriptions(ctx, "c")
	if err != nil || len(subs) != 1 || subs[0] != (hook.Subscription{Topic: "a/#", QoS: 1}) {
		t.Errorf("Subscriptions = %v, %v", subs, err)
	}
	s.Close(ctx)
	if err := db.PingContext(ctx); err != nil {
		t.Errorf("the db was closed with the store: %v", err)
	}
	if _, err := OpenDB(ctx, db, Config{Dialect: Postgres}); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("OpenDB for PostgreSQL: %v, want hook.ErrConfig", err)
	}
	if _, err := Open(ctx, Config{}); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("Open without a DSN: %v, want hook.ErrConfig", err)
	}
}

// TestSimpleProtocolRefused: pgx's simple protocol writes arguments into the statement text,
// so a DSN or pool asking for it is refused rather than silently splicing values.
func TestSimpleProtocolRefused(t *testing.T) {
	ctx := t.Context()
	dsn := dsnFor(t, Postgres) + "&default_query_exec_mode=simple_protocol"
	if _, err := Open(ctx, Config{Dialect: Postgres, DSN: dsn}); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("Open with the simple protocol: %v, want hook.ErrConfig", err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := OpenPool(ctx, pool, Config{}); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("OpenPool with the simple protocol: %v, want hook.ErrConfig", err)
	}
}

// TestCustomStatementsInOrder: a rule's statements run in order, in one transaction, with
// every value bound (a value that looks like SQL is stored as it is).
func TestCustomStatementsInOrder(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := t.Context()
			if err := s.execDDL(ctx, "CREATE TABLE conn (clientid VARCHAR(200), n INTEGER)"); err != nil {
				t.Fatal(err)
			}
			a, err := s.Prepare(&hook.Rule{Name: "custom", Point: hook.ClientConnected, Action: hook.RuleAction{SQL: []string{
				"DELETE FROM conn WHERE clientid = ${clientid}",
				"INSERT INTO conn (clientid, n) VALUES (${clientid}, 1)",
				"UPDATE conn SET n = n + 1 WHERE clientid = ${clientid}",
			}}})
			if err != nil {
				t.Fatal(err)
			}
			evil := "x'); DROP TABLE conn; --"
			for range 2 {
				mustWrite(t, a.(hook.WriteAction), &hook.ConnectedEvent{ClientID: evil})
			}
			s.Flush(ctx)
			var c string
			var n int64
			err = s.query(ctx, "SELECT clientid, n FROM conn", nil, func(scan func(...any) error) error { return scan(&c, &n) })
			if err != nil || c != evil || n != 2 {
				t.Errorf("conn = (%q, %d), %v; want (%q, 2)", c, n, err, evil)
			}
			_, err = s.Prepare(&hook.Rule{Name: "quoted", Point: hook.ClientConnected, Action: hook.RuleAction{SQL: []string{"INSERT INTO conn (clientid) VALUES ('${clientid}')"}}})
			if !errors.Is(err, template.ErrQuotedPlaceholder) || !strings.Contains(err.Error(), `"quoted"`) {
				t.Errorf("a placeholder inside quotes: %v, want ErrQuotedPlaceholder naming the rule", err)
			}
		})
	}
}

// TestSQLiteInMemory: ":memory:" is one private database on one connection.
func TestSQLiteInMemory(t *testing.T) {
	ctx := t.Context()
	s := openStore(t, Config{DSN: ":memory:", EnsureSchema: true, Options: testOptions})
	defer s.Close(ctx)
	pub := writer(t, s, hook.OnMessageStore, hook.MessagePublish)
	mustWrite(t, pub, &hook.PublishEvent{Message: &hook.Message{ID: "m", Topic: "$share/g/t", QoS: 0, Payload: []byte("x")}})
	s.Flush(ctx)
	got, err := s.Fetch(ctx, "c", "$share/g/$share/g/t", hook.OfflineOpts{})
	if err != nil || len(got) != 1 {
		t.Fatalf("fetch = %v, %v", ids(got), err)
	}
}
