package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	mochiredis "github.com/mochi-mqtt/server/v2/hooks/storage/redis"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// The benchmarks run against a redis-server of their own (no persistence; emptied before
// each run) and, for the cluster figures, the cluster of scripts/services.
//
//	go test -run '^$' -bench . -benchmem -benchtime 2s ./redisstore/

const benchPayload = 64 // bytes per message

// benchTarget is where a benchmark writes: a Config, and a client for the raw baseline.
type benchTarget struct {
	name string
	// open returns a store config on fresh keys (an empty server, or a fresh prefix).
	open func(b *testing.B) Config
}

func benchTargets(b *testing.B) []benchTarget {
	srv := startRedisServer(b, false)
	return []benchTarget{
		{"single", func(b *testing.B) Config {
			c := redis.NewClient(&redis.Options{Addr: srv.addr})
			defer c.Close()
			if err := c.FlushAll(context.Background()).Err(); err != nil {
				b.Fatal(err)
			}
			return Config{Addrs: []string{srv.addr}}
		}},
		{"cluster", func(b *testing.B) Config { return configFor(b, deployments[2]) }},
	}
}

// benchMessages returns n QoS 1 messages with fresh IDs on 100 topics.
func benchMessages(n int) []hook.PublishEvent {
	ids := hook.NewIDGenerator("bench")
	payload := []byte(strings.Repeat("x", benchPayload))
	now := time.Now()
	evs := make([]hook.PublishEvent, n)
	for i := range evs {
		evs[i].Message = &hook.Message{ID: ids.Next(), From: "client-1", Topic: fmt.Sprintf("bench/%d/data", i%100),
			QoS: 1, Payload: payload, Timestamp: now}
	}
	return evs
}

