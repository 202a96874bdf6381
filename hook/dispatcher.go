package hook

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/spool"
	"github.com/mqttstore/mqttstore/topic"
)

// DefaultLookupTimeout bounds a lookup when DispatcherOptions.LookupTimeout is zero.
const DefaultLookupTimeout = 5 * time.Second

// DispatcherOptions configure a Dispatcher. The zero value is ready to use.
type DispatcherOptions struct {
	// Logger receives registration details (debug) and rules that can never match (warn).
	// Nil means slog.Default().
	Logger *slog.Logger
	// LookupTimeout bounds each Dispatch that runs lookups, on top of the caller's context:
	// the broker should not stall a subscribe for long on a slow store. Zero means
	// DefaultLookupTimeout; negative means the caller's context alone.
	LookupTimeout time.Duration
	// IDs makes the IDs of published messages that have none. Nil means NewIDGenerator(Node).
	IDs *IDGenerator
	// Node is the broker's node name, for the default IDs.
	Node string
	// Durability says when the write calls return: Async (the zero value) once the stores
	// have queued the event, Sync once they have stored it, Spool once it is in Spool (see
	// Durability).
	Durability Durability
	// Spool is the local log of Durability Spool, opened by the caller (see package spool),
	// who closes it after the Dispatcher. The Dispatcher appends and releases its records.
	Spool *spool.Spool
}

// ActionError is the failure of one rule's action for an event. Dispatch joins them (with
// errors.Join) when several fail.
type ActionError struct {
	Backend string // the name the backend was registered under
	Rule    string // the rule's Name
	Point   Point
	Err     error
}

func (e *ActionError) Error() string {
	return fmt.Sprintf("hook: %v: backend %q, rule %q: %v", e.Point, e.Backend, e.Rule, e.Err)
}

func (e *ActionError) Unwrap() error { return e.Err }

// Dispatcher runs the rules of every registered backend: for each event, the actions of the
// rules at its point whose topic filter matches. Writes are handed to the stores, which
// enqueue them; lookups run synchronously and their results are merged.
//
// A Dispatcher is safe for concurrent use. Register and Close may run concurrently with
// Dispatch: Dispatch works on an immutable snapshot of the rules, reached through an atomic
// pointer, so it never waits on a lock and never blocks another Dispatch; a Register becomes
// visible to the Dispatch calls that start after it returns, all its rules at once.
type Dispatcher struct {
	log           *slog.Logger
	lookupTimeout time.Duration
	ids           *IDGenerator
	node          string
	durability    Durability
	spool         *spool.Spool

	mu       sync.Mutex // serialises Register and Close
	backends []namedBackend
	entries  []*entry
	closed   bool
	snap     atomic.Pointer[snapshot]
}

type namedBackend struct {
	name string
	b    Backend
}

// entry is a prepared rule: exactly one of write and lookup is set.
type entry struct {
	seq     int // registration order, which is the order results are merged in
	backend string
	rule    *Rule
	write   WriteAction
	lookup  LookupAction
}

// snapshot is an immutable view of the registered rules.
type snapshot struct {
	closed bool
	points [numPoints]pointRules
}

type pointRules struct {
	all      []*entry             // rules without a topic filter, by seq
	filtered *topic.Index[*entry] // rules with one; nil if none
}

// NewDispatcher returns a Dispatcher with no backends.
func NewDispatcher(opts DispatcherOptions) *Dispatcher {
	d := &Dispatcher{log: opts.Logger, lookupTimeout: opts.LookupTimeout, ids: opts.IDs, node: opts.Node, durability: opts.Durability, spool: opts.Spool}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.lookupTimeout == 0 {
		d.lookupTimeout = DefaultLookupTimeout
	}
	if d.ids == nil {
		d.ids = NewIDGenerator(opts.Node)
	}
	d.snap.Store(new(snapshot))
	return d
}

