package backend_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
)

// benchItem is the size of what a store queues: an operation kind, a client ID and a pointer.
type benchItem struct {
	op       int
	clientID string
	msg      *[64]byte
}

func benchWriter(b *testing.B, shards int, flush func(context.Context, []benchItem, *backend.BatchResult) error) *backend.Writer[benchItem] {
	w := backend.NewWriter(backend.WriterConfig[benchItem]{
		Store:   "bench",
		Options: backend.Options{Shards: shards, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Flush:   flush,
		Key:     func(it benchItem) string { return it.clientID },
	})
	b.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// BenchmarkEnqueue is the cost a hook call pays: the flush does nothing, so what is measured
// is the enqueue and the writer's own overhead (OverflowBlock: the queue never drops).
func BenchmarkEnqueue(b *testing.B) {
	nop := func(context.Context, []benchItem, *backend.BatchResult) error { return nil }
	msg := new([64]byte)
	clients := make([]string, 1024)
	for i := range clients {
		clients[i] = "client-" + strconv.Itoa(i)
	}
	for _, shards := range []int{1, 4} {
		b.Run("serial/shards="+strconv.Itoa(shards), func(b *testing.B) {
			w := benchWriter(b, shards, nop)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Enqueue(benchItem{op: 1, clientID: clients[i&1023], msg: msg}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run("parallel/shards="+strconv.Itoa(shards), func(b *testing.B) {
			w := benchWriter(b, shards, nop)
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				i := int(next.Add(1)) * 97
				for pb.Next() {
					if err := w.Enqueue(benchItem{op: 1, clientID: clients[i&1023], msg: msg}); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
		})
	}
}

// BenchmarkEnqueueQueueFull is the cost of a drop: the database is stuck, the queue is full
// and the policy is OverflowDrop.
func BenchmarkEnqueueQueueFull(b *testing.B) {
	gate := make(chan struct{})
	w := backend.NewWriter(backend.WriterConfig[benchItem]{
		Store:   "bench",
		Options: backend.Options{QueueSize: 16, Overflow: backend.OverflowDrop, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		Flush:   func(context.Context, []benchItem, *backend.BatchResult) error { <-gate; return nil },
	})
	defer w.Close(context.Background())
	defer close(gate)
	msg := new([64]byte)
	w.Enqueue(benchItem{op: 1, clientID: "c", msg: msg})
	for w.Stats().Inflight == 0 { // the first batch is stuck in the database
		time.Sleep(time.Millisecond)
	}
	for w.Enqueue(benchItem{op: 1, clientID: "c", msg: msg}) == nil {
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := w.Enqueue(benchItem{op: 1, clientID: "c", msg: msg}); err == nil {
				b.Error("Enqueue on a full queue succeeded")
				return
			}
		}
	})
}

// BenchmarkWriterThroughput measures items per second through enqueue, batching and an
// in-memory flush that touches every item, with Flush waiting for the end.
func BenchmarkWriterThroughput(b *testing.B) {
	for _, bs := range []int{100, 500} {
		b.Run("batch="+strconv.Itoa(bs), func(b *testing.B) {
			var sink atomic.Int64
			w := backend.NewWriter(backend.WriterConfig[benchItem]{
				Store:   "bench",
				Options: backend.Options{BatchSize: bs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
				Flush: func(_ context.Context, batch []benchItem, _ *backend.BatchResult) error {
					n := 0
					for _, it := range batch {
						n += it.op + len(it.clientID)
					}
					sink.Add(int64(n))
					return nil
				},
			})
			defer w.Close(context.Background())
			msg := new([64]byte)
			b.ReportAllocs()
			for b.Loop() {
				w.Enqueue(benchItem{op: 1, clientID: "c", msg: msg})
			}
			if err := w.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
