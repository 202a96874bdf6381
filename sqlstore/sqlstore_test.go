package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// testOptions flush quickly, so that the suite's Flush calls are not what it waits for.
var testOptions = backend.Options{BatchInterval: time.Millisecond, QueryTimeout: 10 * time.Second}

// dsnFor returns a fresh namespace of dialect d: a database file in a temporary directory
// (SQLite), a schema (PostgreSQL) or a database (MySQL) of the test's own.
func dsnFor(t testing.TB, d Dialect) string {
	t.Helper()
	switch d {
	case Postgres:
		return testenv.Postgres(t)
	case MySQL:
		return testenv.MySQL(t)
	}
	return filepath.Join(t.TempDir(), "mqtt.db")
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(%v): %v", cfg.Dialect, err)
	}
	return s
}

// newStore opens a store of dialect d on a fresh namespace with its schema, closed at the
// end of the test unless already closed.
func newStore(t testing.TB, d Dialect) *Store {
	t.Helper()
	s := openStore(t, Config{Dialect: d, DSN: dsnFor(t, d), EnsureSchema: true, Options: testOptions, Node: "test@127.0.0.1"})
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

var dialectsUnderTest = []Dialect{SQLite, Postgres, MySQL}

func TestConformance(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			backendtest.Run(t, harness(d))
		})
	}
}

func storeOf(b hook.Backend) *Store { return b.(*Store) }

func harness(d Dialect) backendtest.Harness {
	return backendtest.Harness{
		New: func(t *testing.T) hook.Backend {
			return openStore(t, Config{Dialect: d, DSN: dsnFor(t, d), EnsureSchema: true, Options: testOptions})
		},
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend { return openStore(t, storeOf(old).cfg) },
		Twin:   func(t *testing.T, b hook.Backend) hook.Backend { return openStore(t, storeOf(b).cfg) },
		Features: backendtest.Features{
			Functions:        Functions,
			ExpiredTime:      true,
			MaxReturnedCount: true,
			TimeRange:        true,
			BinaryPayload:    true,
			WildcardFetch:    true,
			WildcardRetained: true,
		},
		Custom: &backendtest.CustomActions{
			Setup:  func(t *testing.T, b hook.Backend) { createRecordTable(t, storeOf(b)) },
			Record: recordAction,
			Read: func(ctx context.Context, b hook.Backend) ([]backendtest.Record, error) {
				return readRecords(ctx, storeOf(b))
			},
		},
	}
}

// The custom-action table: one column per placeholder, named after it; text for the strings
// (PostgreSQL and MySQL refuse NUL or invalid UTF-8 there, which the suite accepts as a
// counted failure), binary for the payload, integers for qos and ts.
func createRecordTable(t *testing.T, s *Store) {
	t.Helper()
	text, bin := "TEXT", "BLOB"
	switch s.Dialect() {
	case Postgres:
		bin = "bytea"
	case MySQL:
		text = "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
	}
	ddl := fmt.Sprintf("CREATE TABLE rec (clientid %[1]s, username %[1]s, peerhost %[1]s, node %[1]s, topic %[1]s, qos BIGINT, msgid %[1]s, payload %[2]s, ts BIGINT)", text, bin)
	if err := s.execDDL(context.Background(), ddl); err != nil {
		t.Fatalf("create rec: %v", err)
	}
}

var recordColumns = []string{"clientid", "username", "peerhost", "node", "topic", "qos", "msgid", "payload", "ts"}

