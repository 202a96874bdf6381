package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// TestPostgresBatchIsOneTransaction: what the message lock relies on: pgx sends a batch as
// one pipeline with one Sync, so its statements run in one implicit transaction, which holds
// the advisory lock of the first statement to its end and releases it then.
func TestPostgresBatchIsOneTransaction(t *testing.T) {
	s := newStore(t, Postgres)
	ctx := t.Context()
	conn, err := s.pg.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	held := `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted
 AND classid = ` + msgLockKey + ` AND objid = 'mqtt_msg'::regclass::oid AND objsubid = 2`
	b := &pgx.Batch{}
	b.Queue(s.d.msgLock)
	b.Queue("SELECT txid_current()")
	b.Queue("INSERT INTO mqtt_client (clientid) VALUES ('batch')")
	b.Queue(held)
	b.Queue("SELECT txid_current()")
	br := conn.SendBatch(ctx, b)
	var x1, x2, locks int64
	_, err1 := br.Exec()
	err2 := br.QueryRow().Scan(&x1)
	_, err3 := br.Exec()
	err4 := br.QueryRow().Scan(&locks)
	err5 := br.QueryRow().Scan(&x2)
	if err := errors.Join(err1, err2, err3, err4, err5, br.Close()); err != nil {
		t.Fatal(err)
	}
	if x1 != x2 || locks != 1 {
		t.Errorf("batch: transaction ids %d and %d, %d advisory locks held; want one transaction holding the lock", x1, x2, locks)
	}
	if err := conn.QueryRow(ctx, held).Scan(&locks); err != nil || locks != 0 {
		t.Errorf("after the batch: %d advisory locks held, %v; want none", locks, err)
	}
}

// count runs a COUNT query on s.
func count(t *testing.T, s *Store, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := s.query(t.Context(), q, args, func(scan func(...any) error) error { return scan(&n) }); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// TestTwoBrokersAckSkipsNothing: brokers A and B write one database. A's message
// transaction is held open (after its insert, before its commit); B publishes a later
// message; a subscriber (on broker C) fetches and acknowledges what it sees; then A commits.
// The subscriber's next fetch must return A's message: B's id must not have overtaken A's
// uncommitted one (with the message lock, B waits for A).
func TestTwoBrokersAckSkipsNothing(t *testing.T) {
	for _, d := range []Dialect{Postgres, MySQL} {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dsn := dsnFor(t, d)
			app := fmt.Sprintf("twobrokers%d", time.Now().UnixNano())
			open := func(name string) *Store {
				cfg := Config{Dialect: d, DSN: dsn, EnsureSchema: true, Options: testOptions, Node: name}
				if d == Postgres {
					cfg.DSN += "&application_name=" + app + name
				}
				s := openStore(t, cfg)
				t.Cleanup(func() { s.Close(context.Background()) })
				return s
			}
			a, b, c := open("a"), open("b"), open("c")
			pubA, pubB := writer(t, a, hook.OnMessagePublish, hook.MessagePublish), writer(t, b, hook.OnMessagePublish, hook.MessagePublish)
			ackC := writer(t, c, hook.OnMessageAcked, hook.MessageAcked)

			// The gate: a row the test locks, which A's message transaction then waits for.
			const stall = "SELECT id FROM gate WHERE id = 1 FOR UPDATE"
			if err := c.execDDL(ctx, "CREATE TABLE gate (id INTEGER PRIMARY KEY)"); err != nil {
				t.Fatal(err)
			}
			if err := c.execDDL(ctx, "INSERT INTO gate (id) VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			var release func()
			var aStalled, bWaits func() bool
			if d == Postgres {
				tx, err := c.pg.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.Exec(ctx, stall); err != nil {
					t.Fatal(err)
				}
				release = func() { tx.Rollback(context.Background()) }
				waiting := "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'"
				aStalled = func() bool { return count(t, c, waiting+" AND query = $2", app+"a", stall) > 0 }
				bWaits = func() bool { return count(t, c, waiting, app+"b") > 0 }
			} else {
				tx, err := c.db.BeginTx(ctx, nil)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := tx.ExecContext(ctx, stall); err != nil {
					t.Fatal(err)
				}
				release = func() { tx.Rollback() }
				running := "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO = ?"
				aStalled = func() bool { return count(t, c, running, stall) > 0 }
				bWaits = func() bool { return count(t, c, running, c.d.msgLock) > 0 }
			}
			defer release()
			a.testStall = stall

			mA := &hook.Message{ID: "a", Topic: "t", QoS: 1, Payload: []byte("from A")}
			mustWrite(t, pubA, &hook.PublishEvent{Message: mA})
			testenv.Eventually(t, "A's message transaction waits at the gate", aStalled)

			mB := &hook.Message{ID: "b", Topic: "t", QoS: 1, Payload: []byte("from B")}
			mustWrite(t, pubB, &hook.PublishEvent{Message: mB})
			bDone := make(chan error, 1)
			go func() { bDone <- b.Flush(ctx) }()
			bFlushed := false
			testenv.Eventually(t, "B has written its message or waits for A", func() bool {
				select {
				case err := <-bDone:
					if err != nil {
						t.Error(err)
					}
					bFlushed = true
					return true
				default:
					return bWaits()
				}
			})

			seen, err := c.Fetch(ctx, "sub", "t", hook.OfflineOpts{})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range seen {
				mustWrite(t, ackC, &hook.AckedEvent{ClientID: "sub", Message: m})
			}
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}

			release()
			if err := a.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if !bFlushed {
				if err := <-bDone; err != nil {
					t.Fatal(err)
				}
			}
			rest, err := c.Fetch(ctx, "sub", "t", hook.OfflineOpts{})
			if err != nil {
				t.Fatal(err)
			}
			all := append(ids(seen), ids(rest)...)
			slices.Sort(all)
			if !slices.Equal(all, []string{"a", "b"}) {
				t.Errorf("the subscriber fetched %v while A's transaction was open, then %v; want a and b, each once", ids(seen), ids(rest))
			}
			if st := a.Stats(); st.Failed != 0 || st.Success != 1 {
				t.Errorf("broker A's stats %+v: want its message written", st)
			}
		})
	}
}

