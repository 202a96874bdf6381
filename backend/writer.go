package backend

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// Drop reasons, the keys of Stats.Dropped.
const (
	DropQueueFull = "queue_full" // the queue was full (OverflowDrop, or the caller stopped waiting)
	DropClosed    = "closed"     // the writer was closed
)

// WriterConfig configures a Writer. Flush is required; every other zero value means a default.
type WriterConfig[T any] struct {
	// Store names the store in errors and logs, e.g. "sqlstore/postgres".
	Store string
	// Options gives the batch size and interval, shards, queue size, overflow policy, retry
	// policy, query timeout and logger (WithDefaults is applied).
	Options Options
	// Flush writes one batch, in order. It returns nil when every item it did not mark in res
	// was written. A non-nil error says what happened to the items it did not mark; Classify
	// tells the writer what to do with them. Marks always apply.
	//
	// It runs on the writer's goroutines, one call at a time per shard. ctx carries
	// Options.QueryTimeout and is canceled when Close gives up. batch and res are only valid
	// during the call: the writer reuses them.
	Flush func(ctx context.Context, batch []T, res *BatchResult) error
	// Key returns an item's ordering key (the client ID): items with the same key are flushed
	// in the order they were enqueued, never concurrently. nil: one ordered stream (one shard).
	Key func(T) string
	// Size is an item's size in bytes for Options.BatchBytes and MaxBatchBytes; nil: 0 (count
	// only). It is called when the item is queued and when it is taken into a batch, under the
	// shard's lock: it must be cheap and give the same answer each time.
	Size func(T) int
	// MaxBatch and MaxBatchBytes are hard limits of the database on one batch (DynamoDB: 25
	// items; Cassandra: 50 KiB; an InfluxDB UDP datagram: 64 KiB), applied on top of
	// Options.BatchSize and BatchBytes. 0: none. A single item larger than MaxBatchBytes is
	// still flushed alone (the store refuses it with an item failure).
	MaxBatch, MaxBatchBytes int
	// Classify says what an error returned by Flush means for the unmarked items of the batch.
	// nil: IsTransient errors are FailRetry (plus the writer's own timeouts: FailUnknown),
	// others FailItem. A Flush that panics is FailItem whatever Classify says.
	Classify func(error) Failure
	// Ping, when set, checks that the database answers (the store's Ping). While a batch waits
	// to be retried, the writer probes with it every ProbeInterval and, once it has failed,
	// retries as soon as it answers, rather than at the end of a backoff that has grown to
	// seconds: an outage costs its length, not its length plus the last backoff.
	Ping func(ctx context.Context) error
	// NotIdempotent: writing an item twice duplicates it (e.g. plain INSERTs without a unique
	// key). Then an Unknown outcome is not retried: the items are counted as failed and logged
	// as "outcome unknown". The zero value (idempotent, e.g. keyed by msgid) retries them.
	NotIdempotent bool
}

// Failure is what an error of Flush means for the items it did not mark.
type Failure uint8

const (
	// FailItem: an item is bad (constraint violation, value too long). The batch is split in
	// halves, recursively, so that the bad item fails alone and its neighbours are written.
	FailItem Failure = iota
	// FailRetry: nothing was written (connection refused, throttled). The batch is written
	// again after a backoff, before the shard's later items.
	FailRetry
	// FailUnknown: maybe written (timeout mid-write, connection lost after sending). As
	// FailRetry if the writes are idempotent; otherwise the items fail ("outcome unknown").
	FailUnknown
	// FailBatch: every item fails for good and splitting will not help (missing table,
	// permission denied). The items are counted as failed at once.
	FailBatch
)

// BatchResult is where Flush reports per-item outcomes (DynamoDB UnprocessedItems, MongoDB
// per-document write errors, OpenTSDB per-point errors). Indices are into the batch Flush got;
// an index out of range panics. Of several marks of one item the last counts. Its methods are
// safe for concurrent use during the Flush call.
type BatchResult struct {
	mu    sync.Mutex
	n     int // len(batch)
	marks []mark
}

type mark struct {
	i     int
	retry bool // else failed
	err   error
}

// Retry marks item i as not written: it is written again later, with backoff, before the
// shard's next batch, and counts toward Retry.MaxAttempts as a retried batch does. Its
// neighbours do not wait for it, so it may land after a later item of the same key in the
// same batch: a store that needs strict order within a batch must not mark selectively.
func (r *BatchResult) Retry(i int, err error) { r.mark(i, true, err) }

// Fail marks item i as failed for good: it is counted in Stats.Failed and logged.
func (r *BatchResult) Fail(i int, err error) { r.mark(i, false, err) }

func (r *BatchResult) mark(i int, retry bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i < 0 || i >= r.n {
		panic(fmt.Sprintf("backend.BatchResult: index %d out of range [0, %d)", i, r.n))
	}
	r.marks = append(r.marks, mark{i, retry, err})
}