func recordAction(vars []string) hook.RuleAction {
	cols := make([]string, len(vars))
	vals := make([]string, len(vars))
	for i, v := range vars {
		cols[i] = v
		vals[i] = "${" + v + "}"
	}
	return hook.RuleAction{SQL: []string{"INSERT INTO rec (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ")"}}
}

func readRecords(ctx context.Context, s *Store) ([]backendtest.Record, error) {
	var out []backendtest.Record
	err := s.query(ctx, "SELECT "+strings.Join(recordColumns, ", ")+" FROM rec", nil, func(scan func(...any) error) error {
		vals := make([]any, len(recordColumns))
		ptrs := make([]any, len(vals))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := scan(ptrs...); err != nil {
			return err
		}
		r := backendtest.Record{}
		for i, c := range recordColumns {
			switch v := vals[i].(type) {
			case nil:
			case []byte:
				r[c] = string(v)
			case string:
				r[c] = v
			case int64:
				r[c] = strconv.FormatInt(v, 10)
			case int32:
				r[c] = strconv.FormatInt(int64(v), 10)
			default:
				return fmt.Errorf("column %s: unexpected %T", c, v)
			}
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// TestWriteAndLookup is a direct check of each dialect's statements, independent of the suite.
func TestWriteAndLookup(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := context.Background()
			w := func(fn string, p hook.Point, topic string) hook.WriteAction {
				a, err := s.Prepare(&hook.Rule{Name: "r." + fn, Point: p, Topic: topic, Action: hook.RuleAction{Function: fn}})
				if err != nil {
					t.Fatal(err)
				}
				return a.(hook.WriteAction)
			}
			l := func(fn string, p hook.Point, opts hook.OfflineOpts) hook.LookupAction {
				a, err := s.Prepare(&hook.Rule{Name: "r." + fn, Point: p, Action: hook.RuleAction{Function: fn}, OfflineOpts: opts})
				if err != nil {
					t.Fatal(err)
				}
				return a.(hook.LookupAction)
			}
			pub, ret, ack := w(hook.OnMessagePublish, hook.MessagePublish, "#"), w(hook.OnMessageRetain, hook.MessagePublish, "#"), w(hook.OnMessageAcked, hook.MessageAcked, "#")
			ids := hook.NewIDGenerator("n")
			var msgs []*hook.Message
			for i, tp := range []string{"a/b", "a/c", "a", "a/b/c", "$SYS/x", "b/b", "A/b", "a/b "} {
				m := &hook.Message{ID: ids.Next(), From: "p", Topic: tp, QoS: 1, Retain: true, Payload: []byte{byte(i), 0, 0xff}, Timestamp: time.Now()}
				msgs = append(msgs, m)
				for _, a := range []hook.WriteAction{pub, ret} {
					if err := a.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := ack.Write(context.Background(), &hook.AckedEvent{ClientID: "c1", Message: msgs[0]}); err != nil {
				t.Fatal(err)
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Failed != 0 || st.Success != st.Matched {
				t.Fatalf("stats %+v", st)
			}
			fetch := l(hook.OnMessageFetch, hook.SessionSubscribed, hook.OfflineOpts{})
			for _, c := range []struct {
				client, filter string
				want           []int
			}{
				{"c1", "a/b", nil},
				{"c2", "a/b", []int{0}},
				{"c2", "a/+", []int{0, 1, 7}},
				{"c1", "a/#", []int{1, 2, 3, 7}},
				{"c2", "#", []int{0, 1, 2, 3, 5, 6, 7}},
				{"c2", "+/b", []int{0, 5, 6}},
				{"c2", "$SYS/#", []int{4}},
				{"c2", "a/b ", []int{7}},
			} {
				res, err := fetch.Lookup(ctx, &hook.SubscribedEvent{ClientID: c.client, Topic: c.filter, QoS: 1})
				if err != nil {
					t.Fatal(err)
				}
				var got []int
				for _, m := range res.Offline {
					for i, x := range msgs {
						if x.ID == m.ID {
							got = append(got, i)
							if string(m.Payload) != string(x.Payload) || m.Topic != x.Topic {
								t.Errorf("fetch %q: message %d = %q on %q, want %q on %q", c.filter, i, m.Payload, m.Topic, x.Payload, x.Topic)
							}
						}
					}
				}
				if fmt.Sprint(got) != fmt.Sprint(c.want) {
					t.Errorf("fetch %q for %s = %v, want %v", c.filter, c.client, got, c.want)
				}
				rs, err := s.Retained(ctx, c.filter)
				if err != nil {
					t.Fatal(err)
				}
				if len(rs) == 0 && c.client == "c2" {
					t.Errorf("retained %q: none", c.filter)
				}
			}
		})
	}
}

// TestPostgresTextPayload: an existing EMQX PostgreSQL schema (payload text) is used as it is:
// text payloads round-trip, others are refused by Write with ErrPayloadNotText; with
// MigratePayload the columns become bytea, keeping what they held.
func TestPostgresTextPayload(t *testing.T) {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	// The EMQX 4.x schema (emqx_backend_pgsql.sql), as the spec gives it.
	emqx := `CREATE TABLE mqtt_msg (id SERIAL8 primary key, msgid character varying(64), sender character varying(64),
  topic character varying(255), qos integer, retain integer, payload text, arrived timestamp without time zone);
CREATE TABLE mqtt_retain(id SERIAL8 primary key, topic character varying(255), msgid character varying(64),
  sender character varying(64), qos integer, payload text, arrived timestamp without time zone, UNIQUE (topic));
CREATE TABLE mqtt_acked (id SERIAL8 primary key, clientid character varying(64), topic character varying(64),
  mid integer, created timestamp without time zone, UNIQUE (clientid, topic))`
	s := openStore(t, Config{Dialect: Postgres, DSN: dsn, Options: testOptions})
	for _, st := range statements(emqx) {
		if err := s.execDDL(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	s.Close(ctx)

	s = openStore(t, Config{Dialect: Postgres, DSN: dsn, Options: testOptions, EnsureSchema: true})
	if !s.msgText.Load() || !s.retainText.Load() {
		t.Fatalf("text payload columns not detected")
	}
	a, err := s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageStore}})
	if err != nil {
		t.Fatal(err)
	}
	pub := a.(hook.WriteAction)
	text := &hook.Message{ID: "m1", Topic: "t", QoS: 1, Payload: []byte("héllo 'x'"), Timestamp: time.Now()}
	if err := pub.Write(context.Background(), &hook.PublishEvent{Message: text}); err != nil {
		t.Fatal(err)
	}
	for _, p := range [][]byte{{0}, {0xff, 0xfe}} {
		err := pub.Write(context.Background(), &hook.PublishEvent{Message: &hook.Message{ID: "bin", Topic: "t", QoS: 1, Payload: p}})
		if !errors.Is(err, ErrPayloadNotText) {
			t.Errorf("Write of payload %q to a text column: %v, want ErrPayloadNotText", p, err)
		}
	}
	s.Flush(ctx)
	got, err := s.Fetch(ctx, "c", "t", hook.OfflineOpts{})
	if err != nil || len(got) != 1 || string(got[0].Payload) != string(text.Payload) {
		t.Fatalf("fetch from the text column: %v, %v", got, err)
	}
	s.Close(ctx)

	s = openStore(t, Config{Dialect: Postgres, DSN: dsn, Options: testOptions, EnsureSchema: true, MigratePayload: true})
	defer s.Close(ctx)
	if s.msgText.Load() || s.retainText.Load() {
		t.Fatalf("MigratePayload left text payload columns")
	}
	a, _ = s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageStore}})
	bin := &hook.Message{ID: "m2", Topic: "t", QoS: 1, Payload: []byte{0, 0xff, 'x'}, Timestamp: time.Now()}
	if err := a.(hook.WriteAction).Write(context.Background(), &hook.PublishEvent{Message: bin}); err != nil {
		t.Fatal(err)
	}
	s.Flush(ctx)
	got, err = s.Fetch(ctx, "c", "t", hook.OfflineOpts{})
	if err != nil || len(got) != 2 || string(got[0].Payload) != string(text.Payload) || string(got[1].Payload) != string(bin.Payload) {
		t.Fatalf("fetch after migration: %v, %v", got, err)
	}
}

// TestMySQLExistingEMQXTables: EnsureSchema on the spec's MySQL tables adds the msgid, topic
// and arrived indexes, after which a message written twice is stored once.
func TestMySQLExistingEMQXTables(t *testing.T) {
	dsn := testenv.MySQL(t)
	ctx := context.Background()
	emqx := "CREATE TABLE `mqtt_msg` (`id` int(11) unsigned NOT NULL AUTO_INCREMENT, `msgid` varchar(64) DEFAULT NULL," +
		" `topic` varchar(180) NOT NULL, `sender` varchar(64) DEFAULT NULL, `node` varchar(64) DEFAULT NULL," +
		" `qos` tinyint(1) NOT NULL DEFAULT '0', `retain` tinyint(1) DEFAULT NULL, `payload` blob, `arrived` datetime NOT NULL," +
		" PRIMARY KEY (`id`), INDEX topic_index(`id`, `topic`)) ENGINE=InnoDB DEFAULT CHARSET=utf8MB4"
	s := openStore(t, Config{Dialect: MySQL, DSN: dsn, Options: testOptions})
	if err := s.execDDL(ctx, emqx); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	s = openStore(t, Config{Dialect: MySQL, DSN: dsn, Options: testOptions, EnsureSchema: true})
	defer s.Close(ctx)
	if err := s.EnsureSchema(ctx); err != nil { // a second run changes nothing
		t.Fatal(err)
	}
	var idx []string
	err := s.query(ctx, "SELECT DISTINCT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'mqtt_msg' ORDER BY index_name", nil,
		func(scan func(...any) error) error {
			var n string
			err := scan(&n)
			idx = append(idx, n)
			return err
		})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(idx, ","); got != "mqtt_msg_arrived_idx,mqtt_msg_msgid_key,mqtt_msg_topic_id_idx,PRIMARY,topic_index" {
		t.Errorf("indexes of mqtt_msg: %s", got)
	}
	a, err := s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		t.Fatal(err)
	}
	m := &hook.Message{ID: "dup", Topic: "t", QoS: 1, Payload: []byte("x"), Timestamp: time.Now()}
	for range 2 {
		a.(hook.WriteAction).Write(context.Background(), &hook.PublishEvent{Message: m})
		s.Flush(ctx)
	}
	got, err := s.Fetch(ctx, "c", "t", hook.OfflineOpts{})
	if err != nil || len(got) != 1 {
		t.Fatalf("fetch: %d messages, %v; want 1", len(got), err)
	}
}
