package backend

import (
	"crypto/tls"
	"log/slog"
	"time"
)

// OverflowPolicy says what Enqueue does when the write queue is full.
type OverflowPolicy int

const (
	// OverflowBlock (the default) makes Enqueue wait for room: nothing is lost, and a database
	// slower than the message rate slows the broker down (MQTT flow control does the rest).
	OverflowBlock OverflowPolicy = iota
	// OverflowDrop makes Enqueue return an error wrapping hook.ErrDropped at once; every drop is
	// counted (Stats.Dropped["queue_full"]) and logged.
	OverflowDrop
)

// Options are the settings every store shares. The zero value means the defaults below.
type Options struct {
	PoolSize       int           // connections to the database; default 8 (the spec's pool_size)
	TLS            *tls.Config   // nil: plain connections, unless the store's address says otherwise
	ConnectTimeout time.Duration // default 5s
	// QueryTimeout bounds one flush or lookup when the caller's context has no earlier
	// deadline; default 5s.
	QueryTimeout time.Duration
	BatchSize    int // writes per flush at most; default 500
	// BatchBytes is the byte budget of one flush (the sum of WriterConfig.Size of its writes),
	// so that big payloads make smaller batches; default 4 MiB. A write bigger than that is
	// flushed alone.
	BatchBytes    int
	BatchInterval time.Duration // how long a partial batch waits for more; default 5ms
	// Shards is how many batches may be flushed concurrently, items going to a shard by the
	// hash of their key (WriterConfig.Key), so that one key's writes stay in order; default 4.
	// Every store takes it from here: a store whose writes must form one ordered stream gives
	// them one key (the SQL stores' messages and acks), not one shard.
	Shards    int
	QueueSize int            // writes queued at most, all shards together; default 65536
	Overflow  OverflowPolicy // default OverflowBlock
	// QueueBytes bounds the bytes queued (the sum of WriterConfig.Size of the queued writes),
	// all shards together, as QueueSize bounds their number: a full queue of big payloads
	// waits (or drops, per Overflow) rather than growing memory; default 256 MiB. It is a
	// soft bound: concurrent writes may pass it by a write each. A write bigger than
	// MaxItemBytes (default: QueueBytes) is refused with ErrTooLarge and counted as failed.
	QueueBytes   int
	MaxItemBytes int
	// EnqueueTimeout is how long Enqueue waits for room under OverflowBlock, on top of its
	// ctx, before it drops the write; 0: no limit but ctx and Close.
	EnqueueTimeout time.Duration
	Retry          Retry
	Logger         *slog.Logger // default slog.Default()
}

// Retry is how writes are retried (FailRetry, FailUnknown, BatchResult.Retry): with
// exponential backoff from MinBackoff to MaxBackoff (with jitter), MaxAttempts times at most
// (0: until the writer is closed, so a database that is down loses nothing while the queue has
// room).
type Retry struct {
	MaxAttempts int           // tries of an item, the first included; 1 means no retry
	MinBackoff  time.Duration // default 50ms
	MaxBackoff  time.Duration // default 5s
}

// WithDefaults returns o with every zero field set to its default.
func (o Options) WithDefaults() Options {
	if o.PoolSize <= 0 {
		o.PoolSize = 8
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.QueryTimeout <= 0 {
		o.QueryTimeout = 5 * time.Second
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 4 << 20
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = 5 * time.Millisecond
	}
	if o.Shards <= 0 {
		o.Shards = 4
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 65536
	}
	if o.QueueBytes <= 0 {
		o.QueueBytes = 256 << 20
	}
	if o.MaxItemBytes <= 0 || o.MaxItemBytes > o.QueueBytes {
		o.MaxItemBytes = o.QueueBytes
	}
	if o.Retry.MinBackoff <= 0 {
		o.Retry.MinBackoff = 50 * time.Millisecond
	}
	if o.Retry.MaxBackoff <= 0 {
		o.Retry.MaxBackoff = 5 * time.Second
	}
	if o.Retry.MaxBackoff < o.Retry.MinBackoff {
		o.Retry.MaxBackoff = o.Retry.MinBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
