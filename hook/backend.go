package hook

import "context"

// Backend is a store seen by the dispatcher. It is deliberately small: the dispatcher hands
// each rule to Prepare once, at registration, and afterwards calls only the Action it got back,
// so a store's per-event path has no rule interpretation left in it.
//
// Registration is all or nothing. Dispatcher.Register prepares every rule of the call first;
// Prepare must therefore be pure: it checks the rule and builds its action, and changes nothing
// in the store (no expiry purge started, no index created, no template bound to a connection).
// Only once every rule has prepared does the dispatcher call Activate (when the backend is an
// Activator) with all the actions, and only if that succeeds are the rules registered. A
// registration that fails at any rule leaves no trace in the store.
//
// Optional capabilities are separate interfaces, found by type assertion (as database/sql does
// with its driver interfaces): Activator and Flusher here, and the statistics, state and health
// interfaces of package backend. The contract never grows a method a store must add.
//
// A Backend must be safe for concurrent use.
type Backend interface {
	// Prepare checks rule r against what the store supports (function name, statements,
	// options: a key of r.Options the store does not know is refused with an error wrapping
	// ErrUnknownOption) and returns the action that carries it out: a WriteAction or a
	// LookupAction. It must not change the store's state (see Activator). The error says what
	// is wrong; the dispatcher adds the rule's name. r is not modified and may be kept.
	Prepare(r *Rule) (Action, error)
	// Close writes out what is queued and releases the store's resources, giving up when ctx
	// is done (what could not be written is reported in the error and the store's counters).
	Close(ctx context.Context) error
}

// Activator is implemented by backends whose rules need store state: an expiry purge for
// expired_time, a TTL index, a statement prepared on the server. Dispatcher.Register calls
// Activate once per registration, after every rule of the call has prepared, with the actions
// Prepare returned, in rule order. If Activate fails, nothing of the registration is kept:
// Activate must then leave the store as it was (or in a state a later successful Activate
// overrides). Activate is called before any event reaches the actions.
type Activator interface {
	Activate(ctx context.Context, actions []Action) error
}

// Action is a prepared rule: a WriteAction or a LookupAction.
type Action interface{}

// WriteAction records an event.
//
// Write enqueues and returns: it does not wait on the database, with one exception. When the
// store's write queue is full and its overflow policy is to block, Write waits for room, but
// never longer than ctx allows (nor than the store's enqueue timeout); it then returns an error
// wrapping ErrDropped, and the write is counted as dropped. A broker that must not stall passes
// a context it cancels at shutdown (see the mochi adapter) or uses the drop policy.
//
// Write may be called concurrently, and may keep e after it returns (see Message).
type WriteAction interface {
	Write(ctx context.Context, e Event) error
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