// Register adds backend b under name with its rules, all or nothing. Each rule is validated
// (Rule.Validate) and handed to b.Prepare once; the action must be a LookupAction for a rule
// whose function is a lookup (Rule.IsLookup) and a WriteAction otherwise. Once every rule has
// prepared, a backend that is an Activator is activated with the actions, under ctx; only then
// are the rules registered, all at once. A rule without a Name is named "<name>[i]" after its
// position. The dispatcher keeps its own copy of each rule.
//
// The error is a *RuleError naming the backend and the rule (or an error of Activate); then
// nothing is registered, Prepare having changed nothing in b, and b is not closed. Names must
// be unique. After a successful Register, the Dispatcher owns b and closes it in Close.
func (d *Dispatcher) Register(ctx context.Context, name string, b Backend, rules ...Rule) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("hook: register %q: %w", name, ErrClosed)
	}
	if b == nil {
		return fmt.Errorf("hook: register %q: nil backend", name)
	}
	for _, nb := range d.backends {
		if nb.name == name {
			return fmt.Errorf("hook: register %q: a backend with that name is already registered", name)
		}
	}
	added := make([]*entry, 0, len(rules))
	actions := make([]Action, 0, len(rules))
	for i := range rules {
		r := new(Rule)
		*r = rules[i]
		if r.Name == "" {
			r.Name = name + "[" + strconv.Itoa(i) + "]"
		}
		if err := r.Validate(); err != nil {
			return ruleError(name, r, err)
		}
		act, err := b.Prepare(r)
		if err != nil {
			return ruleError(name, r, err)
		}
		e := &entry{seq: len(d.entries) + i, backend: name, rule: r}
		var ok bool
		want := "WriteAction"
		if r.IsLookup() {
			e.lookup, ok = act.(LookupAction)
			want = "LookupAction"
		} else {
			e.write, ok = act.(WriteAction)
		}
		if !ok {
			return &RuleError{Backend: name, Rule: r.Name, Field: "action", Err: fmt.Errorf("%w: Prepare returned %T, want a %s", ErrActionType, act, want)}
		}
		added = append(added, e)
		actions = append(actions, act)
	}
	if a, ok := b.(Activator); ok {
		if err := a.Activate(ctx, actions); err != nil {
			return fmt.Errorf("hook: register %q: activate: %w", name, err)
		}
	}
	for _, e := range added {
		r := e.rule
		if r.Topic != "" && !hasTopic(r.Point) {
			d.log.Warn("hook: rule has a topic filter but its events have no topic; it never matches",
				"backend", name, "rule", r.Name, "point", r.Point, "topic", r.Topic)
		}
		d.log.Debug("hook: rule registered", "backend", name, "rule", r.Name, "point", r.Point, "topic", r.Topic, "lookup", e.lookup != nil)
	}
	d.backends = append(d.backends, namedBackend{name, b})
	d.entries = append(d.entries, added...)
	d.snap.Store(buildSnapshot(d.entries))
	return nil
}

// ruleError is err, the failure of rule r of backend, as one *RuleError that names both once:
// a *RuleError about r itself (from Validate, or a store's Prepare) gets the backend's name,
// anything else is wrapped.
func ruleError(backend string, r *Rule, err error) error {
	if re, ok := err.(*RuleError); ok && (re.Rule == r.Name || re.Rule == "") {
		c := *re
		c.Backend, c.Rule = backend, r.Name
		return &c
	}
	return &RuleError{Backend: backend, Rule: r.Name, Err: err}
}

// Node is the broker's node name the dispatcher was made with (DispatcherOptions.Node): the
// one place a broker adapter and the stores learn it.
// Backends returns the registered backends by the name they were registered under (a new
// map: the caller may keep it), for a caller that inspects their optional capabilities (their
// statistics, for metrics).
func (d *Dispatcher) Backends() map[string]Backend {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := make(map[string]Backend, len(d.backends))
	for _, nb := range d.backends {
		m[nb.name] = nb.b
	}
	return m
}

func (d *Dispatcher) Node() string { return d.node }

// IDs is the generator that gives published messages their IDs; an adapter that needs an ID
// before dispatching (e.g. for a will) takes it from here.
func (d *Dispatcher) IDs() *IDGenerator { return d.ids }

// hasTopic reports whether events at p have a topic (or filter) for rules to match.
func hasTopic(p Point) bool { return p >= SessionSubscribed }

