package hook

import "errors"

// Sentinel errors that callers branch on with errors.Is. They are the only ones: stores and
// the helpers of package backend wrap these, so that one errors.Is(err, hook.ErrClosed)
// answers for a dispatcher, a store and a writer alike.
var (
	// ErrClosed: the dispatcher, store or writer is closed.
	ErrClosed = errors.New("closed")
	// ErrDropped: a write was not queued (queue full under OverflowDrop, the caller's context
	// ended while waiting for room, or the writer was closed). Dropped writes are counted.
	ErrDropped = errors.New("write dropped")
	// ErrUnsupported: the store does not support a rule's function, point, action kind or
	// option.
	ErrUnsupported = errors.New("unsupported")
	// ErrNotFound: a lookup by key found nothing (e.g. the ClientState of an unknown client).
	ErrNotFound = errors.New("not found")
	// ErrConfig: a store's configuration cannot be used (a bad DSN, an unknown mode, ...).
	ErrConfig = errors.New("invalid config")
	// ErrInvalidEvent: a nil event, a message event without a Message, or an event of a kind
	// the action cannot handle.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrTooLarge: a write is bigger than a store takes (backend.Options.MaxItemBytes, a
	// database's item size limit). It is refused, and counted as failed.
	ErrTooLarge = errors.New("write too large")
)
