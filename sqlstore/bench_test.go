package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// quiet drops the writer's retry and abandon logs, which would interleave with the results.
var quiet = slog.New(slog.DiscardHandler)

// benchMessages makes n messages on 100 topics with 64-byte payloads.
func benchMessages(n int) []*hook.Message {
	ids := hook.NewIDGenerator("bench")
	payload := []byte(strings.Repeat("x", 64))
	now := time.Now()
	msgs := make([]*hook.Message, n)
	for i := range msgs {
		msgs[i] = &hook.Message{ID: ids.Next(), From: "bench-client", Topic: fmt.Sprintf("bench/%d/data", i%100), QoS: 1, Payload: payload, Timestamp: now}
	}
	return msgs
}

// BenchmarkPersist measures persisted messages per second through the store (Write of
// PublishEvents with on_message_publish, then Flush) against a raw-driver baseline doing the
// same inserts into a table of the same schema on the same server, in the same run: pgx
// CopyFrom (PostgreSQL), a multi-row INSERT (MySQL), a transaction with a prepared INSERT
// (SQLite), batch rows at a time. It reports the store's msgs/s, the baseline's raw-msgs/s,
// and their ratio.
func BenchmarkPersist(b *testing.B) {
	for _, d := range dialectsUnderTest {
		for _, batch := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%v/batch=%d", d, batch), func(b *testing.B) {
				opts := backend.Options{BatchSize: batch, QueueSize: 1 << 16, BatchInterval: 5 * time.Millisecond, Logger: quiet}
				store := openStore(b, Config{Dialect: d, DSN: dsnFor(b, d), EnsureSchema: true, Options: opts})
				defer store.Close(context.Background())
				raw := openStore(b, Config{Dialect: d, DSN: dsnFor(b, d), EnsureSchema: true})
				defer raw.Close(context.Background())
				act, err := store.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}})
				if err != nil {
					b.Fatal(err)
				}
				pub := act.(hook.WriteAction)
				msgs := benchMessages(b.N)
				ctx := context.Background()

				b.ResetTimer()
				start := time.Now()
				for i := 0; i < len(msgs); i += batch {
					if err := rawInsert(ctx, raw, msgs[i:min(i+batch, len(msgs))]); err != nil {
						b.Fatal(err)
					}
				}
				rawTime := time.Since(start)

				start = time.Now()
				for _, m := range msgs {
					if err := pub.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
						b.Fatal(err)
					}
				}
				if err := store.Flush(ctx); err != nil {
					b.Fatal(err)
				}
				storeTime := time.Since(start)
				b.StopTimer()
				if st := store.Stats(); st.Success != uint64(b.N) || st.Failed != 0 {
					b.Fatalf("store stats after %d writes: %+v", b.N, st)
				}
				rate, rawRate := float64(b.N)/storeTime.Seconds(), float64(b.N)/rawTime.Seconds()
				b.ReportMetric(rate, "msgs/s")
				b.ReportMetric(rawRate, "raw-msgs/s")
				b.ReportMetric(rate/rawRate, "ratio")
			})
		}
	}
}

// rawInsert writes msgs into mqtt_msg with the driver alone, as a baseline.
func rawInsert(ctx context.Context, s *Store, msgs []*hook.Message) error {
	switch s.Dialect() {
	case Postgres:
		_, err := s.pg.CopyFrom(ctx, pgx.Identifier{"mqtt_msg"}, []string{"msgid", "sender", "topic", "qos", "retain", "payload", "arrived"},
			pgx.CopyFromSlice(len(msgs), func(i int) ([]any, error) {
				m := msgs[i]
				return []any{m.ID, m.From, m.Topic, int32(m.QoS), boolInt(m.Retain), m.Payload, m.Timestamp.UTC()}, nil
			}))
		return err
	case MySQL:
		var q strings.Builder
		q.WriteString("INSERT INTO mqtt_msg (msgid, sender, node, topic, qos, retain, payload, arrived) VALUES ")
		args := make([]any, 0, 8*len(msgs))
		for i, m := range msgs {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?,?,?)")
			args = append(args, m.ID, m.From, nil, m.Topic, int32(m.QoS), boolInt(m.Retain), m.Payload, m.Timestamp.UTC().Format(sqlTimeLayout))
		}
		_, err := s.db.ExecContext(ctx, q.String(), args...)
		return err
	default:
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		st, err := tx.PrepareContext(ctx, "INSERT INTO mqtt_msg (msgid, sender, node, topic, qos, retain, payload, arrived) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if _, err := st.ExecContext(ctx, m.ID, m.From, nil, m.Topic, int32(m.QoS), boolInt(m.Retain), m.Payload, m.Timestamp.UTC().Format(sqlTimeLayout)); err != nil {
				return err
			}
		}
		return tx.Commit()
	}
}

