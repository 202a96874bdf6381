package backend_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// item is what the tests queue: a client ID (the ordering key) and a sequence number.
type item struct {
	key string
	seq int
}

func itemKey(it item) string { return it.key }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// memStore is a Flush target that records what it wrote, in order, like a database would.
type memStore struct {
	mu      sync.Mutex
	written []item
	batches [][]item
	calls   int
	// fail, when set, is called before a batch is written; an error means nothing of the
	// batch was written (a rolled-back transaction).
	fail func(call int, batch []item) error
	// mark, when set, is called first: it returns the indices to mark Retry and Fail, with
	// their errors. Marked items are not written.
	mark func(call int, batch []item) (retry, fail map[int]error)
	sig  chan int // if set, gets len(batch) after each successful flush
	got  [][]item // every batch Flush was called with
}

func (m *memStore) flush(_ context.Context, batch []item, res *backend.BatchResult) error {
	m.mu.Lock()
	m.calls++
	call := m.calls
	m.got = append(m.got, append([]item(nil), batch...))
	m.mu.Unlock()
	marked := map[int]bool{}
	if m.mark != nil {
		retry, fail := m.mark(call, batch)
		for i, err := range retry {
			res.Retry(i, err)
			marked[i] = true
		}
		for i, err := range fail {
			res.Fail(i, err)
			marked[i] = true
		}
	}
	if m.fail != nil {
		if err := m.fail(call, batch); err != nil {
			return err
		}
	}
	var written []item
	for i, it := range batch {
		if !marked[i] {
			written = append(written, it)
		}
	}
	m.mu.Lock()
	m.written = append(m.written, written...)
	m.batches = append(m.batches, written)
	m.mu.Unlock()
	if m.sig != nil {
		m.sig <- len(batch)
	}
	return nil
}

// calledWith returns the batches Flush was called with, as sequence numbers.
func (m *memStore) calledWith() [][]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	var seqs [][]int
	for _, b := range m.got {
		var s []int
		for _, it := range b {
			s = append(s, it.seq)
		}
		seqs = append(seqs, s)
	}
	return seqs
}

func (m *memStore) snapshot() (written []item, batches [][]item, calls int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]item(nil), m.written...), append([][]item(nil), m.batches...), m.calls
}

func newWriter(t *testing.T, cfg backend.WriterConfig[item]) *backend.Writer[item] {
	t.Helper()
	if cfg.Store == "" {
		cfg.Store = "test"
	}
	if cfg.Options.Logger == nil {
		cfg.Options.Logger = quiet
	}
	w := backend.NewWriter(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		w.Close(ctx)
	})
	return w
}

func enqueueAll(t *testing.T, w *backend.Writer[item], items ...item) {
	t.Helper()
	for _, it := range items {
		if err := w.Enqueue(it); err != nil {
			t.Fatalf("Enqueue(%v): %v", it, err)
		}
	}
}

func seqItems(key string, n int) []item {
	items := make([]item, n)
	for i := range items {
		items[i] = item{key, i}
	}
	return items
}

func flush(t *testing.T, w *backend.Writer[item]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// waitFor polls cond until it holds, failing the test after 10s (a liveness bound, not a
// performance assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func checkStats(t *testing.T, got backend.Stats, want backend.Stats) {
	t.Helper()
	if want.Dropped == nil {
		want.Dropped = map[string]uint64{}
	}
	for _, r := range []string{backend.DropQueueFull, backend.DropClosed} {
		if got.Dropped[r] != want.Dropped[r] {
			t.Errorf("Stats.Dropped[%q] = %d, want %d", r, got.Dropped[r], want.Dropped[r])
		}
	}
	got.Dropped, want.Dropped = nil, nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

// checkQuiescent checks the counters add up once the writer is idle.
func checkQuiescent(t *testing.T, st backend.Stats) {
	t.Helper()
	var dropped uint64
	for _, n := range st.Dropped {
		dropped += n
	}
	if st.Queued != 0 || st.Inflight != 0 {
		t.Errorf("idle writer: Queued = %d, Inflight = %d, want 0", st.Queued, st.Inflight)
	}
	if st.Matched != st.Success+st.Failed+dropped {
		t.Errorf("Matched %d != Success %d + Failed %d + Dropped %d", st.Matched, st.Success, st.Failed, dropped)
	}
}

func TestWriterSizeTriggeredFlush(t *testing.T) {
	m := &memStore{sig: make(chan int, 10)}
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 10, BatchInterval: time.Hour},
		Flush:   m.flush,
	})
	enqueueAll(t, w, seqItems("c", 25)...)
	// Two full batches go out although the interval is an hour away.
	for range 2 {
		select {
		case n := <-m.sig:
			if n != 10 {
				t.Fatalf("size-triggered batch of %d, want 10", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no size-triggered flush")
		}
	}
	if st := w.Stats(); st.Queued != 5 {
		t.Errorf("Queued = %d, want the partial batch of 5 to wait", st.Queued)
	}
	flush(t, w)
	written, batches, _ := m.snapshot()
	if len(batches) != 3 || len(batches[2]) != 5 {
		t.Errorf("batches %v, want 10, 10, 5", batches)
	}
	for i, it := range written {
		if it.seq != i {
			t.Fatalf("written[%d] = %v, want seq %d", i, it, i)
		}
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 25, Success: 25})
}

func TestWriterTimeTriggeredFlush(t *testing.T) {
	m := &memStore{sig: make(chan int, 10)}
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 1000, BatchInterval: 300 * time.Millisecond},
		Flush:   m.flush,
	})
	enqueueAll(t, w, seqItems("c", 3)...)
	select {
	case n := <-m.sig:
		// The three items were enqueued well within the interval: they go out together.
		if n != 3 {
			t.Errorf("time-triggered batch of %d, want 3", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("partial batch never flushed by time")
	}
	flush(t, w) // m.flush signals before it returns: wait until the writer has counted the batch
	checkStats(t, w.Stats(), backend.Stats{Matched: 3, Success: 3})
}

func TestWriterFlushWaits(t *testing.T) {
	m := &memStore{}
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 1000, BatchInterval: time.Hour},
		Flush:   m.flush,
	})
	enqueueAll(t, w, seqItems("c", 5)...)
	flush(t, w) // does not wait for the hour
	if written, _, _ := m.snapshot(); len(written) != 5 {
		t.Fatalf("after Flush, %d written, want 5", len(written))
	}
	flush(t, w) // nothing pending: returns at once
	if _, _, calls := m.snapshot(); calls != 1 {
		t.Errorf("%d flush calls, want 1", calls)
	}

	// A Flush whose ctx ends before the database answers returns the ctx error.
	gate := make(chan struct{})
	m.fail = func(int, []item) error { <-gate; return nil }
	enqueueAll(t, w, item{"c", 5})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Flush(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush with a stuck database = %v, want DeadlineExceeded", err)
	}
	close(gate)
	flush(t, w)
	checkStats(t, w.Stats(), backend.Stats{Matched: 6, Success: 6})
}

