package backend

import "github.com/mqttstore/mqttstore/hook"

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
// connection closed mid-reply (hook.IsTransient). The default WriterConfig.Classify calls
// these FailRetry; a store's own Classify starts from it and adds its driver's codes
// (deadlock, serialization failure, server shutting down, ...).
func IsTransient(err error) bool { return hook.IsTransient(err) }