func (r *BatchResult) reset(n int) {
	clear(r.marks) // drop the errors
	r.marks, r.n = r.marks[:0], n
}

// Writer is the bounded, batching, asynchronous writer every store puts between the broker's
// hook calls and its database. Enqueue hands an item over and returns in well under a
// microsecond; the writer's goroutines (one per shard) gather items into batches of up to
// Options.BatchSize and BatchBytes (and MaxBatch, MaxBatchBytes), waiting at most
// Options.BatchInterval for a batch to fill, and call Flush.
//
// Failures: Flush reports the outcome of each item: marks in its BatchResult, and for the
// others its error, which Classify turns into a Failure. Items to retry are written again
// with exponential backoff and jitter (Options.Retry), the shard holding back its later items
// so that the order per key survives; a FailItem batch is split in halves, recursively, so
// that a bad item fails alone and its neighbours are written; a Flush that panics is
// recovered and treated as FailItem (the panic is logged with its stack). Items that fail for
// good are counted in Stats.Failed and logged with the store name and the error. Failures,
// retries, panics and drops are each logged at most once a second, with their count since the
// previous line, so that an outage costs a few lines rather than one per item.
//
// A batch that Flush fails to write within Options.QueryTimeout halves the shard's batch
// size (down to 1) and is retried in pieces of that size: a database too slow for a full
// batch gets smaller ones rather than the same one forever. Each flush that succeeds doubles
// the size back, up to its limit.
//
// A Writer is safe for concurrent use. Close it to write out what is queued.
type Writer[T any] struct {
	cfg    WriterConfig[T]
	opts   Options
	limit  int // items in a batch at most: BatchSize and MaxBatch
	bytes  int // bytes in a batch at most (but for a lone item): BatchBytes and MaxBatchBytes
	log    *slog.Logger
	seed   maphash.Seed
	shards []*shard[T]
	wg     sync.WaitGroup

	errFull, errClosed, errTimeout error // prebuilt: a drop costs no allocation

	// Enqueue calls waiting for room in a full queue.
	waiting atomic.Bool   // room != nil
	roomMu  sync.Mutex    // guards room
	room    chan struct{} // closed when room is made; nil if no Enqueue waits

	closing atomic.Bool
	abort   chan struct{} // closed when Close gives up
	base    context.Context
	cancel  context.CancelFunc

	success  atomic.Uint64
	refused  atomic.Uint64 // Refuse calls: matched and failed, never queued
	queued   atomic.Int64  // bytes queued, all shards (Options.QueueBytes)
	inflight atomic.Int64
	// Counted and logged at most once a second each.
	failed, retried, panics tally
	dropped                 [2]tally // DropQueueFull, DropClosed
}

// tally counts events and logs them at most once a second: a burst of a thousand failures
// costs one line, which gives the count since the previous line, the total and the last
// error. Close logs what is left.
type tally struct {
	n        atomic.Uint64
	unlogged atomic.Uint64 // events since the last line
	lastLog  atomic.Int64  // unix nanoseconds of the last line
	mu       sync.Mutex
	lastErr  error
	line     func(count, total uint64, lastErr error)
}

// add counts k events of which err is the last.
func (t *tally) add(k int, err error) {
	if err != nil {
		t.mu.Lock()
		t.lastErr = err
		t.mu.Unlock()
	}
	t.n.Add(uint64(k))
	t.unlogged.Add(uint64(k))
	now := time.Now().UnixNano()
	if last := t.lastLog.Load(); now-last >= int64(time.Second) && t.lastLog.CompareAndSwap(last, now) {
		t.flush()
	}
}

// flush logs the events not logged yet, if any.
func (t *tally) flush() {
	if count := t.unlogged.Swap(0); count > 0 {
		t.mu.Lock()
		err := t.lastErr
		t.mu.Unlock()
		t.line(count, t.n.Load(), err)
	}
}

// item is a queued write and the Completion its outcome is reported to (nil if none).
type item[T any] struct {
	v T
	c *hook.Completion
}

// shard is one ordered queue and the goroutine that flushes it. All fields but wake are
// guarded by mu.
type shard[T any] struct {
	mu     sync.Mutex
	q      ring[item[T]]
	bytes  int    // the Size of the queued items
	free   int    // this shard's share of the queue's room (see Writer.waitRoom)
	closed bool   // no more items accepted
	enq    uint64 // items ever accepted
	done   uint64 // items written or failed; items complete in order, so done is a prefix of enq
	want   uint64 // a Flush waits for done to reach want

	limit    int           // batch size now: Writer.limit, less while flushes time out
	idle     bool          // the flusher waits for a first item
	waitFull bool          // the flusher waits for a full batch
	wake     chan struct{} // capacity 1: a token for the flusher to look again
	doneCh   chan struct{} // closed when done grows; nil if no Flush waits

	// The flusher's own, reused from batch to batch.
	res  BatchResult
	vals []T       // the values of the batch Flush gets
	dest []uint8   // what happens next to each item of a batch with marks
	tmp  []item[T] // to reorder such a batch
}