var errTransient = errors.New("connection reset")
var errBadRow = errors.New("value too long for column")

// classifyTest: errTransient is FailRetry, everything else FailItem.
func classifyTest(err error) backend.Failure {
	if errors.Is(err, errTransient) {
		return backend.FailRetry
	}
	return backend.FailItem
}

func TestWriterRetriesTransient(t *testing.T) {
	m := &memStore{fail: func(call int, _ []item) error {
		if call <= 2 {
			return errTransient
		}
		return nil
	}}
	w := newWriter(t, backend.WriterConfig[item]{
		Options:  backend.Options{BatchSize: 100, Retry: backend.Retry{MinBackoff: time.Millisecond}},
		Flush:    m.flush,
		Classify: classifyTest,
	})
	enqueueAll(t, w, seqItems("c", 50)...)
	flush(t, w)
	written, batches, calls := m.snapshot()
	if calls != 3 || len(batches) != 1 || len(written) != 50 {
		t.Errorf("calls %d, batches %d, written %d; want 3 calls for one batch of 50", calls, len(batches), len(written))
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 50, Success: 50, Retried: 2})
}

func TestWriterRetryGivesUp(t *testing.T) {
	m := &memStore{fail: func(int, []item) error { return errTransient }}
	var logs bytes.Buffer
	w := newWriter(t, backend.WriterConfig[item]{
		Store: "sqlstore/test",
		Options: backend.Options{
			BatchSize: 100,
			Retry:     backend.Retry{MaxAttempts: 3, MinBackoff: time.Millisecond},
			Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		},
		Flush:    m.flush,
		Classify: classifyTest,
	})
	enqueueAll(t, w, seqItems("c", 20)...)
	flush(t, w)
	if _, _, calls := m.snapshot(); calls != 3 {
		t.Errorf("%d attempts, want MaxAttempts = 3", calls)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 20, Failed: 20, Retried: 2})
	out := logs.String()
	if !strings.Contains(out, "store=sqlstore/test") || !strings.Contains(out, "connection reset") || !strings.Contains(out, "count=20") {
		t.Errorf("failure log lacks store, error or count:\n%s", out)
	}
}

func TestWriterIsolatesBadItems(t *testing.T) {
	bad := map[int]bool{137: true, 400: true}
	m := &memStore{fail: func(_ int, batch []item) error {
		for _, it := range batch {
			if bad[it.seq] {
				return fmt.Errorf("row %d: %w", it.seq, errBadRow)
			}
		}
		return nil
	}}
	var logs bytes.Buffer
	w := newWriter(t, backend.WriterConfig[item]{
		Store:    "sqlstore/test",
		Options:  backend.Options{BatchSize: 500, BatchInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		Flush:    m.flush,
		Classify: classifyTest,
	})
	enqueueAll(t, w, seqItems("c", 500)...)
	flush(t, w)
	written, _, calls := m.snapshot()
	if len(written) != 498 {
		t.Fatalf("%d written, want 498 (all but the 2 bad rows)", len(written))
	}
	prev := -1
	for _, it := range written {
		if bad[it.seq] || it.seq <= prev {
			t.Fatalf("written out of order or a bad row written: %v after seq %d", it, prev)
		}
		prev = it.seq
	}
	if calls > 40 {
		t.Errorf("%d flush calls to isolate 2 bad rows in 500, want a bisection (<= 40)", calls)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 500, Success: 498, Failed: 2})
	// The second failure comes within a second of the first: Close logs it.
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"store=sqlstore/test", "row 137: value too long", "row 400: value too long", "total=2"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

func TestWriterRecoversFlushPanic(t *testing.T) {
	m := &memStore{fail: func(_ int, batch []item) error {
		for _, it := range batch {
			if it.seq == 3 {
				var m map[int]int
				m[it.seq] = 1 // a store bug on one item
			}
		}
		return nil
	}}
	var logs bytes.Buffer
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 10, BatchInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		Flush:   m.flush,
		// a panic is FailItem, whatever Classify says: isolated, not retried
	})
	enqueueAll(t, w, seqItems("c", 10)...)
	flush(t, w)
	if written, _, _ := m.snapshot(); len(written) != 9 {
		t.Errorf("%d written, want 9", len(written))
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 10, Success: 9, Failed: 1})
	if !strings.Contains(logs.String(), "assignment to entry in nil map") {
		t.Errorf("panic not logged:\n%s", logs.String())
	}
}

var errThrottled = errors.New("throttled")

