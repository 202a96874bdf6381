package mongostore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttstore/mqttstore/backend"
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

// BenchmarkPersist measures persisted messages per second through the store (Write of
// PublishEvents with on_message_publish, then Flush) against a raw-driver baseline in the
// same run: unordered InsertMany of the same documents (the store's msgDoc, with _ids) into
// mqtt_msg of another database with the same indexes, batch documents at a time. It reports
// the store's msgs/s, the baseline's raw-msgs/s, and their ratio. The store's extra work per
// batch is the lock (insert, delete) and the _id counter (findAndModify): three round trips.
func BenchmarkPersist(b *testing.B) {
	for _, batch := range []int{100, 1000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			opts := backend.Options{BatchSize: batch, QueueSize: 1 << 16, BatchInterval: 5 * time.Millisecond, QueryTimeout: 30 * time.Second, Logger: quiet}
			cfg := testConfig(b)
			cfg.Options = opts
			store := openStore(b, cfg)
			defer store.Close(context.Background())
			rawCfg := testConfig(b)
			rawCfg.Options = opts
			raw := openStore(b, rawCfg)
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
				docs := make([]any, 0, batch)
				for k, m := range msgs[i:min(i+batch, len(msgs))] {
					docs = append(docs, msgDoc(int64(i+k+1), &op{msg: m, at: m.Timestamp}))
				}
				if _, err := raw.msg.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
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

// BenchmarkEnqueue measures the hook call the broker sees (WriteAction.Write of a
// PublishEvent), with a queue that takes every write of the run.
func BenchmarkEnqueue(b *testing.B) {
	cfg := testConfig(b)
	cfg.Options = backend.Options{QueueSize: b.N + 1, Logger: quiet}
	store := openStore(b, cfg)
	act, err := store.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		b.Fatal(err)
	}
	pub := act.(hook.WriteAction)
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
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = store.Close(ctx)
}
