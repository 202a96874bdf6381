package cassastore_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/cassastore"
	"github.com/mqttstore/mqttstore/hook"
)

// quiet drops the writer's logs, which would interleave with the results.
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

func benchStore(b *testing.B, opts backend.Options) (*cassastore.Store, hook.WriteAction) {
	b.Helper()
	cfg := testConfig(b)
	cfg.Options = opts
	s := open(b, cfg)
	b.Cleanup(func() { s.Close(context.Background()) })
	act, err := s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		b.Fatal(err)
	}
	return s, act.(hook.WriteAction)
}

// rawInsert is the store's insert into msg, written by hand for the baseline.
func rawInsert(ks string) string {
	return `INSERT INTO ` + ks + `.msg (topic, msgid, arrived, payload, qos, retain, sender) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`
}

// rawArgs are the values of rawInsert for m, stored under msgid id.
func rawArgs(m *hook.Message, id string) []any {
	return []any{m.Topic, id, m.Timestamp, string(m.Payload), int(m.QoS), 0, m.From, 0}
}

// persistThrough writes msgs through the store's on_message_publish and waits until they
// are written: one Flush at the end, or one after each message (flushEach). It returns the
// time taken.
func persistThrough(b *testing.B, store *cassastore.Store, pub hook.WriteAction, msgs []*hook.Message, flushEach bool) time.Duration {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	for i, m := range msgs {
		if err := pub.Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
			b.Fatal(err)
		}
		if flushEach || i == len(msgs)-1 {
			if err := store.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	return time.Since(start)
}

// rawPersist is the raw-gocql baseline: the same inserts as the store, the way the store
// writes them at best: grouped by partition (topic), unlogged batches of up to 5 KiB within
// a partition, 32 partitions' batches in flight at once.
func rawPersist(ctx context.Context, sess *gocql.Session, ks string, msgs []*hook.Message) error {
	stmt := rawInsert(ks)
	byTopic := make(map[string][]*hook.Message)
	for _, m := range msgs {
		byTopic[m.Topic] = append(byTopic[m.Topic], m)
	}
	type job []*hook.Message
	jobs := make(chan job)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for j := range jobs {
				bt := sess.Batch(gocql.UnloggedBatch)
				for _, m := range j {
					bt.Entries = append(bt.Entries, gocql.BatchEntry{Stmt: stmt, Idempotent: true, Args: rawArgs(m, m.ID)})
				}
				if err := bt.ExecContext(ctx); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for _, ms := range byTopic {
		for start := 0; start < len(ms); {
			end, n := start, 0
			for end < len(ms) && (end == start || n+len(ms[end].Payload)+80 <= 5<<10) {
				n += len(ms[end].Payload) + 80
				end++
			}
			jobs <- ms[start:end]
			start = end
		}
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// BenchmarkPersist measures persisted messages per second through the store (Write of
// PublishEvents with on_message_publish, then Flush) against the raw-gocql baseline in the
// same run (rawPersist: the same rows into msg of another keyspace), the two taking turns by
// slices of 2000 messages. It reports the store's msgs/s, the baseline's raw-msgs/s, and
// their ratio.
func BenchmarkPersist(b *testing.B) {
	for _, batch := range []int{100, 500, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			opts := backend.Options{BatchSize: batch, QueueSize: 1 << 16, QueryTimeout: 30 * time.Second, Logger: quiet}
			store, pub := benchStore(b, opts)
			raw, _ := benchStore(b, opts)
			msgs := benchMessages(b.N)
			ctx := context.Background()

			// Raw and store take turns, a slice of the messages each, so that both see the
			// same load on a shared machine.
			const slice = 2000
			var rawTime, storeTime time.Duration
			b.ResetTimer()
			for i := 0; i < len(msgs); i += slice {
				part := msgs[i:min(i+slice, len(msgs))]
				start := time.Now()
				if err := rawPersist(ctx, raw.Session(), raw.Keyspace(), part); err != nil {
					b.Fatal(err)
				}
				rawTime += time.Since(start)
				storeTime += persistThrough(b, store, pub, part, false)
			}
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

// BenchmarkWriteLatency is one message at a time: Write then Flush (the store), against one
// prepared insert (the baseline), each reported as µs per message.
func BenchmarkWriteLatency(b *testing.B) {
	opts := backend.Options{QueryTimeout: 30 * time.Second, Logger: quiet}
	store, pub := benchStore(b, opts)
	msgs := benchMessages(b.N)
	ctx := context.Background()
	stmt := rawInsert(store.Keyspace())
	b.ResetTimer()
	start := time.Now()
	for _, m := range msgs {
		if err := store.Session().Query(stmt, rawArgs(m, m.ID+"r")...).ExecContext(ctx); err != nil {
			b.Fatal(err)
		}
	}
	rawTime := time.Since(start)
	storeTime := persistThrough(b, store, pub, msgs, true)
	b.StopTimer()
	b.ReportMetric(float64(storeTime.Microseconds())/float64(b.N), "µs/write")
	b.ReportMetric(float64(rawTime.Microseconds())/float64(b.N), "raw-µs/write")
}

// BenchmarkEnqueue measures the hook call the broker sees (WriteAction.Write of a
// PublishEvent), with a queue that takes every write of the run.
func BenchmarkEnqueue(b *testing.B) {
	store, pub := benchStore(b, backend.Options{QueueSize: b.N + 1, QueryTimeout: 30 * time.Second, Logger: quiet})
	events := make([]hook.PublishEvent, b.N)
	for i, m := range benchMessages(b.N) {
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = store.Close(ctx)
}