// TestWriterItemMarks: items marked Retry are written again, alone, before the next batch;
// items marked Fail are counted failed; marks apply whether Flush returns nil or an error.
func TestWriterItemMarks(t *testing.T) {
	t.Run("nil error", func(t *testing.T) {
		m := &memStore{mark: func(call int, _ []item) (retry, fail map[int]error) {
			if call == 1 {
				return map[int]error{3: errThrottled, 6: errThrottled}, map[int]error{5: errBadRow}
			}
			return nil, nil
		}}
		w := newWriter(t, backend.WriterConfig[item]{
			Options: backend.Options{BatchSize: 10, BatchInterval: time.Hour, Retry: backend.Retry{MinBackoff: time.Millisecond}},
			Flush:   m.flush,
		})
		enqueueAll(t, w, seqItems("c", 20)...)
		flush(t, w)
		want := "[[0 1 2 3 4 5 6 7 8 9] [3 6] [10 11 12 13 14 15 16 17 18 19]]"
		if got := fmt.Sprint(m.calledWith()); got != want {
			t.Errorf("Flush calls %s, want %s", got, want)
		}
		checkStats(t, w.Stats(), backend.Stats{Matched: 20, Success: 19, Failed: 1, Retried: 1})
	})
	t.Run("with an error", func(t *testing.T) {
		// Item 2 fails for good, item 4 is to retry, and the others were not written either
		// (errTransient): they are retried with item 4, in order.
		m := &memStore{
			mark: func(call int, _ []item) (retry, fail map[int]error) {
				if call == 1 {
					return map[int]error{4: errThrottled}, map[int]error{2: errBadRow}
				}
				return nil, nil
			},
			fail: func(call int, _ []item) error {
				if call == 1 {
					return errTransient
				}
				return nil
			},
		}
		w := newWriter(t, backend.WriterConfig[item]{
			Options:  backend.Options{BatchSize: 6, BatchInterval: time.Hour, Retry: backend.Retry{MinBackoff: time.Millisecond}},
			Flush:    m.flush,
			Classify: classifyTest,
		})
		enqueueAll(t, w, seqItems("c", 6)...)
		flush(t, w)
		if got, want := fmt.Sprint(m.calledWith()), "[[0 1 2 3 4 5] [0 1 3 4 5]]"; got != want {
			t.Errorf("Flush calls %s, want %s", got, want)
		}
		checkStats(t, w.Stats(), backend.Stats{Matched: 6, Success: 5, Failed: 1, Retried: 1})
	})
	t.Run("retry counts toward MaxAttempts", func(t *testing.T) {
		m := &memStore{mark: func(_ int, batch []item) (retry, fail map[int]error) {
			for i, it := range batch {
				if it.seq == 1 {
					return map[int]error{i: errThrottled}, nil
				}
			}
			return nil, nil
		}}
		var logs bytes.Buffer
		w := newWriter(t, backend.WriterConfig[item]{
			Options: backend.Options{BatchSize: 3, BatchInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				Retry: backend.Retry{MaxAttempts: 3, MinBackoff: time.Millisecond}},
			Flush: m.flush,
		})
		enqueueAll(t, w, seqItems("c", 3)...)
		flush(t, w)
		if got, want := fmt.Sprint(m.calledWith()), "[[0 1 2] [1] [1]]"; got != want {
			t.Errorf("Flush calls %s, want %s", got, want)
		}
		checkStats(t, w.Stats(), backend.Stats{Matched: 3, Success: 2, Failed: 1, Retried: 2})
		if !strings.Contains(logs.String(), "throttled") {
			t.Errorf("the last error of the item is not logged:\n%s", logs.String())
		}
	})
}

var errNoTable = errors.New("relation \"mqtt_msg\" does not exist")

// TestWriterFailureClasses: what each Failure does with the unmarked items of a batch.
func TestWriterFailureClasses(t *testing.T) {
	classify := func(err error) backend.Failure {
		switch {
		case errors.Is(err, errTransient):
			return backend.FailRetry
		case errors.Is(err, context.DeadlineExceeded):
			return backend.FailUnknown
		case errors.Is(err, errNoTable):
			return backend.FailBatch
		}
		return backend.FailItem
	}
	for _, tc := range []struct {
		name          string
		err           error
		times         int // Flush fails this many times, then succeeds
		classify      func(error) backend.Failure
		notIdempotent bool
		calls         int
		stats         backend.Stats
		log           string
	}{
		{name: "retry", err: errTransient, times: 2, classify: classify, calls: 3,
			stats: backend.Stats{Matched: 500, Success: 500, Retried: 2}},
		{name: "unknown, idempotent", err: context.DeadlineExceeded, times: 2, classify: classify, calls: 3,
			stats: backend.Stats{Matched: 500, Success: 500, Retried: 2}},
		{name: "unknown, not idempotent", err: context.DeadlineExceeded, times: 1, classify: classify, notIdempotent: true, calls: 1,
			stats: backend.Stats{Matched: 500, Failed: 500}, log: "outcome unknown"},
		{name: "batch", err: errNoTable, times: 1000, classify: classify, calls: 1,
			stats: backend.Stats{Matched: 500, Failed: 500}, log: "does not exist"},
		{name: "default: transient is retry", err: syscall.ECONNRESET, times: 1, calls: 2,
			stats: backend.Stats{Matched: 500, Success: 500, Retried: 1}},
		{name: "default: others are item", err: errBadRow, times: 1, calls: 3,
			stats: backend.Stats{Matched: 500, Success: 500}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memStore{fail: func(call int, _ []item) error {
				if call <= tc.times {
					return tc.err
				}
				return nil
			}}
			var logs bytes.Buffer
			w := newWriter(t, backend.WriterConfig[item]{
				Options: backend.Options{BatchSize: 500, BatchInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
					Retry: backend.Retry{MinBackoff: time.Millisecond}},
				Flush:         m.flush,
				Classify:      tc.classify,
				NotIdempotent: tc.notIdempotent,
			})
			enqueueAll(t, w, seqItems("c", 500)...)
			flush(t, w)
			if _, _, calls := m.snapshot(); calls != tc.calls {
				t.Errorf("%d Flush calls, want %d", calls, tc.calls)
			}
			checkStats(t, w.Stats(), tc.stats)
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, logs.String())
			}
		})
	}
}

