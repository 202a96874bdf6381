package hook

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

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

// IsTransient reports whether err looks like a passing failure of the network or the server
// rather than of the request itself: a timeout, a refused, reset or aborted connection, a
// connection closed mid-reply. The Dispatcher retries a lookup that fails so, within its
// deadline; backend.Writer retries such writes.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	for _, target := range []error{
		context.DeadlineExceeded, io.EOF, io.ErrUnexpectedEOF, net.ErrClosed,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	} {
		if errors.Is(err, target) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	// net/http's error for a request sent on a pooled connection the server had just closed
	// is unexported: its text is what there is.
	return strings.Contains(err.Error(), "http: server closed idle connection")
}
