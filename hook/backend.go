package hook

import "context"

// Backend is a store seen by the dispatcher. It is deliberately small: the dispatcher hands
// each rule to Prepare once, at registration, and afterwards calls only the Action it got back,
// so a store's per-event path has no rule interpretation left in it.
//
// Optional capabilities are separate interfaces, found by type assertion (as database/sql does
// with its driver interfaces): Flusher here, and the statistics and health interfaces of package
// backend.
//
// A Backend must be safe for concurrent use; Prepare is only called before the first event that
// could reach the rule it returns an action for.
type Backend interface {
	// Prepare checks rule r against what the store supports (function name, statements,
	// options) and returns the action that carries it out: a WriteAction or a LookupAction.
	// The error names the rule and what is wrong with it. r is not modified and may be kept.
	Prepare(r *Rule) (Action, error)
	// Close writes out what is queued and releases the store's resources, giving up when ctx
	// is done (what could not be written is reported in the error and the store's counters).
	Close(ctx context.Context) error
}

// Action is a prepared rule: a WriteAction or a LookupAction.
type Action interface{}

// WriteAction records an event. Write must not wait on I/O: stores enqueue and return, and
// report queue overflow as an error wrapping hook.ErrDropped (or block, as their options say).
// Write may be called concurrently, and may keep e after it returns (see Message).
type WriteAction interface {
	Write(e Event) error
}

// LookupAction answers one of the broker's lookups (subscriptions to restore, offline or
// retained messages to deliver) synchronously, within ctx's deadline.
type LookupAction interface {
	Lookup(ctx context.Context, e Event) (Result, error)
}

// Flusher is implemented by backends with asynchronous writes: Flush returns once everything
// enqueued before the call has been written (or has failed and been counted), or ctx is done.
type Flusher interface {
	Flush(ctx context.Context) error
}