// TestWriterShrinksSlowBatches: a database that needs 1ms an item, behind a QueryTimeout of
// 40ms, cannot write a batch of 200: the shard shrinks its batches until they fit, writes
// everything in order, and grows back to full batches once the database is fast again.
func TestWriterShrinksSlowBatches(t *testing.T) {
	var slow atomic.Bool
	slow.Store(true)
	m := &memStore{}
	flushFn := func(ctx context.Context, batch []item, res *backend.BatchResult) error {
		if slow.Load() {
			select {
			case <-time.After(time.Duration(len(batch)) * time.Millisecond):
			case <-ctx.Done():
				return fmt.Errorf("insert %d rows: %w", len(batch), ctx.Err())
			}
			// On a loaded machine both may be ready: the deadline decides, not the select.
			if dl, ok := ctx.Deadline(); ok && time.Now().After(dl) {
				return fmt.Errorf("insert %d rows: %w", len(batch), context.DeadlineExceeded)
			}
		}
		return m.flush(ctx, batch, res)
	}
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 200, BatchInterval: time.Hour, QueryTimeout: 40 * time.Millisecond,
			Retry: backend.Retry{MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond}},
		Flush: flushFn,
	})
	enqueueAll(t, w, seqItems("c", 200)...)
	flush(t, w)
	written, batches, _ := m.snapshot()
	for i, it := range written {
		if it.seq != i {
			t.Fatalf("written[%d] = %v, want seq %d", i, it, i)
		}
	}
	biggest := 0
	for _, b := range batches {
		biggest = max(biggest, len(b))
	}
	if len(written) != 200 || biggest > 40 {
		t.Errorf("%d written in batches of up to %d; want 200, in batches of at most 40", len(written), biggest)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 200, Success: 200, Retried: w.Stats().Retried})

	slow.Store(false)
	for range 10 {
		enqueueAll(t, w, seqItems("d", 200)...)
		flush(t, w)
		if _, batches, _ := m.snapshot(); len(batches[len(batches)-1]) == 200 {
			return
		}
	}
	t.Errorf("batches never grew back to 200: %v", m.calledWith()[len(batches):])
}

// TestWriterBatchBytes: a batch stops growing before its Size would pass
// min(BatchBytes, MaxBatchBytes), but holds at least one item; MaxBatch caps its count.
func TestWriterBatchBytes(t *testing.T) {
	size30 := func(it item) int {
		if it.seq == 1000 {
			return 500
		}
		return 30
	}
	for _, tc := range []struct {
		name  string
		cfg   backend.WriterConfig[item]
		items []int
		want  string
	}{
		{"BatchBytes", backend.WriterConfig[item]{Options: backend.Options{BatchBytes: 100}, Size: size30},
			[]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "[[0 1 2] [3 4 5] [6 7 8] [9]]"},
		{"MaxBatchBytes", backend.WriterConfig[item]{MaxBatchBytes: 70, Size: size30},
			[]int{0, 1, 2, 3, 4}, "[[0 1] [2 3] [4]]"},
		{"exactly the budget", backend.WriterConfig[item]{Options: backend.Options{BatchBytes: 90}, MaxBatchBytes: 1000, Size: size30},
			[]int{0, 1, 2, 3, 4}, "[[0 1 2] [3 4]]"},
		{"an item bigger than the budget goes alone", backend.WriterConfig[item]{MaxBatchBytes: 100, Size: size30},
			[]int{0, 1, 1000, 3, 4, 5}, "[[0 1] [1000] [3 4 5]]"},
		{"MaxBatch", backend.WriterConfig[item]{Options: backend.Options{BatchSize: 10}, MaxBatch: 4},
			[]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, "[[0 1 2 3] [4 5 6 7] [8 9]]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &memStore{}
			cfg := tc.cfg
			cfg.Flush = m.flush
			cfg.Options.BatchInterval = time.Hour
			w := newWriter(t, cfg)
			for _, seq := range tc.items {
				enqueueAll(t, w, item{"c", seq})
			}
			flush(t, w)
			if got := fmt.Sprint(m.calledWith()); got != tc.want {
				t.Errorf("batches %s, want %s", got, tc.want)
			}
		})
	}

	t.Run("a full budget is flushed at once", func(t *testing.T) {
		m := &memStore{sig: make(chan int, 10)}
		w := newWriter(t, backend.WriterConfig[item]{
			Options: backend.Options{BatchBytes: 100, BatchInterval: time.Hour},
			Flush:   m.flush,
			Size:    size30,
		})
		enqueueAll(t, w, seqItems("c", 4)...) // 120 bytes: 3 make a batch, the interval is an hour away
		select {
		case n := <-m.sig:
			if n != 3 {
				t.Errorf("batch of %d, want 3", n)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a batch over its byte budget waited for BatchInterval")
		}
		flush(t, w)
		checkStats(t, w.Stats(), backend.Stats{Matched: 4, Success: 4})
	})
}

