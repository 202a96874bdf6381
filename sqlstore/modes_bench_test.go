package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/spool"
)

// modeDispatcher returns a dispatcher in mode with one on_message_publish rule on a fresh
// store of dialect d (and, under Spool, a spool in a temporary directory, fsynced every
// interval, the default), and a func closing both.
func modeDispatcher(b *testing.B, d Dialect, mode hook.Durability, opts backend.Options) (*hook.Dispatcher, *Store, func()) {
	ctx := context.Background()
	opts.Logger = quiet
	store := openStore(b, Config{Dialect: d, DSN: dsnFor(b, d), EnsureSchema: true, Options: opts})
	var sp *spool.Spool
	if mode == hook.Spool {
		var err error
		if sp, err = spool.Open(b.TempDir(), spool.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	disp := hook.NewDispatcher(hook.DispatcherOptions{Node: "bench", Durability: mode, Spool: sp, Logger: quiet})
	if err := disp.Register(ctx, "sql", store, hook.Rule{Name: "pub", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}}); err != nil {
		b.Fatal(err)
	}
	return disp, store, func() {
		disp.Close(ctx)
		if sp != nil {
			sp.Close()
		}
	}
}

var modes = []hook.Durability{hook.Async, hook.Spool, hook.Sync}

func modeName(m hook.Durability) string {
	return [...]string{hook.Async: "async", hook.Sync: "sync", hook.Spool: "spool"}[m]
}

// BenchmarkModes measures persisted messages per second through a hook.Dispatcher under each
// durability mode, side by side in one run: publishers goroutines (a broker's clients) each
// publish through the dispatcher until b.N messages are published, then a Flush; the time
// is until every message is stored. Async queues each publish, Spool appends it to the local
// spool first, Sync returns once it is stored (concurrent publishes share batches: group
// commit). It reports each mode's msgs/s and its ratio to async.
func BenchmarkModes(b *testing.B) {
	for _, d := range dialectsUnderTest {
		for _, publishers := range []int{8, 16, 64} {
			b.Run(fmt.Sprintf("%v/publishers=%d", d, publishers), func(b *testing.B) {
				ctx := context.Background()
				rate := map[hook.Durability]float64{}
				for _, mode := range modes {
					b.StopTimer()
					disp, store, done := modeDispatcher(b, d, mode, backend.Options{QueueSize: 1 << 16})
					msgs := benchMessages(b.N)
					var next atomic.Int64
					b.StartTimer()
					start := time.Now()
					var wg sync.WaitGroup
					for range publishers {
						wg.Go(func() {
							for i := next.Add(1) - 1; i < int64(len(msgs)); i = next.Add(1) - 1 {
								if err := disp.MessagePublish(ctx, &hook.PublishEvent{Message: msgs[i]}); err != nil {
									b.Error(err)
									return
								}
							}
						})
					}
					wg.Wait()
					if err := disp.Flush(ctx); err != nil {
						b.Fatal(err)
					}
					rate[mode] = float64(b.N) / time.Since(start).Seconds()
					b.StopTimer()
					if st := store.Stats(); st.Success != uint64(b.N) || st.Failed != 0 {
						b.Fatalf("%s: stats after %d publishes: %+v", modeName(mode), b.N, st)
					}
					done()
					b.StartTimer()
				}
				for _, mode := range modes {
					b.ReportMetric(rate[mode], modeName(mode)+"-msgs/s")
				}
				b.ReportMetric(rate[hook.Spool]/rate[hook.Async], "spool/async")
				b.ReportMetric(rate[hook.Sync]/rate[hook.Async], "sync/async")
			})
		}
	}
}

// BenchmarkModeCall measures what one publish costs the broker's goroutine (the hook call:
// Dispatcher.MessagePublish) under Async and Spool, side by side in one run, on SQLite, with
// a queue that holds every write of the run so that no call waits for the database: the
// in-memory enqueue against the enqueue behind an append to the spool. It reports the ns per
// call of each and their ratio.
func BenchmarkModeCall(b *testing.B) {
	ctx := context.Background()
	cost := map[hook.Durability]float64{}
	for _, mode := range []hook.Durability{hook.Async, hook.Spool} {
		b.StopTimer()
		disp, _, done := modeDispatcher(b, SQLite, mode, backend.Options{QueueSize: b.N + 1, QueueBytes: 1 << 30, BatchSize: 1000})
		msgs := benchMessages(b.N)
		b.StartTimer()
		start := time.Now()
		for _, m := range msgs {
			if err := disp.MessagePublish(ctx, &hook.PublishEvent{Message: m}); err != nil {
				b.Fatal(err)
			}
		}
		cost[mode] = float64(time.Since(start).Nanoseconds()) / float64(b.N)
		b.StopTimer()
		if err := disp.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		done()
		b.StartTimer()
	}
	b.ReportMetric(cost[hook.Async], "async-ns/call")
	b.ReportMetric(cost[hook.Spool], "spool-ns/call")
	b.ReportMetric(cost[hook.Spool]/cost[hook.Async], "spool/async")
}