// BenchmarkPublish measures persisted messages per second through on_message_publish, from
// Write to the end of a Flush, against a raw go-redis baseline that pipelines the same
// commands (HSET of the message hash, ZADD to the topic's set, ZADD to the topic index) in
// batches of the same size, with as many concurrent pipelines as the store has shards.
func BenchmarkPublish(b *testing.B) {
	for _, tg := range benchTargets(b) {
		b.Run(tg.name+"/store", func(b *testing.B) {
			cfg := tg.open(b)
			cfg.Options.Logger = slog.New(slog.DiscardHandler)
			s := openStore(b, cfg)
			w := mustWriter(b, s, hook.MessagePublish, hook.OnMessagePublish)
			evs := benchMessages(b.N)
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for i := range evs {
				if err := w.Write(context.Background(), &evs[i]); err != nil {
					b.Fatal(err)
				}
			}
			if err := s.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
			b.StopTimer()
			if st := s.Stats(); st.Failed != 0 {
				b.Fatalf("failed writes: %+v", st)
			}
			s.Close(ctx)
		})
		b.Run(tg.name+"/raw", func(b *testing.B) {
			cfg := tg.open(b)
			s := openStore(b, cfg) // for its client and key names only
			defer s.Close(context.Background())
			opts := cfg.Options.WithDefaults()
			evs := benchMessages(b.N)
			ctx := context.Background()
			const workers = 4 // backend.Options' default Shards
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for g := range workers {
				wg.Go(func() {
					for lo := g * opts.BatchSize; lo < len(evs); lo += workers * opts.BatchSize {
						pipe := s.client.Pipeline()
						for _, ev := range evs[lo:min(lo+opts.BatchSize, len(evs))] {
							m := ev.Message
							pipe.Do(ctx, "hset", s.k.msg(m.ID), "id", m.ID, "from", m.From, "qos", qosText[m.QoS], "topic", m.Topic,
								"retain", boolText(m.Retain), "payload", m.Payload, "ts", m.Timestamp.UnixMilli())
							pipe.Do(ctx, "zadd", s.k.topic(m.Topic), 1, m.ID)
							pipe.Do(ctx, "zadd", s.k.msgIndex(), 0, m.Topic)
						}
						if _, err := pipe.Exec(ctx); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkRetainedInflight compares the store with mochi-mqtt's own Redis storage hook on one
// workload: per operation, a retained message on one of 1000 topics is stored, and a QoS 1
// message is stored in flight and removed when its delivery completes. The hook does it with
// OnRetainMessage, OnQosPublish and OnQosComplete (a synchronous HSET, HSET and HDEL); the
// store with on_message_retain, on_message_publish and on_message_acked_for_queue (queued,
// pipelined; the figure includes the final Flush). "serial" calls from one goroutine,
// "parallel" from 32, as a broker's client goroutines would.
func BenchmarkRetainedInflight(b *testing.B) {
	srv := startRedisServer(b, false)
	flush := func(b *testing.B) {
		c := redis.NewClient(&redis.Options{Addr: srv.addr})
		defer c.Close()
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			b.Fatal(err)
		}
	}
	payload := []byte(strings.Repeat("x", benchPayload))
	for _, par := range []bool{false, true} {
		mode := "serial"
		if par {
			mode = "parallel"
		}
		run := func(b *testing.B, op func(i int)) {
			b.ResetTimer()
			if par {
				b.SetParallelism(16)
				var next sync.Mutex
				n := 0
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						next.Lock()
						i := n
						n++
						next.Unlock()
						op(i)
					}
				})
			} else {
				for i := range b.N {
					op(i)
				}
			}
		}
		b.Run("store/"+mode, func(b *testing.B) {
			flush(b)
			s := openStore(b, Config{Addrs: []string{srv.addr}, Options: backend.Options{Logger: slog.New(slog.DiscardHandler)}})
			defer s.Close(context.Background())
			retain := mustWriter(b, s, hook.MessagePublish, hook.OnMessageRetain)
			publish := mustWriter(b, s, hook.MessagePublish, hook.OnMessagePublish)
			ack := mustWriter(b, s, hook.MessageAcked, hook.OnMessageAckedForQueue)
			ids := hook.NewIDGenerator("bench")
			start := time.Now()
			run(b, func(i int) {
				now := time.Now()
				r := &hook.PublishEvent{Message: &hook.Message{ID: ids.Next(), From: "c1", Topic: fmt.Sprintf("retained/%d", i%1000),
					QoS: 1, Retain: true, Payload: payload, Timestamp: now}}
				m := &hook.Message{ID: ids.Next(), From: "c1", Topic: "inflight/c2", QoS: 1, Payload: payload, Timestamp: now}
				if err := retain.Write(context.Background(), r); err != nil {
					b.Error(err)
				}
				if err := publish.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
					b.Error(err)
				}
				if err := ack.Write(context.Background(), &hook.AckedEvent{ClientID: "c2", Message: m}); err != nil {
					b.Error(err)
				}
			})
			if err := s.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
			b.StopTimer()
			if st := s.Stats(); st.Failed != 0 {
				b.Fatalf("failed writes: %+v", st)
			}
		})
		b.Run("mochi/"+mode, func(b *testing.B) {
			flush(b)
			h := new(mochiredis.Hook)
			h.SetOpts(slog.New(slog.DiscardHandler), nil)
			if err := h.Init(&mochiredis.Options{Address: srv.addr}); err != nil {
				b.Fatal(err)
			}
			defer h.Stop()
			cl := &mqtt.Client{ID: "c1", Net: mqtt.ClientConnection{Remote: "127.0.0.1:50000", Listener: "tcp"}}
			start := time.Now()
			run(b, func(i int) {
				now := time.Now().Unix()
				r := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
					TopicName: fmt.Sprintf("retained/%d", i%1000), Payload: payload, Created: now}
				h.OnRetainMessage(cl, r, 1)
				m := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1},
					TopicName: "inflight/c2", Payload: payload, PacketID: uint16(i%65535 + 1), Created: now}
				h.OnQosPublish(cl, m, now, 0)
				h.OnQosComplete(cl, m)
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
		})
	}
}

// BenchmarkRetainLookup looks up retained messages among 100,000 retained topics
// ("dev/<0..9999>/<0..9>") with the store's topic index, and with the alternative it
// replaces: SCAN MATCH over the keyspace (which holds nothing else here; a real one holds
// messages and client state too, and SCAN walks all of it).
func BenchmarkRetainLookup(b *testing.B) {
	const devices, perDevice = 10000, 10
	srv := startRedisServer(b, false)
	s := openStore(b, Config{Addrs: []string{srv.addr}, Options: backend.Options{Logger: slog.New(slog.DiscardHandler)}})
	defer s.Close(context.Background())
	retain := mustWriter(b, s, hook.MessagePublish, hook.OnMessageRetain)
	ids := hook.NewIDGenerator("bench")
	payload := []byte("retained")
	for d := range devices {
		for k := range perDevice {
			m := &hook.Message{ID: ids.Next(), Topic: fmt.Sprintf("dev/%d/%d", d, k), QoS: 1, Retain: true, Payload: payload, Timestamp: time.Now()}
			if err := retain.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := context.Background()
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	filters := []struct {
		filter string
		want   int
	}{
		{"dev/4242/7", 1},
		{"dev/4242/+", perDevice},
		{"dev/4242/#", perDevice},
		{"dev/+/7", devices},
		{"#", devices * perDevice},
	}
	for _, f := range filters {
		b.Run("index/"+f.filter, func(b *testing.B) {
			for range b.N {
				got, err := s.retained(ctx, f.filter)
				if err != nil || len(got) != f.want {
					b.Fatalf("retained(%q) = %d messages, %v; want %d", f.filter, len(got), err, f.want)
				}
			}
		})
		b.Run("scan/"+f.filter, func(b *testing.B) {
			for range b.N {
				got, err := scanRetained(ctx, s, f.filter)
				if err != nil || len(got) != f.want {
					b.Fatalf("scanRetained(%q) = %d messages, %v; want %d", f.filter, len(got), err, f.want)
				}
			}
		})
	}
}

// scanRetained is on_retain_lookup done with SCAN: every key matching the filter's literal
// prefix, then topic.Match, then HGETALL.
func scanRetained(ctx context.Context, s *Store, filter string) ([]*hook.Message, error) {
	lit, _, _ := strings.Cut(filter, "+")
	lit, _, _ = strings.Cut(lit, "#")
	pattern := s.k.retain(globEscape(lit)) + "*"
	var topics []string
	iter := s.client.Scan(ctx, 0, pattern, 1000).Iterator()
	base := len(s.k.retain(""))
	for iter.Next(ctx) {
		if t := iter.Val()[base:]; topic.Match(filter, t) {
			topics = append(topics, t)
		}
	}
	if err := iter.Err(); err != nil {
		return nil, err
	}
	hashes, err := s.hgetAll(ctx, topics, s.k.retain)
	if err != nil {
		return nil, err
	}
	var out []*hook.Message
	for i, h := range hashes {
		if m := s.decode(s.k.retain(topics[i]), h); m != nil {
			out = append(out, m)
		}
	}
	return out, nil
}

func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}