// TestWriterLogsRateLimited: failures and retries are logged at most once a second per
// writer, with the count since the last line, the total and the last error; Close logs the
// rest.
func TestWriterLogsRateLimited(t *testing.T) {
	var logs bytes.Buffer
	m := &memStore{fail: func(_ int, batch []item) error {
		if batch[0].key == "retry" {
			return errTransient
		}
		return fmt.Errorf("row %d: %w", batch[0].seq, errBadRow)
	}}
	w := backend.NewWriter(backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 500, BatchInterval: time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Retry: backend.Retry{MaxAttempts: 100, MinBackoff: time.Microsecond, MaxBackoff: time.Microsecond}},
		Flush:    m.flush,
		Classify: classifyTest,
	})
	start := time.Now()
	enqueueAll(t, w, seqItems("bad", 500)...) // each isolated: 500 failures, one at a time
	enqueueAll(t, w, item{"retry", 0})        // 99 retries, then a failure
	flush(t, w)
	lines := func(msg string) int { return strings.Count(logs.String(), `msg="`+msg+`"`) }
	if limit := 1 + int(time.Since(start)/time.Second); lines("writes failed") > limit || lines("writes failed, retrying") > limit {
		t.Errorf("%d failure lines and %d retry lines, want %d at most:\n%s", lines("writes failed"), lines("writes failed, retrying"), limit, logs.String())
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 501, Failed: 501, Retried: 99})
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`msg="writes failed" store=backend count=`, `total=501 error="connection reset"`,
		`msg="writes failed, retrying" store=backend count=`, `total=99 error="connection reset"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the lines logged by Close lack %q:\n%s", want, logs.String())
		}
	}
}

// gatedStore blocks every flush until its gate is closed.
func gatedStore() (*memStore, chan struct{}) {
	gate := make(chan struct{})
	return &memStore{fail: func(int, []item) error { <-gate; return nil }}, gate
}

func TestWriterOverflowDrop(t *testing.T) {
	m, gate := gatedStore()
	var logs bytes.Buffer
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{QueueSize: 10, BatchSize: 1, Overflow: backend.OverflowDrop,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		Flush: m.flush,
	})
	enqueueAll(t, w, item{"c", 0})
	waitFor(t, "the first item in flight", func() bool { return w.Stats().Inflight == 1 })
	enqueueAll(t, w, seqItems("c", 10)...)
	for range 3 {
		if err := w.Enqueue(item{"c", 99}); !errors.Is(err, hook.ErrDropped) || errors.Is(err, hook.ErrClosed) {
			t.Fatalf("Enqueue on a full queue = %v, want ErrDropped", err)
		}
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 14, Queued: 10, Inflight: 1,
		Dropped: map[string]uint64{backend.DropQueueFull: 3}})
	if !strings.Contains(logs.String(), "reason=queue_full") {
		t.Errorf("drop not logged:\n%s", logs.String())
	}
	close(gate)
	flush(t, w)
	checkStats(t, w.Stats(), backend.Stats{Matched: 14, Success: 11,
		Dropped: map[string]uint64{backend.DropQueueFull: 3}})
}

func TestWriterOverflowBlock(t *testing.T) {
	m, gate := gatedStore()
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{QueueSize: 2, BatchSize: 1},
		Flush:   m.flush,
	})
	enqueueAll(t, w, item{"c", 0})
	waitFor(t, "the first item in flight", func() bool { return w.Stats().Inflight == 1 })
	enqueueAll(t, w, item{"c", 1}, item{"c", 2})

	// EnqueueContext gives up when its ctx ends.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	err := w.EnqueueContext(ctx, item{"c", 99})
	if !errors.Is(err, hook.ErrDropped) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("EnqueueContext on a full queue = %v, want ErrDropped and DeadlineExceeded", err)
	}

	// Enqueue waits for room, and gets it once the database moves.
	done := make(chan error, 1)
	go func() { done <- w.Enqueue(item{"c", 3}) }()
	select {
	case err := <-done:
		t.Fatalf("Enqueue on a full queue returned %v, want it to wait", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("blocked Enqueue = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked Enqueue never got room")
	}
	flush(t, w)
	written, _, _ := m.snapshot()
	if len(written) != 4 || written[3].seq != 3 {
		t.Errorf("written %v, want seq 0..3", written)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 5, Success: 4, Dropped: map[string]uint64{backend.DropQueueFull: 1}})
}

// TestWriterSharedQueueBudget: QueueSize bounds the items queued in all shards together. A
// stuck shard may fill the whole queue; then an Enqueue to any shard drops (or waits), and
// room made by the stuck shard lets it in.
func TestWriterSharedQueueBudget(t *testing.T) {
	for name, policy := range map[string]backend.OverflowPolicy{"drop": backend.OverflowDrop, "block": backend.OverflowBlock} {
		t.Run(name, func(t *testing.T) {
			gate := make(chan struct{})
			var once sync.Once
			open := func() { once.Do(func() { close(gate) }) }
			defer open()
			m := &memStore{fail: func(_ int, batch []item) error {
				if batch[0].key == "a" {
					<-gate // the shard of "a" is stuck
				}
				return nil
			}}
			w := newWriter(t, backend.WriterConfig[item]{
				Options: backend.Options{QueueSize: 10, BatchSize: 1, Shards: 4, Overflow: policy},
				Flush:   m.flush,
				Key:     itemKey,
			})
			enqueueAll(t, w, item{"a", 0})
			waitFor(t, "the first item in flight", func() bool { return w.Stats().Inflight == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, it := range seqItems("a", 10) { // the whole queue, not a fourth of it
				if err := w.EnqueueContext(ctx, it); err != nil {
					t.Fatalf("Enqueue(%v) with room in other shards: %v", it, err)
				}
			}
			if st := w.Stats(); st.Queued != 10 {
				t.Fatalf("Queued = %d, want 10", st.Queued)
			}
			done := make(chan error, 1)
			go func() { done <- w.Enqueue(item{"b", 0}) }()
			if policy == backend.OverflowDrop {
				if err := <-done; !errors.Is(err, hook.ErrDropped) {
					t.Fatalf("Enqueue to a full writer = %v, want ErrDropped", err)
				}
				open()
				flush(t, w)
				checkStats(t, w.Stats(), backend.Stats{Matched: 12, Success: 11, Dropped: map[string]uint64{backend.DropQueueFull: 1}})
				return
			}
			select {
			case err := <-done:
				t.Fatalf("Enqueue to a full writer returned %v, want it to wait", err)
			case <-time.After(50 * time.Millisecond):
			}
			open()
			if err := <-done; err != nil {
				t.Fatalf("waiting Enqueue = %v", err)
			}
			flush(t, w)
			checkStats(t, w.Stats(), backend.Stats{Matched: 12, Success: 12})
		})
	}
}

// TestWriterEnqueueTimeout: under OverflowBlock, Enqueue waits for room until
// EnqueueTimeout or its ctx, whichever comes first, then drops.
func TestWriterEnqueueTimeout(t *testing.T) {
	m, gate := gatedStore()
	defer close(gate)
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{QueueSize: 1, BatchSize: 1, EnqueueTimeout: 30 * time.Millisecond},
		Flush:   m.flush,
	})
	enqueueAll(t, w, item{"c", 0})
	waitFor(t, "the first item in flight", func() bool { return w.Stats().Inflight == 1 })
	enqueueAll(t, w, item{"c", 1})

	// EnqueueTimeout first.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	start := time.Now()
	err := w.EnqueueContext(ctx, item{"c", 2})
	if !errors.Is(err, hook.ErrDropped) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "EnqueueTimeout") {
		t.Errorf("Enqueue past EnqueueTimeout = %v, want ErrDropped, DeadlineExceeded and the cause", err)
	}
	if waited := time.Since(start); waited < 30*time.Millisecond {
		t.Errorf("Enqueue gave up after %v, before EnqueueTimeout", waited)
	}

	// ctx first: canceled already, so that EnqueueTimeout cannot win a race with a late cancel
	// on a busy machine (ctx is only consulted once the queue is found full).
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	err = w.EnqueueContext(ctx, item{"c", 3})
	if !errors.Is(err, hook.ErrDropped) || !errors.Is(err, context.Canceled) {
		t.Errorf("Enqueue with its ctx canceled = %v, want ErrDropped and Canceled", err)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 4, Queued: 1, Inflight: 1, Dropped: map[string]uint64{backend.DropQueueFull: 2}})
}

func TestWriterCloseReleasesBlockedEnqueue(t *testing.T) {
	m, gate := gatedStore()
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{QueueSize: 1, BatchSize: 1},
		Flush:   m.flush,
	})
	enqueueAll(t, w, item{"c", 0})
	waitFor(t, "the first item in flight", func() bool { return w.Stats().Inflight == 1 })
	enqueueAll(t, w, item{"c", 1})
	done := make(chan error, 1)
	go func() { done <- w.Enqueue(item{"c", 2}) }()
	closed := make(chan error, 1)
	go func() { closed <- w.Close(context.Background()) }()
	select {
	case err := <-done:
		if !errors.Is(err, hook.ErrClosed) || !errors.Is(err, hook.ErrDropped) {
			t.Fatalf("Enqueue blocked across Close = %v, want ErrClosed and ErrDropped", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release a blocked Enqueue")
	}
	close(gate)
	if err := <-closed; err != nil {
		t.Fatalf("Close = %v", err)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 3, Success: 2, Dropped: map[string]uint64{backend.DropClosed: 1}})
}

func TestWriterCloseDrains(t *testing.T) {
	m := &memStore{}
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 64, BatchInterval: time.Hour},
		Flush:   m.flush,
	})
	enqueueAll(t, w, seqItems("c", 1000)...)
	if err := w.Close(context.Background()); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if written, _, _ := m.snapshot(); len(written) != 1000 {
		t.Fatalf("Close wrote %d of 1000", len(written))
	}
	err := w.Enqueue(item{"c", 1000})
	if !errors.Is(err, hook.ErrClosed) || !errors.Is(err, hook.ErrDropped) {
		t.Errorf("Enqueue after Close = %v, want ErrClosed and ErrDropped", err)
	}
	if err := w.Close(context.Background()); !errors.Is(err, hook.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 1001, Success: 1000, Dropped: map[string]uint64{backend.DropClosed: 1}})
	flush(t, w) // nothing left: Flush after Close returns
}

func TestWriterCloseDeadlineWithHungFlush(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	m := &memStore{fail: func(int, []item) error { <-hang; return nil }} // ignores its ctx
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 4},
		Flush:   m.flush,
	})
	enqueueAll(t, w, seqItems("c", 10)...)
	waitFor(t, "a batch in flight", func() bool { return w.Stats().Inflight == 4 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close with a hung flush = %v, want DeadlineExceeded", err)
	}
	if !strings.Contains(err.Error(), "10 writes not written (6 abandoned in the queue, 4 in flushes") {
		t.Errorf("Close error does not count what was left: %v", err)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 10, Failed: 6, Inflight: 4})
}

func TestWriterCloseDeadlineWhileRetrying(t *testing.T) {
	// The database is down; retries go on (MaxAttempts 0) until Close gives up.
	m := &memStore{fail: func(int, []item) error { return errTransient }}
	w := newWriter(t, backend.WriterConfig[item]{
		Options:  backend.Options{BatchSize: 5, Retry: backend.Retry{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}},
		Flush:    m.flush,
		Classify: classifyTest,
	})
	enqueueAll(t, w, seqItems("c", 12)...)
	waitFor(t, "retries", func() bool { return w.Stats().Retried >= 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close = %v, want DeadlineExceeded", err)
	}
	waitFor(t, "the retrying batch to give up", func() bool { return w.Stats().Inflight == 0 })
	st := w.Stats()
	if st.Failed != 12 || st.Success != 0 {
		t.Errorf("Stats %+v, want all 12 failed", st)
	}
	checkQuiescent(t, st)
}

// TestWriterOrderPerKey runs many producers, each owning its keys, through 4 shards with
// transient failures, and checks that every key's items are written once, in order, and never
// by two flushes at once.
func TestWriterOrderPerKey(t *testing.T) {
	const producers, keysPer, perKey = 16, 8, 200
	var (
		mu       sync.Mutex
		next     = map[string]int{}
		inflight = map[string]bool{}
		calls    atomic.Int64
	)
	flushFn := func(_ context.Context, batch []item, _ *backend.BatchResult) error {
		if calls.Add(1)%7 == 0 {
			return errTransient // retried: the batch must come back whole, before later items
		}
		keys := map[string]bool{}
		mu.Lock()
		for _, it := range batch {
			if !keys[it.key] {
				if inflight[it.key] {
					mu.Unlock()
					return fmt.Errorf("key %s flushed concurrently", it.key)
				}
				keys[it.key] = true
				inflight[it.key] = true
			}
		}
		mu.Unlock()
		time.Sleep(time.Duration(rand.IntN(100)) * time.Microsecond)
		mu.Lock()
		defer mu.Unlock()
		for k := range keys {
			delete(inflight, k)
		}
		for _, it := range batch {
			if it.seq != next[it.key] {
				return fmt.Errorf("key %s: got seq %d, want %d", it.key, it.seq, next[it.key])
			}
			next[it.key]++
		}
		return nil
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 37, QueueSize: 256, Shards: 4, Retry: backend.Retry{MinBackoff: 10 * time.Microsecond, MaxBackoff: time.Millisecond},
			Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, &slog.HandlerOptions{Level: slog.LevelError}))},
		Flush:    flushFn,
		Key:      itemKey,
		Classify: classifyTest,
	})
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range perKey {
				for k := range keysPer {
					if err := w.Enqueue(item{fmt.Sprintf("p%d-k%d", p, k), i}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	flush(t, w)
	logMu.Lock()
	if logs.Len() > 0 {
		t.Errorf("errors logged:\n%s", logs.String())
	}
	logMu.Unlock()
	mu.Lock()
	for p := range producers {
		for k := range keysPer {
			if key := fmt.Sprintf("p%d-k%d", p, k); next[key] != perKey {
				t.Errorf("key %s: %d written, want %d", key, next[key], perKey)
			}
		}
	}
	mu.Unlock()
	st := w.Stats()
	if st.Retried == 0 {
		t.Error("no retries happened; the test lost its point")
	}
	checkStats(t, st, backend.Stats{Matched: producers * keysPer * perKey, Success: producers * keysPer * perKey, Retried: st.Retried})
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestWriterStress mixes everything: producers on many goroutines, a small queue that drops,
// every class of failure, per-item marks, flushes that time out (and shrink their shard's
// batches), Flush calls and Stats readers running alongside, then checks that every item is
// accounted for exactly once.
func TestWriterStress(t *testing.T) {
	const producers, perProducer = 32, 2000
	var (
		mu     sync.Mutex
		stored = map[item]int{}
	)
	var timeouts atomic.Int64
	flushFn := func(ctx context.Context, batch []item, res *backend.BatchResult) error {
		switch r := rand.IntN(40); {
		case r < 2:
			return errTransient
		case r == 2 && len(batch) > 1:
			timeouts.Add(1)
			<-ctx.Done() // too slow: nothing written
			return ctx.Err()
		case r == 3:
			time.Sleep(time.Millisecond)
		case r == 4 && rand.IntN(10) == 0:
			return errNoTable
		}
		for _, it := range batch {
			if it.seq%997 == 0 {
				return errBadRow
			}
		}
		marked := map[int]bool{}
		for i, it := range batch {
			switch {
			case it.seq%1009 == 0:
				res.Fail(i, errBadRow)
				marked[i] = true
			case rand.IntN(50) == 0:
				res.Retry(i, errThrottled)
				marked[i] = true
			}
		}
		mu.Lock()
		for i, it := range batch {
			if !marked[i] {
				stored[it]++
			}
		}
		mu.Unlock()
		return nil
	}
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 50, QueueSize: 512, Shards: 3, Overflow: backend.OverflowDrop, QueryTimeout: 2 * time.Millisecond,
			Retry: backend.Retry{MinBackoff: 10 * time.Microsecond, MaxBackoff: 100 * time.Microsecond}},
		Flush: flushFn,
		Key:   itemKey,
		Classify: func(err error) backend.Failure {
			switch {
			case errors.Is(err, errNoTable):
				return backend.FailBatch
			case errors.Is(err, context.DeadlineExceeded):
				return backend.FailUnknown
			}
			return classifyTest(err)
		},
	})
	var accepted, dropped atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 { // observers
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				st := w.Stats()
				if st.Queued < 0 || st.Inflight < 0 || st.Queued > 512 {
					t.Errorf("impossible Stats %+v", st)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
				w.Flush(ctx)
				cancel()
			}
		})
	}
	var pw sync.WaitGroup
	for p := range producers {
		pw.Go(func() {
			for i := range perProducer {
				err := w.Enqueue(item{fmt.Sprintf("p%d-%d", p, i%5), p*perProducer + i})
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, hook.ErrDropped):
					dropped.Add(1)
				default:
					t.Error(err)
				}
			}
		})
	}
	pw.Wait()
	close(stop)
	wg.Wait()
	flush(t, w)
	st := w.Stats()
	checkQuiescent(t, st)
	mu.Lock()
	defer mu.Unlock()
	for it, n := range stored {
		if n != 1 {
			t.Errorf("%v stored %d times", it, n)
		}
	}
	if uint64(len(stored)) != st.Success {
		t.Errorf("stored %d, Stats.Success %d", len(stored), st.Success)
	}
	if st.Matched != producers*perProducer || int64(st.Dropped[backend.DropQueueFull]) != dropped.Load() ||
		int64(st.Success+st.Failed) != accepted.Load() {
		t.Errorf("Stats %+v; accepted %d, dropped %d", st, accepted.Load(), dropped.Load())
	}
	if st.Failed == 0 || st.Retried == 0 || timeouts.Load() == 0 {
		t.Errorf("failures %d, retries %d, timeouts %d: one did not happen; the test lost its point", st.Failed, st.Retried, timeouts.Load())
	}
	t.Logf("%+v", st)
}

func TestStatsAdd(t *testing.T) {
	a := backend.Stats{Matched: 10, Success: 5, Failed: 1, Retried: 2, Queued: 3, Inflight: 1,
		Dropped: map[string]uint64{backend.DropQueueFull: 1}}
	b := backend.Stats{Matched: 7, Success: 7, Dropped: map[string]uint64{backend.DropQueueFull: 2, "spool_full": 4}}
	sum := a.Add(b)
	if sum.Matched != 17 || sum.Success != 12 || sum.Failed != 1 || sum.Retried != 2 || sum.Queued != 3 || sum.Inflight != 1 ||
		sum.Dropped[backend.DropQueueFull] != 3 || sum.Dropped["spool_full"] != 4 {
		t.Errorf("Add = %+v", sum)
	}
	if a.Dropped[backend.DropQueueFull] != 1 {
		t.Error("Add modified its receiver's Dropped map")
	}
}

func TestIsTransient(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errBadRow, false},
		{context.Canceled, false},
		{refused, true},
		{fmt.Errorf("insert: %w", refused), true},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), true},
		{io.ErrUnexpectedEOF, true},
		{&net.DNSError{Err: "timeout", IsTimeout: true}, true},
		// net/http's (unexported) error for a request on a connection the server closed.
		{&url.Error{Op: "Post", URL: "http://127.0.0.1:8086/write", Err: errors.New("http: server closed idle connection")}, true},
	} {
		if got := backend.IsTransient(tc.err); got != tc.want {
			t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// The Writer gives stores hook.Flusher and backend.StatsReporter for free.
var (
	_ hook.Flusher          = (*backend.Writer[item])(nil)
	_ backend.StatsReporter = (*backend.Writer[item])(nil)
)

func TestWriterCloseEmptyWithDoneContext(t *testing.T) {
	w := newWriter(t, backend.WriterConfig[item]{Flush: (&memStore{}).flush})
	enqueueAll(t, w, item{"c", 0})
	flush(t, w)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Nothing is left to write, so a done ctx is no failure.
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close of an empty writer with a done ctx = %v", err)
	}
}

// Items enqueued with a hook.Completion in their context report their outcome to it: the
// written ones nil, a failed one its error, and those a Close abandons an error too.
func TestWriterReportsCompletion(t *testing.T) {
	ctx := context.Background()
	bad := errors.New("bad item")
	m := &memStore{}
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchInterval: time.Hour},
		Key:     itemKey,
		Flush: func(ctx context.Context, batch []item, res *backend.BatchResult) error {
			for i, it := range batch {
				if it.seq == 3 {
					res.Fail(i, bad)
				}
			}
			return m.flush(ctx, batch, res)
		},
	})
	var cs []*hook.Completion
	for _, it := range seqItems("c", 6) {
		c := hook.NewCompletion()
		cs = append(cs, c)
		if err := w.EnqueueContext(hook.WithCompletion(ctx, c), it); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, w)
	for i, c := range cs {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Wait(wctx)
		cancel()
		if want := error(nil); i == 3 {
			if !errors.Is(err, bad) {
				t.Errorf("item 3: Wait %v, want %v", err, bad)
			}
		} else if err != want {
			t.Errorf("item %d: Wait %v, want nil", i, err)
		}
	}

	// A Close that gives up: the Completions of the item in its flush and of the items still
	// queued hear of it.
	flushing := make(chan struct{}, 1)
	stuck := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{BatchSize: 1, QueryTimeout: time.Minute},
		Flush: func(ctx context.Context, batch []item, res *backend.BatchResult) error {
			flushing <- struct{}{}
			<-ctx.Done()
			return ctx.Err()
		},
	})
	inFlush, queued := hook.NewCompletion(), hook.NewCompletion()
	if err := stuck.EnqueueContext(hook.WithCompletion(ctx, inFlush), item{"c", 0}); err != nil {
		t.Fatal(err)
	}
	<-flushing
	for _, it := range seqItems("c", 3) {
		if err := stuck.EnqueueContext(hook.WithCompletion(ctx, queued), it); err != nil {
			t.Fatal(err)
		}
	}
	closeCtx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := stuck.Close(closeCtx); err == nil {
		t.Fatal("Close of a writer whose Flush never returns: nil error")
	}
	for what, c := range map[string]*hook.Completion{"in the flush": inFlush, "queued": queued} {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := c.Wait(wctx)
		if err == nil || wctx.Err() != nil {
			t.Errorf("Wait for the items %s after Close gave up: %v, want the writes' failure", what, err)
		}
		cancel()
	}
}

// Options.QueueBytes bounds the bytes queued as QueueSize bounds the items: a write that
// would pass it waits (and gives up with its context) or is dropped under OverflowDrop; a
// write bigger than MaxItemBytes is refused with hook.ErrTooLarge and counted as failed.
func TestWriterQueueBytes(t *testing.T) {
	for _, overflow := range []backend.OverflowPolicy{backend.OverflowBlock, backend.OverflowDrop} {
		gate := make(chan struct{})
		flushing := make(chan struct{}, 1)
		m := &memStore{}
		w := newWriter(t, backend.WriterConfig[item]{
			Options: backend.Options{BatchSize: 1, QueueBytes: 1000, MaxItemBytes: 500, Overflow: overflow},
			Size: func(it item) int {
				if it.key == "big" {
					return 501
				}
				return 100
			},
			Flush: func(ctx context.Context, batch []item, res *backend.BatchResult) error {
				select {
				case flushing <- struct{}{}:
				default:
				}
				<-gate
				return m.flush(ctx, batch, res)
			},
		})
		ctx := context.Background()
		if err := w.Enqueue(item{"c", 0}); err != nil {
			t.Fatal(err)
		}
		<-flushing // taken: its bytes are no longer queued
		for _, it := range seqItems("c", 11)[1:] {
			if err := w.Enqueue(it); err != nil {
				t.Fatalf("%v: Enqueue(%v) within the byte budget: %v", overflow, it, err)
			}
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := w.EnqueueContext(short, item{"c", 11})
		cancel()
		if !errors.Is(err, hook.ErrDropped) {
			t.Errorf("%v: Enqueue past QueueBytes: %v, want ErrDropped", overflow, err)
		}
		if err := w.Enqueue(item{"big", 0}); !errors.Is(err, hook.ErrTooLarge) {
			t.Errorf("%v: Enqueue of 501 bytes, MaxItemBytes 500: %v, want ErrTooLarge", overflow, err)
		}
		// Under OverflowBlock a write waiting for bytes goes in once the flusher takes some.
		waited := make(chan error, 1)
		if overflow == backend.OverflowBlock {
			go func() { waited <- w.Enqueue(item{"c", 12}) }()
		} else {
			waited <- nil
		}
		close(gate)
		if err := <-waited; err != nil {
			t.Errorf("%v: Enqueue waiting for bytes: %v", overflow, err)
		}
		flush(t, w)
		written := uint64(11)
		if overflow == backend.OverflowBlock {
			written++
		}
		st := w.Stats()
		if st.Success != written || st.Failed != 1 || st.Dropped[backend.DropQueueFull] != 1 || st.Matched != written+2 {
			t.Errorf("%v: stats %+v, want %d written, 1 refused, 1 dropped", overflow, st, written)
		}
	}
}

// With WriterConfig.Ping, a retry waiting out a long backoff goes as soon as the database
// answers again after a probe found it down: here the backoff is an hour, so only the probe
// can get the write through.
func TestWriterProbesDuringBackoff(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	failed, probed := make(chan struct{}, 1), make(chan struct{}, 1)
	m := &memStore{}
	errDown := fmt.Errorf("connect: %w", syscall.ECONNREFUSED)
	w := newWriter(t, backend.WriterConfig[item]{
		Options: backend.Options{Retry: backend.Retry{MinBackoff: time.Hour, MaxBackoff: time.Hour}},
		Flush: func(ctx context.Context, batch []item, res *backend.BatchResult) error {
			if down.Load() {
				select {
				case failed <- struct{}{}:
				default:
				}
				return errDown
			}
			return m.flush(ctx, batch, res)
		},
		Ping: func(context.Context) error {
			if down.Load() {
				select {
				case probed <- struct{}{}:
				default:
				}
				return errDown
			}
			return nil
		},
	})
	enqueueAll(t, w, item{"c", 0})
	<-failed
	<-probed // the probe saw it down
	down.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Flush(ctx); err != nil {
		t.Fatalf("the write waited out its hour of backoff though the database answered: %v", err)
	}
	checkStats(t, w.Stats(), backend.Stats{Matched: 1, Success: 1, Retried: 1})
}
