package hook

import (
	"context"
	"sync"
	"sync/atomic"
)

// Durability says when a Dispatcher's write calls (MessagePublish, MessageAcked, ...) return.
type Durability uint8

const (
	// Async: a write returns once the stores have queued it. Fastest; what is queued is lost if
	// the process dies (a PUBACK means "accepted in memory").
	Async Durability = iota
	// Sync: a write returns once every store it went to has stored it for good, or failed to;
	// the error then says which. Stores batch the writes of concurrent callers into one
	// transaction (group commit), so throughput holds with many publishers; one caller waits
	// about one batch round trip. A PUBACK sent after it means "stored".
	Sync
	// Spool: a write returns once it is appended to the local log DispatcherOptions.Spool
	// (durable as its sync policy says), then queued as under Async; the record is released
	// when every store has stored the event (or failed to for good). After a crash,
	// Dispatcher.Replay hands the records not released to the stores again, which store
	// each message once (writes are idempotent by msgid). A PUBACK means "on local disk".
	Spool
)

// Completion follows the store writes caused by one hook call, for a Dispatcher that waits
// until they are stored (Sync). The dispatcher puts it in the context it passes to
// WriteAction.Write (WithCompletion); a store that queues a write calls Add when it accepts it
// and Done, once, with its final outcome (stored: nil; failed for good or dropped: the error).
// backend.Writer does both for every store built on it, so such a store needs no code for it.
// A store with a queue of its own must do the same, or its writes count as stored as soon as
// Write returns.
//
// Its methods are safe for concurrent use: Done is typically called on the store's writer
// goroutines while the dispatcher waits.
type Completion struct {
	pending atomic.Int64 // writes accepted and not done, plus the dispatcher's hold
	once    sync.Once
	done    chan struct{} // closed when pending reaches 0
	mu      sync.Mutex
	err     error       // the first failure
	then    func(error) // called once with err when pending reaches 0; may be nil
}

// NewCompletion returns a Completion with one hold, released by Wait: no count of writes
// that completed before the last one was accepted can look like the end.
func NewCompletion() *Completion {
	c := &Completion{done: make(chan struct{})}
	c.pending.Store(1)
	return c
}

// Add records one accepted write, whose outcome Done will report.
func (c *Completion) Add() { c.pending.Add(1) }

// Done reports the outcome of a write recorded by Add: nil when it is stored.
func (c *Completion) Done(err error) {
	if err != nil {
		c.mu.Lock()
		if c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
	if c.pending.Add(-1) == 0 {
		c.once.Do(func() {
			close(c.done)
			if c.then != nil {
				c.mu.Lock()
				err := c.err
				c.mu.Unlock()
				c.then(err)
			}
		})
	}
}

// Wait releases the hold of NewCompletion, to be called once every write was handed over,
// and waits until every write added is done, or ctx is done. It returns the first failure,
// or ctx's error (the writes then go on: they are not canceled).
func (c *Completion) Wait(ctx context.Context) error {
	c.Done(nil)
	select {
	case <-c.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

type completionKey struct{}

// WithCompletion returns ctx carrying c, for WriteAction.Write.
func WithCompletion(ctx context.Context, c *Completion) context.Context {
	return context.WithValue(ctx, completionKey{}, c)
}

// CompletionFrom returns the Completion ctx carries, or nil: a store reports the outcome of
// the write it accepts in a Write call with this context to it.
func CompletionFrom(ctx context.Context) *Completion {
	c, _ := ctx.Value(completionKey{}).(*Completion)
	return c
}