// TestTwoWriters: two brokers publish concurrently into one database while a subscriber, on a
// third, fetches and acknowledges in a loop: every message is fetched exactly once.
func TestTwoWriters(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			dsn := dsnFor(t, d)
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 0))
			open := func() *Store {
				opts := testOptions
				opts.BatchSize = 1 + r.IntN(200)
				s := openStore(t, Config{Dialect: d, DSN: dsn, EnsureSchema: true, Options: opts})
				t.Cleanup(func() { s.Close(context.Background()) })
				return s
			}
			brokers := []*Store{open(), open()}
			sub := open()
			ack := writer(t, sub, hook.OnMessageAcked, hook.MessageAcked)
			perWriter := 1000
			if d == SQLite {
				perWriter = 200 // one writer at a time by construction, and slow under -race
			}
			var published sync.WaitGroup
			var want []string
			for w, s := range brokers {
				pub := writer(t, s, hook.OnMessagePublish, hook.MessagePublish)
				r := rand.New(rand.NewPCG(seed, uint64(w+1)))
				msgs := make([]*hook.Message, perWriter)
				for i := range msgs {
					msgs[i] = &hook.Message{ID: fmt.Sprintf("w%d-%04d", w, i), Topic: fmt.Sprintf("tw/%d", r.IntN(3)), QoS: 1,
						Payload: make([]byte, r.IntN(2000))}
					want = append(want, msgs[i].ID)
				}
				published.Add(1)
				go func() {
					defer published.Done()
					for _, m := range msgs {
						if err := pub.Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
							t.Error(err)
							return
						}
						if r.IntN(50) == 0 {
							time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
						}
					}
					if err := s.Flush(ctx); err != nil {
						t.Error(err)
					}
				}()
			}
			done := make(chan struct{})
			go func() { published.Wait(); close(done) }()

			fetched := map[string]int{}
			for deadline := time.Now().Add(2 * time.Minute); ; {
				if time.Now().After(deadline) {
					t.Fatalf("the subscriber had fetched %d of %d messages after 2 minutes", len(fetched), len(want))
				}
				var last bool
				select {
				case <-done:
					last = true // everything is committed: a fetch now that finds nothing is the last
				default:
				}
				got, err := sub.Fetch(ctx, "sub", "tw/#", hook.OfflineOpts{MaxReturnedCount: 1 + r.IntN(50)})
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range got {
					fetched[m.ID]++
					mustWrite(t, ack, &hook.AckedEvent{ClientID: "sub", Message: m})
				}
				if err := sub.Flush(ctx); err != nil {
					t.Fatal(err)
				}
				if last && len(got) == 0 {
					break
				}
			}
			var missing, repeated []string
			for _, id := range want {
				switch fetched[id] {
				case 0:
					missing = append(missing, id)
				case 1:
				default:
					repeated = append(repeated, id)
				}
			}
			if len(missing)+len(repeated) > 0 || len(fetched) != len(want) {
				t.Errorf("of %d messages, %d fetched; never fetched: %v; fetched more than once: %v", len(want), len(fetched), missing, repeated)
			}
		})
	}
}

// TestMySQLWithoutLockTable: a MySQL database without mqtt_msg_lock (EnsureSchema not run
// since the upgrade) still takes messages, without the lock; EnsureSchema creates the table
// and its row.
func TestMySQLWithoutLockTable(t *testing.T) {
	ctx := t.Context()
	dsn := dsnFor(t, MySQL)
	s := openStore(t, Config{Dialect: MySQL, DSN: dsn, EnsureSchema: true, Options: testOptions})
	if err := s.execDDL(ctx, "DROP TABLE mqtt_msg_lock"); err != nil {
		t.Fatal(err)
	}
	s.Close(ctx)
	quietOptions := testOptions
	quietOptions.Logger = quiet // the warning about the missing table
	s = openStore(t, Config{Dialect: MySQL, DSN: dsn, Options: quietOptions})
	defer s.Close(ctx)
	if !s.noMsgLock.Load() {
		t.Fatal("the missing mqtt_msg_lock was not noticed")
	}
	pub := writer(t, s, hook.OnMessagePublish, hook.MessagePublish)
	mustWrite(t, pub, &hook.PublishEvent{Message: &hook.Message{ID: "m1", Topic: "t", QoS: 1}})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, pub, &hook.PublishEvent{Message: &hook.Message{ID: "m2", Topic: "t", QoS: 1}})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s.noMsgLock.Load() || count(t, s, "SELECT COUNT(*) FROM mqtt_msg_lock WHERE id = 1") != 1 {
		t.Error("EnsureSchema did not create mqtt_msg_lock and its row")
	}
	if got, err := s.Fetch(ctx, "c", "t", hook.OfflineOpts{}); err != nil || len(got) != 2 {
		t.Errorf("fetch = %v, %v; want [m1 m2]", ids(got), err)
	}
	if st := s.Stats(); st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}