// NewWriter starts a writer. It panics if cfg.Flush is nil.
func NewWriter[T any](cfg WriterConfig[T]) *Writer[T] {
	if cfg.Flush == nil {
		panic("backend.NewWriter: WriterConfig.Flush is nil")
	}
	if cfg.Store == "" {
		cfg.Store = "backend"
	}
	opts := cfg.Options.WithDefaults()
	if cfg.Key == nil {
		opts.Shards = 1
	}
	w := &Writer[T]{
		cfg:       cfg,
		opts:      opts,
		log:       opts.Logger.With("store", cfg.Store),
		seed:      maphash.MakeSeed(),
		abort:     make(chan struct{}),
		errFull:   fmt.Errorf("%s: write queue full (%d): %w", cfg.Store, opts.QueueSize, hook.ErrDropped),
		errClosed: fmt.Errorf("%s: writer %w: %w", cfg.Store, hook.ErrClosed, hook.ErrDropped),
		errTimeout: fmt.Errorf("%s: no room in the write queue within %v (EnqueueTimeout): %w: %w",
			cfg.Store, opts.EnqueueTimeout, hook.ErrDropped, context.DeadlineExceeded),
	}
	w.limit, w.bytes = opts.BatchSize, opts.BatchBytes
	if cfg.MaxBatch > 0 {
		w.limit = min(w.limit, cfg.MaxBatch)
	}
	if cfg.MaxBatchBytes > 0 {
		w.bytes = min(w.bytes, cfg.MaxBatchBytes)
	}
	w.failed.line = func(count, total uint64, err error) {
		w.log.Error("writes failed", "count", count, "total", total, "error", err)
	}
	w.retried.line = func(count, total uint64, err error) {
		w.log.Warn("writes failed, retrying", "count", count, "total", total, "error", err)
	}
	w.panics.line = func(count, total uint64, err error) {
		pe, _ := errors.AsType[*panicError](err)
		w.log.Error("flush panicked", "count", count, "total", total, "panic", pe.value, "stack", pe.stack)
	}
	for i, reason := range []string{DropQueueFull, DropClosed} {
		w.dropped[i].line = func(count, total uint64, _ error) {
			w.log.Warn("writes dropped", "reason", reason, "count", count, "total", total)
		}
	}
	w.base, w.cancel = context.WithCancel(context.Background())
	w.shards = make([]*shard[T], opts.Shards)
	for i := range w.shards {
		s := &shard[T]{limit: w.limit, wake: make(chan struct{}, 1), free: opts.QueueSize / opts.Shards}
		if i < opts.QueueSize%opts.Shards {
			s.free++
		}
		w.shards[i] = s
		w.wg.Add(1)
		go w.run(s)
	}
	return w
}

func (w *Writer[T]) shardFor(v T) *shard[T] {
	if len(w.shards) == 1 {
		return w.shards[0]
	}
	return w.shards[maphash.String(w.seed, w.cfg.Key(v))%uint64(len(w.shards))]
}

// Enqueue hands v to the writer. When the queue is full (Options.QueueSize items queued,
// whatever their shards) it waits for room under OverflowBlock, until Close and for
// Options.EnqueueTimeout at most if set (then it returns an error wrapping ErrDropped and
// context.DeadlineExceeded), and returns an error wrapping ErrDropped at once under
// OverflowDrop. After Close it returns an error wrapping ErrClosed and ErrDropped. Every drop
// is counted by reason. v must not be modified afterwards.
func (w *Writer[T]) Enqueue(v T) error {
	return w.EnqueueContext(context.Background(), v)
}