func buildSnapshot(entries []*entry) *snapshot {
	s := new(snapshot)
	for _, e := range entries {
		pr := &s.points[e.rule.Point]
		if e.rule.Topic == "" {
			pr.all = append(pr.all, e)
			continue
		}
		if pr.filtered == nil {
			pr.filtered = topic.NewIndex[*entry]()
		}
		pr.filtered.Add(e.rule.Topic, e)
	}
	return s
}

// Dispatch runs the actions of the rules that match e: every matching write, under ctx (which
// only bounds a wait for room in a full write queue, see WriteAction), then every matching
// lookup (concurrently when there are several) under ctx, bounded by the LookupTimeout. It returns the merged results of the lookups (see MergeResults), and the
// failed actions' *ActionError values joined with errors.Join, together with the results of
// the actions that succeeded. An event that no rule matches costs a few nanoseconds.
//
// Rules without a topic filter match every event of their point. Rules with one match the
// message topic of message events and the subscription's filter of session.subscribed and
// session.unsubscribed (the filter is matched as a topic name, literally, as EMQX does:
// rule "queue/#" matches the subscription "queue/+/x"; a shared subscription
// "$share/<group>/<filter>" or "$queue/<filter>" is matched by its <filter>). A filter whose
// first level is a wildcard does not match topics starting with '$'.
//
// A message.publish event whose Message.ID is empty gets a new ID from the IDGenerator
// first, whether or not a rule matches, so that the broker can carry the same ID into the
// deliver and acked events. This writes to the caller's Message.
func (d *Dispatcher) Dispatch(ctx context.Context, e Event) (Result, error) {
	t, err := d.eventTopic(e)
	if err != nil {
		return Result{}, err
	}
	s := d.snap.Load()
	if s.closed {
		return Result{}, fmt.Errorf("hook: dispatch %v: %w", e.Point(), ErrClosed)
	}
	pr := &s.points[e.Point()]
	var buf [4]*entry // enough for most events: no allocation
	matched := buf[:0]
	if t != "" && pr.filtered != nil {
		matched = pr.filtered.MatchAppend(matched, t)
	}
	if len(pr.all) == 0 && len(matched) == 0 {
		return Result{}, nil
	}
	return d.run(ctx, e, pr.all, matched)
}

// eventTopic checks e, gives a publish event its ID, and returns what rule filters match.
func (d *Dispatcher) eventTopic(e Event) (string, error) {
	switch ev := e.(type) {
	case *ConnectedEvent:
		if ev != nil {
			return "", nil
		}
	case *DisconnectedEvent:
		if ev != nil {
			return "", nil
		}
	case *SessionCreatedEvent:
		if ev != nil {
			return "", nil
		}
	case *SubscribedEvent:
		if ev != nil {
			return topic.Unshared(ev.Topic), nil
		}
	case *UnsubscribedEvent:
		if ev != nil {
			return topic.Unshared(ev.Topic), nil
		}
	case *PublishEvent:
		if ev != nil && ev.Message != nil {
			if ev.Message.ID == "" {
				ev.Message.ID = d.ids.Next()
			}
			return ev.Message.Topic, nil
		}
	case *DeliverEvent:
		if ev != nil && ev.Message != nil {
			return ev.Message.Topic, nil
		}
	case *AckedEvent:
		if ev != nil && ev.Message != nil {
			return ev.Message.Topic, nil
		}
	}
	return "", fmt.Errorf("%w: %T is nil or has no Message", ErrInvalidEvent, e)
}

