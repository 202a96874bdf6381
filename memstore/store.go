package memstore

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// Functions is every built-in function, in the order of ARCHITECTURE.md's table: what a Store
// accepts unless Config.Functions lists fewer. Do not modify it.
var Functions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected,
	hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore,
	hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
	hook.OnMessageFetchForQueue, hook.OnMessageAckedForQueue,
	hook.OnMessageFetchForPubsub, hook.OnMessageAckedForPubsub,
	hook.OnMessageStoreKeepLatest, hook.OnMessageFetchForKeepLatest, hook.OnMessageAckedForKeepLatest,
}

// Defaults of Config.
const (
	DefaultQueueSize = 1024
	DefaultBatchSize = 64
)

// purgeInterval is how often an activated Store removes expired messages from memory.
const purgeInterval = 100 * time.Millisecond

// Config configures a Store. The zero value is ready to use.
type Config struct {
	// Namespace holds the data the Store reads and writes; nil means a new, empty one. Give
	// two Stores the same Namespace to fake two brokers on one database, or a closed Store's
	// Namespace to fake a restart.
	Namespace *Namespace
	// Functions lists the built-in functions Prepare accepts (hook.On... names); nil means all
	// of them (Functions). Listing fewer fakes a store that has fewer.
	Functions []string
	// QueueSize bounds the writes waiting to be applied; default DefaultQueueSize. When the
	// queue is full, Write waits for room as long as its context allows.
	QueueSize int
	// BatchSize is how many queued writes are applied at once at most; default
	// DefaultBatchSize.
	BatchSize int
}

// Store is the in-memory hook.Backend. See the package documentation.
type Store struct {
	ns        *Namespace
	fns       map[string]bool
	queueSize int
	batchSize int
	v         variant

	mu   sync.Mutex // guards the fields up to stop
	q    []queued
	enq  uint64 // writes ever queued
	done uint64 // writes applied, failed or discarded: always a prefix of enq
	// flushWant is the enq a Flush waits for (read only by the bugs that hold writes).
	flushWant uint64
	inflight  int
	closed    bool
	abort     bool          // Close gave up: the applier discards what is queued
	wake      chan struct{} // capacity 1: a token for the applier to look again
	room      chan struct{} // closed when room is made; nil unless a Write waits
	doneCh    chan struct{} // closed when done grows; nil unless a Flush waits
	purging   bool
	stop      chan struct{} // closed by Close: stops the purge

	applier sync.WaitGroup
	purge   sync.WaitGroup

	matched, success, failed   atomic.Uint64
	droppedFull, droppedClosed atomic.Uint64
}

// op is one queued write, applied with the Namespace locked. An error counts it as failed.
type op func(t *tx) error

// queued is an op in the queue, and the Completion of the hook call that made it (nil if
// none), told its outcome.
type queued struct {
	apply op
	c     *hook.Completion
}

// discard reports the outcome of writes that will never be applied.
func discard(qs []queued, err error) {
	for _, q := range qs {
		if q.c != nil {
			q.c.Done(err)
		}
	}
}

// New returns a Store. It fails, with an error wrapping hook.ErrConfig, on a function name
// that is not a built-in function or a negative size.
func New(cfg Config) (*Store, error) {
	return newStore(cfg, variant{})
}

func newStore(cfg Config, v variant) (*Store, error) {
	if cfg.QueueSize < 0 || cfg.BatchSize < 0 {
		return nil, fmt.Errorf("memstore: negative QueueSize or BatchSize: %w", hook.ErrConfig)
	}
	fns := cfg.Functions
	if fns == nil {
		fns = Functions
	}
	s := &Store{
		ns:        cfg.Namespace,
		fns:       make(map[string]bool, len(fns)),
		queueSize: cfg.QueueSize,
		batchSize: cfg.BatchSize,
		v:         v,
		wake:      make(chan struct{}, 1),
		stop:      make(chan struct{}),
	}
	for _, f := range fns {
		if _, ok := hook.LookupFunction(f); !ok {
			return nil, fmt.Errorf("memstore: Functions lists %q, which is not a built-in function: %w", f, hook.ErrConfig)
		}
		s.fns[f] = true
	}
	if s.ns == nil {
		s.ns = NewNamespace()
	}
	if s.queueSize == 0 {
		s.queueSize = DefaultQueueSize
	}
	if s.batchSize == 0 {
		s.batchSize = DefaultBatchSize
	}
	s.applier.Add(1)
	go s.run()
	return s, nil
}

// Namespace returns the Namespace the Store reads and writes.
func (s *Store) Namespace() *Namespace { return s.ns }

var (
	errClosed = fmt.Errorf("memstore: %w", hook.ErrClosed)
	// errDroppedClosed is what Write returns after Close.
	errDroppedClosed = fmt.Errorf("memstore: write: store %w: %w", hook.ErrClosed, hook.ErrDropped)
	// errDiscarded is the outcome of a queued write that Close discarded.
	errDiscarded = fmt.Errorf("memstore: close gave up before the write: %w", hook.ErrDropped)
)