// EnqueueContext is Enqueue that also stops waiting for room when ctx is done, returning an
// error wrapping ErrDropped and ctx.Err() (counted as a "queue_full" drop, as a wait that
// reaches EnqueueTimeout). When ctx carries a hook.Completion (a Dispatcher in Sync mode), an
// accepted v is added to it and its outcome reported to it: Done(nil) once written, Done(err)
// once failed for good or abandoned by Close.
func (w *Writer[T]) EnqueueContext(ctx context.Context, v T) error {
	size := 0
	if w.cfg.Size != nil {
		size = w.cfg.Size(v)
		if size > w.opts.MaxItemBytes {
			return w.Refuse(fmt.Errorf("%s: a write of %d bytes, over Options.MaxItemBytes (%d): %w", w.cfg.Store, size, w.opts.MaxItemBytes, hook.ErrTooLarge))
		}
		if w.queued.Load()+int64(size) > int64(w.opts.QueueBytes) {
			if err := w.waitBytes(ctx, size); err != nil {
				return err
			}
		}
	}
	s := w.shardFor(v)
	s.mu.Lock()
	if s.free == 0 && !s.closed {
		s.mu.Unlock()
		if err := w.waitRoom(ctx, s); err != nil {
			return err
		}
	}
	if s.closed {
		s.mu.Unlock()
		w.drop(1)
		return w.errClosed
	}
	s.free--
	c := hook.CompletionFrom(ctx)
	if c != nil {
		c.Add()
	}
	s.q.push(item[T]{v, c}, w.opts.QueueSize)
	s.bytes += size
	w.queued.Add(int64(size))
	s.enq++
	if c != nil {
		// Its caller waits for it: no waiting for a batch to fill. The writes that queue
		// while this flush runs make the next batch (group commit).
		s.want = max(s.want, s.enq)
	}
	signal := s.idle || (s.waitFull && (w.full(s) || c != nil))
	if signal {
		s.idle, s.waitFull = false, false
	}
	s.mu.Unlock()
	if signal {
		poke(s.wake)
	}
	return nil
}

// Refuse counts a write its store refuses before queueing it, because its database could not
// hold it (a value longer than its column, a payload its column cannot take): as matched and
// failed, logged with the failures at most once a second. It returns err, for the store's
// Write to return: the broker hears of it before it acknowledges the message.
func (w *Writer[T]) Refuse(err error) error {
	w.refused.Add(1)
	w.failed.add(1, err)
	return err
}

// waitBytes is Enqueue's way when size more bytes would pass Options.QueueBytes: as waitRoom
// for items, it waits until flushers have taken enough, or the queue is empty (a write
// bigger than what is left alone goes through).
func (w *Writer[T]) waitBytes(ctx context.Context, size int) error {
	return w.waitFor(ctx, func(bool) bool {
		q := w.queued.Load()
		return q == 0 || q+int64(size) <= int64(w.opts.QueueBytes)
	})
}

// waitRoom is Enqueue's way when shard to has no room. The room of the queue, QueueSize
// items, is shared by the shards, each holding a part of it so that Enqueue needs no more than
// its shard's lock; a shard out of room takes half of what each other shard holds. If none
// holds any, the writer is full (see waitFor). It returns nil with to.mu held, and room in to
// (or to closed).
func (w *Writer[T]) waitRoom(ctx context.Context, to *shard[T]) error {
	return w.waitFor(ctx, func(look bool) bool { return w.takeRoom(to, look) })
}

