package backend

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"
)

// Add returns the sum of s and o, for a store that runs several writers. Neither is modified.
func (s Stats) Add(o Stats) Stats {
	sum := Stats{
		Matched:  s.Matched + o.Matched,
		Success:  s.Success + o.Success,
		Failed:   s.Failed + o.Failed,
		Retried:  s.Retried + o.Retried,
		Queued:   s.Queued + o.Queued,
		Inflight: s.Inflight + o.Inflight,
		Dropped:  make(map[string]uint64, max(len(s.Dropped), len(o.Dropped))),
	}
	for r, n := range s.Dropped {
		sum.Dropped[r] += n
	}
	for r, n := range o.Dropped {
		sum.Dropped[r] += n
	}
	return sum
}

// IsTransient reports whether err looks like a passing failure of the network or the server
// rather than of the write itself: a timeout, a refused, reset or aborted connection, a
// connection closed mid-reply. The default WriterConfig.Classify calls these FailRetry; a
// store's own Classify starts from it and adds its driver's codes (deadlock, serialization
// failure, server shutting down, ...).
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