// enqueue queues o. When the queue is full it waits for room until ctx is done.
func (s *Store) enqueue(ctx context.Context, o op) error {
	s.mu.Lock()
	if s.v.bug == bugDropsWhenBusy && len(s.q) >= 16 {
		s.mu.Unlock()
		return nil // and the write is never seen again, nor counted
	}
	s.matched.Add(1)
	for {
		if s.closed {
			s.mu.Unlock()
			s.droppedClosed.Add(1)
			return errDroppedClosed
		}
		if len(s.q) < s.queueSize {
			break
		}
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			s.droppedFull.Add(1)
			return fmt.Errorf("memstore: write: waiting for room in the queue (%d): %w: %w", s.queueSize, hook.ErrDropped, ctx.Err())
		}
		s.mu.Lock()
	}
	c := hook.CompletionFrom(ctx)
	if c != nil && s.v.bug != bugSyncNotStored {
		c.Add()
	} else {
		c = nil
	}
	s.q = append(s.q, queued{o, c})
	s.enq++
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// run is the applier: it applies the queue in order, a batch at a time, until the Store is
// closed and the queue empty.
func (s *Store) run() {
	defer s.applier.Done()
	for {
		s.mu.Lock()
		for (len(s.q) == 0 || s.holds()) && !s.closed {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if len(s.q) == 0 || s.abort {
			if n := len(s.q); n > 0 {
				s.droppedClosed.Add(uint64(n))
				discard(s.q, errDiscarded)
				s.q = nil
				s.advance(n)
			}
			s.mu.Unlock()
			return
		}
		n := min(len(s.q), s.batchSize)
		batch := slices.Clone(s.q[:n])
		s.q = slices.Delete(s.q, 0, n)
		s.inflight = n
		if s.room != nil {
			close(s.room)
			s.room = nil
		}
		s.mu.Unlock()

		s.apply(batch)

		s.mu.Lock()
		s.inflight = 0
		s.advance(n)
		s.mu.Unlock()
	}
}

// holds reports whether the applier keeps the queue for now: only the bugs about queued
// writes do (close-drops-queue, drops-when-busy, sync-not-stored), applying writes when a Flush asks for them,
// so that the writes made since the last Flush are surely still queued when the bug strikes,
// however fast the applier would have been. s.mu is held.
func (s *Store) holds() bool {
	return (s.v.bug == bugCloseDropsQueue || s.v.bug == bugDropsWhenBusy || s.v.bug == bugSyncNotStored) && s.done >= s.flushWant
}

// advance records n more writes done and wakes the Flush calls waiting. s.mu is held.
func (s *Store) advance(n int) {
	s.done += uint64(n)
	if s.doneCh != nil {
		close(s.doneCh)
		s.doneCh = nil
	}
}

// tx is the application of one batch.
type tx struct {
	s    *Store
	ns   *Namespace
	now  time.Time
	keys []uint64 // order keys taken before the batch was applied (keys-before-commit)
}

// nextKey returns the order key of a message stored now.
func (t *tx) nextKey() uint64 {
	if len(t.keys) > 0 {
		k := t.keys[0]
		t.keys = t.keys[1:]
		return k
	}
	t.ns.seq++
	return t.ns.seq
}

func (s *Store) apply(batch []queued) {
	ns := s.ns
	t := &tx{s: s, ns: ns, now: time.Now()}
	switch s.v.bug {
	case bugKeysBeforeCommit:
		// The keys are taken first; every other batch then becomes visible late, after later
		// keys may have: a position can pass its messages before they are seen.
		ns.mu.Lock()
		for range batch {
			ns.seq++
			t.keys = append(t.keys, ns.seq)
		}
		late := ns.batches%2 == 1
		ns.batches++
		ns.mu.Unlock()
		if late {
			time.Sleep(30 * time.Millisecond)
		}
	case bugDropsWhenBusy:
		time.Sleep(time.Millisecond) // a slow database: the queue fills up
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	for _, q := range batch {
		err := q.apply(t)
		if err != nil {
			s.failed.Add(1)
		} else {
			s.success.Add(1)
		}
		if q.c != nil {
			q.c.Done(err)
		}
	}
}

// Flush returns once every write queued before the call has been applied (or has failed),
// or ctx is done.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	target := s.enq
	s.flushWant = max(s.flushWant, target)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	for s.done < target {
		if s.doneCh == nil {
			s.doneCh = make(chan struct{})
		}
		ch := s.doneCh
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("memstore: flush: %w", ctx.Err())
		}
		s.mu.Lock()
	}
	s.mu.Unlock()
	return nil
}