// waitFor waits until ready reports room: it fails at once under OverflowDrop, and else
// waits for room (made when a flusher takes a batch) until the writer closes, ctx is done or
// EnqueueTimeout has passed, each counted as a drop. ready(look) is asked first with look
// false, then again, with look true, once the wait is registered, so that room made in
// between is not missed.
func (w *Writer[T]) waitFor(ctx context.Context, ready func(look bool) bool) error {
	var timeout <-chan time.Time
	for {
		if w.closing.Load() {
			w.drop(1)
			return w.errClosed
		}
		if ready(false) {
			return nil
		}
		if w.opts.Overflow == OverflowDrop {
			w.drop(0)
			return w.errFull
		}
		w.roomMu.Lock()
		if w.room == nil {
			w.room = make(chan struct{})
			w.waiting.Store(true)
		}
		room := w.room
		w.roomMu.Unlock()
		// Look again: room made, or Close, before the wait was registered is seen here.
		if w.closing.Load() {
			continue
		}
		if ready(true) {
			return nil
		}
		if timeout == nil && w.opts.EnqueueTimeout > 0 {
			t := time.NewTimer(w.opts.EnqueueTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-ctx.Done():
			w.drop(0)
			return fmt.Errorf("%s: waiting for room in the write queue: %w: %w", w.cfg.Store, hook.ErrDropped, ctx.Err())
		case <-timeout:
			w.drop(0)
			return w.errTimeout
		}
	}
}

// takeRoom moves to shard to half the room of each other shard. It reports whether to has
// room now (or is closed), looking at to only if it moved some or if look is set; if so it
// returns with to.mu held. Room it moves but does not use wakes the waiting Enqueue calls,
// which may have looked for it before it moved.
func (w *Writer[T]) takeRoom(to *shard[T], look bool) bool {
	got := 0
	for _, s := range w.shards {
		if s != to {
			s.mu.Lock()
			n := (s.free + 1) / 2
			s.free -= n
			s.mu.Unlock()
			got += n
		}
	}
	if got == 0 && !look {
		return false
	}
	to.mu.Lock()
	to.free += got
	if got > 1 && w.waiting.Load() {
		w.wakeWaiting()
	}
	if to.free > 0 || to.closed {
		return true
	}
	to.mu.Unlock()
	return false
}

// wakeWaiting wakes the Enqueue calls waiting for room.
func (w *Writer[T]) wakeWaiting() {
	w.roomMu.Lock()
	if w.room != nil {
		close(w.room)
		w.room = nil
		w.waiting.Store(false)
	}
	w.roomMu.Unlock()
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// drop counts a drop with reason index i (0: DropQueueFull, 1: DropClosed).
func (w *Writer[T]) drop(i int) { w.dropped[i].add(1, nil) }

// run is a shard's flusher: it takes batches off the queue in order and writes them, until
// the writer is closed and the queue is empty.
func (w *Writer[T]) run(s *shard[T]) {
	defer w.wg.Done()
	var batch []item[T]
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		s.mu.Lock()
		for s.q.n == 0 {
			if s.closed {
				s.mu.Unlock()
				return
			}
			s.idle = true
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		s.idle = false
		// A partial batch waits for more, unless the writer closes or a Flush waits for it.
		if !w.full(s) && !s.closed && s.want <= s.done {
			s.waitFull = true
			s.mu.Unlock()
			timer.Reset(w.opts.BatchInterval)
		wait:
			for {
				select {
				case <-timer.C:
					break wait
				case <-s.wake:
					s.mu.Lock()
					ready := w.full(s) || s.closed || s.want > s.done
					s.waitFull = !ready
					s.mu.Unlock()
					if ready {
						timer.Stop()
						break wait
					}
				}
			}
			s.mu.Lock()
			s.waitFull = false
		}
		k := w.take(s)
		batch = s.q.pop(batch[:0], k)
		s.free += k
		w.inflight.Add(int64(k))
		s.mu.Unlock()
		if w.waiting.Load() {
			w.wakeWaiting()
		}

		w.write(s, batch, 1)
		clear(batch)

		s.mu.Lock()
		s.done += uint64(k)
		if s.doneCh != nil {
			close(s.doneCh)
			s.doneCh = nil
		}
		s.mu.Unlock()
	}
}

// full reports whether a full batch is queued. The caller holds s.mu.
func (w *Writer[T]) full(s *shard[T]) bool {
	return s.q.n >= s.limit || s.bytes >= w.bytes
}

// take returns how many of the queued items make the next batch, and takes their size off
// s.bytes: s.limit items at most, and no more than w.bytes unless the first alone. The caller
// holds s.mu.
func (w *Writer[T]) take(s *shard[T]) int {
	k := min(s.q.n, s.limit)
	if w.cfg.Size == nil {
		return k
	}
	bytes := 0
	for i := range k {
		size := w.cfg.Size(s.q.at(i).v)
		if i > 0 && bytes+size > w.bytes {
			k = i
			break
		}
		bytes += size
	}
	s.bytes -= bytes
	w.queued.Add(-int64(bytes))
	return k
}

// write writes items, which have had attempt-1 tries, in order and in pieces of at most
// s.limit, and counts the outcome of each.
func (w *Writer[T]) write(s *shard[T], items []item[T], attempt int) {
	for len(items) > 0 {
		n := min(len(items), s.limit)
		w.writePiece(s, items[:n], attempt)
		items = items[n:]
	}
}

// writePiece writes batch until each of its items is written or has failed for good. Items
// to retry are retried here, after a backoff, so that they go before the rest of the shard's
// items; items to isolate are split in halves, each written (and split again) in turn.
func (w *Writer[T]) writePiece(s *shard[T], batch []item[T], attempt int) {
	for {
		if w.aborted() {
			w.fail(batch, fmt.Errorf("%s: close gave up before the write", w.cfg.Store))
			return
		}
		timedOut, err := w.call(s, batch)
		switch {
		case timedOut:
			s.setLimit(max(s.limit/2, 1))
		case err == nil && len(s.res.marks) == 0 && s.limit < w.limit:
			s.setLimit(min(2*s.limit, w.limit))
		}
		unmarked := isWritten // what becomes of the items Flush did not mark
		if err != nil {
			unmarked, err = w.classify(err, timedOut)
		}
		split, retry, retryErr := w.sort(s, batch, unmarked, err)
		if len(split) == 1 {
			w.fail(split, err)
		} else if len(split) > 1 {
			mid := len(split) / 2
			w.write(s, split[:mid], attempt)
			w.write(s, split[mid:], attempt)
		}
		if len(retry) == 0 {
			return
		}
		if max := w.opts.Retry.MaxAttempts; w.aborted() || (max > 0 && attempt >= max) {
			w.fail(retry, retryErr)
			return
		}
		w.retried.add(1, retryErr)
		w.sleep(w.backoff(attempt))
		batch, attempt = retry, attempt+1
		if len(batch) > s.limit { // shrunk by a timeout
			w.write(s, batch, attempt)
			return
		}
	}
}

// ProbeInterval is how often a writer with WriterConfig.Ping probes the database while a
// retry waits.
const ProbeInterval = 100 * time.Millisecond

// sleep waits d before a retry, or less: until Close gives up, or, when the wait is longer
// than ProbeInterval, until WriterConfig.Ping answers after it has failed.
func (w *Writer[T]) sleep(d time.Duration) {
	down := false
	t := time.NewTimer(d)
	defer t.Stop()
	var probe <-chan time.Time
	if w.cfg.Ping != nil && d > ProbeInterval {
		tick := time.NewTicker(ProbeInterval)
		defer tick.Stop()
		probe = tick.C
	}
	for {
		select {
		case <-t.C:
			return
		case <-w.abort:
			return
		case <-probe:
			ctx, cancel := context.WithTimeout(w.base, ProbeInterval)
			err := w.cfg.Ping(ctx)
			cancel()
			// Back once it was down: a database that answers all along (a throttled one, a
			// lock that times out) gets its whole backoff.
			if err != nil {
				down = true
			} else if down {
				return
			}
		}
	}
}

// setLimit sets the shard's batch size: halved when a flush times out, so that a batch too
// big to be written within QueryTimeout is written in pieces rather than retried whole
// forever, and doubled back by each flush that succeeds.
func (s *shard[T]) setLimit(n int) {
	s.mu.Lock()
	s.limit = n
	s.mu.Unlock()
}

// What becomes of an item after a Flush call, in the order sort puts them.
const (
	isWritten    uint8 = iota
	isFailed           // unmarked, Flush's error
	isFailedMark       // marked failed
	toSplit            // to isolate
	toRetry            // to write again
)

// sort counts the items of batch that are done after a Flush call that returned err, given
// what becomes of the unmarked ones, and returns the others in their order: those to split,
// and those to retry with the error to report if they run out of tries. With marks it
// reorders batch: done items first, then the others.
func (w *Writer[T]) sort(s *shard[T], batch []item[T], unmarked uint8, err error) (split, retry []item[T], retryErr error) {
	marks := s.res.marks
	if len(marks) == 0 {
		switch unmarked {
		case isWritten:
			w.succeed(batch)
		case isFailed:
			w.fail(batch, err)
		case toSplit:
			return batch, nil, nil
		case toRetry:
			return nil, batch, err
		}
		return nil, nil, nil
	}

	dest := s.dest[:0]
	for range batch {
		dest = append(dest, unmarked)
	}
	s.dest = dest
	var markErr [2]error // the last of the failed marks, of the retry marks
	for _, m := range marks {
		if m.retry {
			dest[m.i], markErr[1] = toRetry, m.err
		} else {
			dest[m.i], markErr[0] = isFailedMark, m.err
		}
	}
	var n [toRetry + 1]int
	for i, d := range dest {
		n[d]++
		if c := batch[i].c; c != nil {
			switch d {
			case isWritten:
				c.Done(nil)
			case isFailed:
				c.Done(err)
			case isFailedMark:
				c.Done(markErrOf(marks, i))
			}
		}
	}
	w.count(n[isWritten], n[isFailed], err)
	w.count(0, n[isFailedMark], markErr[0])
	retryErr = markErr[1]
	if unmarked == toRetry {
		retryErr = err
	}
	if n[toSplit] == 0 && n[toRetry] == 0 {
		return nil, nil, nil
	}
	// Move the items to split, then those to retry, in order, behind the done ones.
	s.tmp = append(s.tmp[:0], batch...)
	done := len(batch) - n[toSplit] - n[toRetry]
	k := done
	for _, group := range [...]uint8{toSplit, toRetry} {
		for i, d := range dest {
			if d == group {
				batch[k] = s.tmp[i]
				k++
			}
		}
	}
	clear(s.tmp)
	return batch[done : done+n[toSplit]], batch[done+n[toSplit]:], retryErr
}

// markErrOf is the error of the last failed mark of item i.
func markErrOf(marks []mark, i int) error {
	var err error
	for _, m := range marks {
		if m.i == i && !m.retry {
			err = m.err
		}
	}
	return err
}

// succeed counts items as written and reports them to their Completions.
func (w *Writer[T]) succeed(items []item[T]) {
	for _, it := range items {
		if it.c != nil {
			it.c.Done(nil)
		}
	}
	w.count(len(items), 0, nil)
}

// fail counts items as failed for good with err and reports them to their Completions.
func (w *Writer[T]) fail(items []item[T], err error) {
	for _, it := range items {
		if it.c != nil {
			it.c.Done(err)
		}
	}
	w.count(0, len(items), err)
}

// count counts written written items and failed failed ones (the last with err), which
// leave the flushes in progress.
func (w *Writer[T]) count(written, failed int, err error) {
	if written > 0 {
		w.success.Add(uint64(written))
	}
	if failed > 0 {
		w.failed.add(failed, err)
	}
	w.inflight.Add(-int64(written + failed))
}

func (w *Writer[T]) aborted() bool {
	select {
	case <-w.abort:
		return true
	default:
		return false
	}
}

// panicError is a Flush that panicked: FailItem, whatever Classify says.
type panicError struct {
	msg   string
	value any // recovered
	stack string
}

func (e *panicError) Error() string { return e.msg }

// call runs Flush on batch within the query timeout, with s.res reset for it. timedOut says
// that it failed once that timeout had expired.
func (w *Writer[T]) call(s *shard[T], batch []item[T]) (timedOut bool, err error) {
	ctx, cancel := context.WithTimeout(w.base, w.opts.QueryTimeout)
	defer cancel()
	for _, it := range batch {
		s.vals = append(s.vals, it.v)
	}
	err = w.safeFlush(ctx, s, s.vals)
	clear(s.vals) // keep no reference to what was written
	s.vals = s.vals[:0]
	// The deadline, not only ctx.Err(): the timer that sets it may not have run yet.
	dl, _ := ctx.Deadline()
	return err != nil && (ctx.Err() == context.DeadlineExceeded || !time.Now().Before(dl)), err
}

// safeFlush calls Flush, turning a panic into an error (and dropping the marks of a Flush
// that did not finish).
func (w *Writer[T]) safeFlush(ctx context.Context, s *shard[T], batch []T) (err error) {
	s.res.reset(len(batch))
	defer func() {
		if r := recover(); r != nil {
			s.res.reset(len(batch))
			pe := &panicError{fmt.Sprintf("%s: flush of %d writes panicked: %v", w.cfg.Store, len(batch), r), r, string(debug.Stack())}
			w.panics.add(1, pe)
			err = pe
		}
	}()
	return w.cfg.Flush(ctx, batch, &s.res)
}

// classify says what err, returned by Flush (after its QueryTimeout if timedOut), means for
// the unmarked items (toRetry, toSplit or isFailed), and what to report.
func (w *Writer[T]) classify(err error, timedOut bool) (uint8, error) {
	class := FailItem
	switch _, panicked := errors.AsType[*panicError](err); {
	case panicked:
	case w.cfg.Classify != nil:
		class = w.cfg.Classify(err)
	case timedOut:
		class = FailUnknown
	case IsTransient(err):
		class = FailRetry
	}
	switch class {
	case FailRetry:
		return toRetry, err
	case FailUnknown:
		if !w.cfg.NotIdempotent {
			return toRetry, err
		}
		return isFailed, fmt.Errorf("outcome unknown, not retried (not idempotent): %w", err)
	case FailBatch:
		return isFailed, err
	}
	return toSplit, err
}

// backoff is the wait before retry number attempt: exponential from MinBackoff, capped at
// MaxBackoff, with "equal jitter" (between half and all of it) so that shards and writers
// hitting the same outage do not retry in step.
func (w *Writer[T]) backoff(attempt int) time.Duration {
	d := w.opts.Retry.MinBackoff
	for i := 1; i < attempt && d < w.opts.Retry.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, w.opts.Retry.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

// Flush waits until every item enqueued before the call has been written or has failed (and
// been counted), or ctx is done. Partial batches are flushed at once rather than after
// BatchInterval. It implements hook.Flusher for the stores.
func (w *Writer[T]) Flush(ctx context.Context) error {
	targets := make([]uint64, len(w.shards))
	for i, s := range w.shards {
		s.mu.Lock()
		targets[i] = s.enq
		pending := s.done < s.enq
		if pending {
			s.want = max(s.want, s.enq)
		}
		s.mu.Unlock()
		if pending {
			poke(s.wake)
		}
	}
	for i, s := range w.shards {
		for {
			s.mu.Lock()
			if s.done >= targets[i] {
				s.mu.Unlock()
				break
			}
			if s.doneCh == nil {
				s.doneCh = make(chan struct{})
			}
			ch := s.doneCh
			s.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return fmt.Errorf("%s: flush: %w", w.cfg.Store, ctx.Err())
			}
		}
	}
	return nil
}

// Stats returns a snapshot of the counters. Matched counts every Enqueue call, so that once
// the writer is idle Matched == Success + Failed + the sum of Dropped (Queued and Inflight 0).
func (w *Writer[T]) Stats() Stats {
	st := Stats{
		Success:  w.success.Load(),
		Failed:   w.failed.n.Load(),
		Retried:  w.retried.n.Load(),
		Inflight: int(w.inflight.Load()),
		Dropped: map[string]uint64{
			DropQueueFull: w.dropped[0].n.Load(),
			DropClosed:    w.dropped[1].n.Load(),
		},
	}
	st.Matched = st.Dropped[DropQueueFull] + st.Dropped[DropClosed] + w.refused.Load()
	// All shards at once, so that Queued is never more than QueueSize.
	for _, s := range w.shards {
		s.mu.Lock()
		st.Matched += s.enq
		st.Queued += s.q.n
	}
	for _, s := range w.shards {
		s.mu.Unlock()
	}
	return st
}

// Close stops accepting items (Enqueue then fails with hook.ErrClosed) and writes out what is
// queued, retrying as usual, until done or until ctx is done. In that case it gives up: queued
// items are counted as failed, flushes in progress have their context canceled, and the
// error, wrapping ctx.Err(), says how many items were not written. A second Close returns an
// error wrapping ErrClosed.
func (w *Writer[T]) Close(ctx context.Context) error {
	if !w.closing.CompareAndSwap(false, true) {
		return fmt.Errorf("%s: close: %w", w.cfg.Store, hook.ErrClosed)
	}
	defer w.flushLogs()
	for _, s := range w.shards {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		poke(s.wake)
	}
	w.wakeWaiting()
	drained := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(drained)
	}()
	select {
	case <-drained:
	case <-ctx.Done():
		select {
		case <-drained: // done just in time (or ctx was already done and there was nothing to write)
		default:
			return w.giveUp(ctx)
		}
	}
	w.cancel()
	return nil
}

// flushLogs logs the counts that the once-a-second limit has held back.
func (w *Writer[T]) flushLogs() {
	for _, t := range []*tally{&w.failed, &w.retried, &w.panics, &w.dropped[0], &w.dropped[1]} {
		t.flush()
	}
}

// giveUp ends a Close whose ctx is done before the queue is drained.
// The queues are emptied first, so that no flusher takes more items once the count is made;
// then the flushes in progress are told to stop.
func (w *Writer[T]) giveUp(ctx context.Context) error {
	abandoned := 0
	errAbandoned := fmt.Errorf("%s: close gave up before the write: %w", w.cfg.Store, ctx.Err())
	for _, s := range w.shards {
		s.mu.Lock()
		k := s.q.n
		for i := range k {
			if c := s.q.at(i).c; c != nil {
				c.Done(errAbandoned)
			}
		}
		s.q.discard()
		w.queued.Add(-int64(s.bytes))
		s.bytes = 0
		s.free += k
		s.done += uint64(k)
		if s.doneCh != nil {
			close(s.doneCh)
			s.doneCh = nil
		}
		s.mu.Unlock()
		abandoned += k
	}
	w.failed.n.Add(uint64(abandoned))
	inflight := w.inflight.Load()
	close(w.abort)
	w.cancel()
	if abandoned == 0 && inflight == 0 {
		return nil // everything was written; the flushers are just exiting
	}
	err := fmt.Errorf("%s: close: %d writes not written (%d abandoned in the queue, %d in flushes not yet returned): %w",
		w.cfg.Store, abandoned+int(inflight), abandoned, inflight, ctx.Err())
	w.log.Error("close gave up", "error", err)
	return err
}

// ring is a FIFO queue in a circular buffer that grows, by doubling, up to the bound its
// caller enforces.
type ring[T any] struct {
	buf     []T
	head, n int
}

func (r *ring[T]) push(v T, bound int) {
	if r.n == len(r.buf) {
		r.grow(bound)
	}
	i := r.head + r.n
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	r.buf[i] = v
	r.n++
}

func (r *ring[T]) grow(bound int) {
	size := min(max(2*len(r.buf), 64), bound)
	buf := make([]T, size)
	k := copy(buf, r.buf[r.head:])
	copy(buf[k:], r.buf[:r.head])
	r.buf, r.head = buf, 0
}

// pop appends up to k items to dst, oldest first, and returns it.
func (r *ring[T]) pop(dst []T, k int) []T {
	k = min(k, r.n)
	end := r.head + k
	if end <= len(r.buf) {
		dst = append(dst, r.buf[r.head:end]...)
		clear(r.buf[r.head:end])
	} else {
		end -= len(r.buf)
		dst = append(dst, r.buf[r.head:]...)
		dst = append(dst, r.buf[:end]...)
		clear(r.buf[r.head:])
		clear(r.buf[:end])
	}
	r.head, r.n = end, r.n-k
	if r.head == len(r.buf) || r.n == 0 {
		r.head = 0
	}
	return dst
}

// at returns the i-th oldest item.
func (r *ring[T]) at(i int) T {
	i += r.head
	if i >= len(r.buf) {
		i -= len(r.buf)
	}
	return r.buf[i]
}

func (r *ring[T]) discard() {
	clear(r.buf)
	r.head, r.n = 0, 0
}