// run runs the matched actions: all (the rules without a filter) and filtered, each sorted
// by seq after this, merged in seq order.
func (d *Dispatcher) run(ctx context.Context, e Event, all, filtered []*entry) (Result, error) {
	slices.SortFunc(filtered, func(a, b *entry) int { return cmp.Compare(a.seq, b.seq) })
	var errs []error
	var lookups []*entry
	var stored *Completion // Sync and Spool: the writes' outcomes
	var refused error      // Spool: the event could not be appended
	wctx := ctx
	for i, j := 0, 0; i < len(all) || j < len(filtered); {
		var en *entry
		if j == len(filtered) || i < len(all) && all[i].seq < filtered[j].seq {
			en, i = all[i], i+1
		} else {
			en, j = filtered[j], j+1
		}
		if en.lookup != nil {
			lookups = append(lookups, en)
			continue
		}
		if stored == nil && refused == nil && d.durability != Async {
			stored, refused = d.track(ctx, e)
			if refused != nil {
				errs = append(errs, refused)
			} else {
				wctx = WithCompletion(ctx, stored)
			}
		}
		if refused != nil {
			continue
		}
		if err := en.write.Write(wctx, e); err != nil {
			errs = append(errs, en.fail(err))
		}
	}
	switch {
	case stored == nil:
	case d.durability == Sync:
		if err := stored.Wait(ctx); err != nil {
			errs = append(errs, fmt.Errorf("hook: %v not stored: %w", e.Point(), err))
		}
	default: // Spool: the record is released when the writes are done
		stored.Done(nil)
	}
	if len(lookups) == 0 {
		return Result{}, errors.Join(errs...)
	}
	if d.lookupTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.lookupTimeout)
		defer cancel()
	}
	results := make([]Result, len(lookups))
	lookupErrs := make([]error, len(lookups))
	lookup := func(i int) {
		r, err := lookupRetrying(ctx, lookups[i].lookup, e)
		results[i] = r
		if err != nil {
			lookupErrs[i] = lookups[i].fail(err)
		}
	}
	if len(lookups) == 1 {
		lookup(0)
	} else {
		var wg sync.WaitGroup
		for i := range lookups {
			wg.Go(func() { lookup(i) })
		}
		wg.Wait()
	}
	return MergeResults(results...), errors.Join(append(errs, lookupErrs...)...)
}