// BenchmarkWriteWhileDBLocked measures the hook call (WriteAction.Write of a PublishEvent)
// while the database cannot write: another connection holds an ACCESS EXCLUSIVE lock on
// mqtt_msg (PostgreSQL), LOCK TABLES mqtt_msg WRITE (MySQL), or a write transaction
// (SQLite). The queue is sized to take every write of the run, so the figure is the enqueue
// cost the broker sees, whatever the database is doing.
func BenchmarkWriteWhileDBLocked(b *testing.B) {
	for _, d := range dialectsUnderTest {
		b.Run(d.String(), func(b *testing.B) {
			ctx := context.Background()
			store := openStore(b, Config{Dialect: d, DSN: dsnFor(b, d), EnsureSchema: true, Options: backend.Options{QueueSize: b.N + 1, Logger: quiet}})
			act, err := store.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}})
			if err != nil {
				b.Fatal(err)
			}
			pub := act.(hook.WriteAction)
			unlock := lockMsgTable(b, store)
			msgs := benchMessages(b.N)
			events := make([]hook.PublishEvent, b.N)
			for i, m := range msgs {
				events[i].Message = m
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range events {
				if err := pub.Write(context.Background(), &events[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if st := store.Stats(); st.Success != 0 {
				b.Errorf("%d writes succeeded while mqtt_msg was locked", st.Success)
			}
			unlock()
			// What is queued is written once the lock is gone; the benchmark does not wait
			// for all of it (at ~100k messages/s, millions of queued writes take a while).
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := store.Close(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				b.Fatal(err)
			}
			if st := store.Stats(); st.Success == 0 {
				b.Errorf("nothing written after the lock was released: %+v", st)
			}
		})
	}
}

// lockMsgTable makes mqtt_msg unwritable from another connection until the returned func.
func lockMsgTable(b testing.TB, s *Store) (unlock func()) {
	ctx := context.Background()
	switch s.Dialect() {
	case Postgres:
		conn, err := pgx.Connect(ctx, s.cfg.DSN)
		if err != nil {
			b.Fatal(err)
		}
		tx, err := conn.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "LOCK TABLE mqtt_msg IN ACCESS EXCLUSIVE MODE"); err != nil {
			b.Fatal(err)
		}
		return func() { tx.Rollback(ctx); conn.Close(ctx) }
	case MySQL:
		conn, err := s.db.Conn(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "LOCK TABLES mqtt_msg WRITE"); err != nil {
			b.Fatal(err)
		}
		return func() { conn.ExecContext(ctx, "UNLOCK TABLES"); conn.Close() }
	default:
		db, err := openSQLite(s.cfg.DSN, backend.Options{PoolSize: 1, QueryTimeout: time.Second})
		if err != nil {
			b.Fatal(err)
		}
		tx, err := db.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO mqtt_client (clientid) VALUES ('lock')"); err != nil {
			b.Fatal(err)
		}
		return func() { tx.Rollback(); db.Close() }
	}
}

// BenchmarkPersistWithAcks measures what a subscriber acking every message costs: each
// message written (on_message_publish) then acknowledged by one client (on_message_acked),
// the issue 16 "publish + one subscriber" shape, where messages and acks share one ordered
// stream. It reports messages (each with its ack) per second.
func BenchmarkPersistWithAcks(b *testing.B) {
	for _, d := range dialectsUnderTest {
		b.Run(d.String(), func(b *testing.B) {
			opts := backend.Options{QueueSize: 1 << 16, Logger: quiet}
			store := openStore(b, Config{Dialect: d, DSN: dsnFor(b, d), EnsureSchema: true, Options: opts})
			defer store.Close(context.Background())
			write := func(fn string, p hook.Point) hook.WriteAction {
				act, err := store.Prepare(&hook.Rule{Name: fn, Point: p, Topic: "#", Action: hook.RuleAction{Function: fn}})
				if err != nil {
					b.Fatal(err)
				}
				return act.(hook.WriteAction)
			}
			pub := write(hook.OnMessagePublish, hook.MessagePublish)
			ack := write(hook.OnMessageAcked, hook.MessageAcked)
			msgs := benchMessages(b.N)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for _, m := range msgs {
				if err := pub.Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
					b.Fatal(err)
				}
				if err := ack.Write(ctx, &hook.AckedEvent{ClientID: "sub", Message: m}); err != nil {
					b.Fatal(err)
				}
			}
			if err := store.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if st := store.Stats(); st.Success != uint64(2*b.N) || st.Failed != 0 {
				b.Fatalf("store stats after %d messages and acks: %+v", b.N, st)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs+acks/s")
		})
	}
}