// Close stops accepting writes, applies what is queued and stops the Store's goroutines.
// When ctx ends first, the writes still queued are discarded, counted in
// Stats.Dropped["closed"], and Close returns an error wrapping ctx.Err(). Closing again does
// nothing.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.v.bug == bugCloseDropsQueue {
		n := len(s.q)
		s.q = nil
		s.advance(n)
	}
	close(s.stop)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}

	drained := make(chan struct{})
	go func() {
		s.applier.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		s.mu.Lock()
		lost := len(s.q)
		s.abort = true
		s.mu.Unlock()
		<-drained // the batch being applied finishes; the rest is discarded
		err = fmt.Errorf("memstore: close: %d queued writes discarded: %w", lost, ctx.Err())
	}
	s.purge.Wait()
	if s.v.bug == bugCloseForgetsRetained {
		s.ns.mu.Lock()
		clear(s.ns.retained)
		s.ns.mu.Unlock()
	}
	return err
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Activate starts, when one of the actions stores messages with an expiry, the purge that
// removes expired messages from memory (fetches never return them either way). It is how
// hook.Dispatcher.Register finishes a registration; Prepare itself changes nothing.
func (s *Store) Activate(ctx context.Context, actions []hook.Action) error {
	expiring := false
	for i, a := range actions {
		w, ok := a.(*writeAction)
		if l, isLookup := a.(*lookupAction); isLookup {
			ok = l.s == s
		} else if ok {
			ok = w.s == s
			expiring = expiring || w.ttl > 0
		}
		if !ok {
			return fmt.Errorf("memstore: action %d (%T) was not prepared by this store", i, a)
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: %w", hook.ErrClosed)
	}
	if expiring && !s.purging {
		s.purging = true
		s.purge.Add(1)
		go s.purgeLoop()
	}
	return nil
}

func (s *Store) purgeLoop() {
	defer s.purge.Done()
	tick := time.NewTicker(purgeInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			if s.v.bug == bugNeverExpires {
				continue
			}
			s.ns.mu.Lock()
			for _, sm := range s.ns.msgs {
				if sm.expired(now) {
					delete(s.ns.byID, sm.m.ID)
				}
			}
			s.ns.msgs = slices.DeleteFunc(s.ns.msgs, func(sm *stored) bool { return sm.expired(now) })
			s.ns.mu.Unlock()
		}
	}
}

// Stats returns the write counters. Matched counts every Write; each ends up in exactly one
// of Success (applied), Failed (refused by Write as invalid, or by the fake database),
// Dropped (by reason: "queue_full" when the caller's context ended while waiting for room,
// "closed" after Close or when Close gave up), Queued or Inflight.
func (s *Store) Stats() backend.Stats {
	s.mu.Lock()
	queued, inflight := len(s.q), s.inflight
	s.mu.Unlock()
	return backend.Stats{
		Matched: s.matched.Load(),
		Success: s.success.Load(),
		Failed:  s.failed.Load(),
		Dropped: map[string]uint64{
			backend.DropQueueFull: s.droppedFull.Load(),
			backend.DropClosed:    s.droppedClosed.Load(),
		},
		Queued:   queued,
		Inflight: inflight,
	}
}

// Ping reports whether the Store is open.
func (s *Store) Ping(ctx context.Context) error {
	if s.isClosed() {
		return errClosed
	}
	return ctx.Err()
}

// ClientState returns what on_client_connected and on_client_disconnected recorded for the
// client, or an error wrapping hook.ErrNotFound.
func (s *Store) ClientState(ctx context.Context, clientID string) (backend.ClientState, error) {
	if err := s.usable(ctx); err != nil {
		return backend.ClientState{}, err
	}
	s.ns.mu.Lock()
	defer s.ns.mu.Unlock()
	st, ok := s.ns.clients[clientID]
	if !ok {
		return st, fmt.Errorf("memstore: client state of %q: %w", clientID, hook.ErrNotFound)
	}
	return st, nil
}

// AddSubscription records a subscription on_subscribe_lookup returns, replacing the QoS of
// the client's subscription to the same filter.
func (s *Store) AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	s.ns.mu.Lock()
	defer s.ns.mu.Unlock()
	if s.ns.subs[clientID] == nil {
		s.ns.subs[clientID] = make(map[string]byte)
	}
	s.ns.subs[clientID][sub.Topic] = sub.QoS
	return nil
}

// DeleteSubscription removes the client's subscription to the filter topic, if any.
func (s *Store) DeleteSubscription(ctx context.Context, clientID, topic string) error {
	if err := s.usable(ctx); err != nil {
		return err
	}
	s.ns.mu.Lock()
	defer s.ns.mu.Unlock()
	delete(s.ns.subs[clientID], topic)
	return nil
}

// usable returns an error if the store is closed or ctx is done.
func (s *Store) usable(ctx context.Context) error {
	if s.isClosed() {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: %w", err)
	}
	return nil
}

// Interfaces the Store implements.
var (
	_ hook.Backend              = (*Store)(nil)
	_ hook.Activator            = (*Store)(nil)
	_ hook.Flusher              = (*Store)(nil)
	_ backend.StatsReporter     = (*Store)(nil)
	_ backend.ClientStateReader = (*Store)(nil)
	_ backend.SubscriptionStore = (*Store)(nil)
	_ backend.Pinger            = (*Store)(nil)
)