// lookupRetrying runs a lookup, again after a short backoff (20 ms, doubling up to 500 ms)
// while it fails with a transient error (IsTransient: the store unreachable for a moment) and
// ctx leaves time for another try: a session that starts during a short outage still gets its
// subscriptions and messages. Its last error is returned; the broker decides what a session
// whose lookups failed gets (see the mochi adapter).
func lookupRetrying(ctx context.Context, l LookupAction, e Event) (Result, error) {
	wait := 20 * time.Millisecond
	for {
		r, err := l.Lookup(ctx, e)
		if err == nil || !IsTransient(err) || ctx.Err() != nil {
			return r, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return r, err
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return r, err
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// track returns the Completion of the writes of e: under Spool, once e is appended to the
// spool, releasing its record when they are done.
func (d *Dispatcher) track(ctx context.Context, e Event) (*Completion, error) {
	if d.durability != Spool {
		return NewCompletion(), nil
	}
	if d.spool == nil {
		return nil, fmt.Errorf("hook: %v: Durability Spool without DispatcherOptions.Spool: %w", e.Point(), ErrConfig)
	}
	bp := recordPool.Get().(*[]byte)
	rec := appendEvent((*bp)[:0], e)
	seq, err := d.spool.Append(ctx, rec)
	*bp = rec
	recordPool.Put(bp)
	if err != nil {
		return nil, fmt.Errorf("hook: %v not spooled: %w", e.Point(), err)
	}
	return d.releasing(seq), nil
}

// releasing returns a Completion that releases the spool record seq when its writes are done.
func (d *Dispatcher) releasing(seq spool.Seq) *Completion {
	c := NewCompletion()
	c.then = func(error) { d.spool.Release(seq) }
	return c
}

// recordPool holds the buffers events are encoded into for the spool.
var recordPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Replay hands the write events that DispatcherOptions.Spool holds from before it was opened,
// and never saw stored, to the registered rules again, in the order they were appended: call
// it after Register and before the broker takes clients. It returns how many events it
// replayed. A record that is not an event (it cannot be, short of a bug: the spool checks
// every record's checksum) is logged and released.
func (d *Dispatcher) Replay(ctx context.Context) (int, error) {
	if d.spool == nil {
		return 0, nil
	}
	n := 0
	err := d.spool.Replay(func(seq spool.Seq, rec []byte) error {
		e, err := decodeEvent(rec)
		if err != nil {
			d.log.Error("spool record is not an event: released", "seq", seq, "error", err)
			d.spool.Release(seq)
			return nil
		}
		n++
		c := d.releasing(seq)
		if err := d.replay(WithCompletion(ctx, c), e); err != nil {
			d.log.Error("replay of a spooled event", "point", e.Point(), "error", err)
		}
		c.Done(nil)
		return ctx.Err()
	})
	return n, err
}

// replay runs the write rules of e (lookups are the broker's business, now).
func (d *Dispatcher) replay(ctx context.Context, e Event) error {
	t, err := d.eventTopic(e)
	if err != nil {
		return err
	}
	pr := &d.snap.Load().points[e.Point()]
	entries := slices.Clone(pr.all)
	if t != "" && pr.filtered != nil {
		entries = pr.filtered.MatchAppend(entries, t)
	}
	var errs []error
	for _, en := range entries {
		if en.write != nil {
			if err := en.write.Write(ctx, e); err != nil {
				errs = append(errs, en.fail(err))
			}
		}
	}
	return errors.Join(errs...)
}

func (en *entry) fail(err error) error {
	return &ActionError{Backend: en.backend, Rule: en.rule.Name, Point: en.rule.Point, Err: err}
}

// Flush waits until every registered backend that implements Flusher has written what was
// enqueued before the call, or ctx is done. The errors are joined.
func (d *Dispatcher) Flush(ctx context.Context) error {
	d.mu.Lock()
	backends := slices.Clone(d.backends)
	d.mu.Unlock()
	var errs []error
	for _, nb := range backends {
		if f, ok := nb.b.(Flusher); ok {
			if err := f.Flush(ctx); err != nil {
				errs = append(errs, fmt.Errorf("hook: flush backend %q: %w", nb.name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// Close stops dispatching (later calls return ErrClosed) and closes every registered backend,
// concurrently, under ctx. The errors are joined. Closing again does nothing. Dispatch calls
// that started before Close may still reach a backend while it closes.
func (d *Dispatcher) Close(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.snap.Store(&snapshot{closed: true})
	errs := make([]error, len(d.backends))
	var wg sync.WaitGroup
	for i, nb := range d.backends {
		wg.Go(func() {
			if err := nb.b.Close(ctx); err != nil {
				errs[i] = fmt.Errorf("hook: close backend %q: %w", nb.name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ClientConnected dispatches client.connected; the result holds the subscriptions to restore
// when an on_subscribe_lookup rule is at this point.
func (d *Dispatcher) ClientConnected(ctx context.Context, e *ConnectedEvent) (Result, error) {
	return d.Dispatch(ctx, e)
}

// ClientDisconnected dispatches client.disconnected.
func (d *Dispatcher) ClientDisconnected(ctx context.Context, e *DisconnectedEvent) error {
	_, err := d.Dispatch(ctx, e)
	return err
}

// SessionCreated dispatches session.created; the result holds the subscriptions to restore.
func (d *Dispatcher) SessionCreated(ctx context.Context, e *SessionCreatedEvent) (Result, error) {
	return d.Dispatch(ctx, e)
}

// SessionSubscribed dispatches session.subscribed; the result holds the retained and offline
// messages to deliver.
func (d *Dispatcher) SessionSubscribed(ctx context.Context, e *SubscribedEvent) (Result, error) {
	return d.Dispatch(ctx, e)
}

// SessionUnsubscribed dispatches session.unsubscribed.
func (d *Dispatcher) SessionUnsubscribed(ctx context.Context, e *UnsubscribedEvent) error {
	_, err := d.Dispatch(ctx, e)
	return err
}

// MessagePublish dispatches message.publish, setting e.Message.ID when it is empty.
func (d *Dispatcher) MessagePublish(ctx context.Context, e *PublishEvent) error {
	_, err := d.Dispatch(ctx, e)
	return err
}

// MessageDeliver dispatches message.deliver.
func (d *Dispatcher) MessageDeliver(ctx context.Context, e *DeliverEvent) error {
	_, err := d.Dispatch(ctx, e)
	return err
}

// MessageAcked dispatches message.acked.
func (d *Dispatcher) MessageAcked(ctx context.Context, e *AckedEvent) error {
	_, err := d.Dispatch(ctx, e)
	return err
}
