package memstore

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// writeAction is what Prepare returns for every rule that writes.
type writeAction struct {
	s   *Store
	ttl time.Duration // expired_time of the messages it stores
	// op checks the event and returns the write to queue.
	op func(e hook.Event) (op, error)
}

// Write queues the write of e. When the queue is full, it waits for room until ctx is done;
// then the write is dropped, counted, and the error wraps hook.ErrDropped and ctx.Err().
// After Close the error wraps hook.ErrClosed and hook.ErrDropped. An event of the wrong kind
// is refused with an error wrapping hook.ErrInvalidEvent (counted as failed).
func (w *writeAction) Write(ctx context.Context, e hook.Event) error {
	o, err := w.op(e)
	if err == nil && w.s.v.bug == bugRefusesEmptyPayload && w.s.v.textPayloads {
		if m, _ := publishMessage(e); m != nil && len(m.Payload) == 0 {
			err = fmt.Errorf("memstore: message %s: empty payload refused", m.ID)
		}
	}
	if err != nil {
		w.s.matched.Add(1)
		w.s.failed.Add(1)
		return err
	}
	return w.s.enqueue(ctx, o)
}

// lookupAction is what Prepare returns for the lookup functions.
type lookupAction struct {
	s      *Store
	lookup func(e hook.Event) (hook.Result, error) // called with the Namespace locked
}

// Lookup answers from what has been applied so far (see Store.Flush).
func (l *lookupAction) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	if err := l.s.usable(ctx); err != nil {
		return hook.Result{}, err
	}
	l.s.ns.mu.Lock()
	defer l.s.ns.mu.Unlock()
	return l.lookup(e)
}

func invalidEvent(e hook.Event, want string) error {
	return fmt.Errorf("memstore: %w: got %T, want a non-nil %s", hook.ErrInvalidEvent, e, want)
}

// message returns the message of a publish event.
func publishMessage(e hook.Event) (*hook.Message, error) {
	if ev, ok := e.(*hook.PublishEvent); ok && ev != nil && ev.Message != nil {
		return ev.Message, nil
	}
	return nil, invalidEvent(e, "*hook.PublishEvent with a Message")
}

func ackedMessage(e hook.Event) (string, *hook.Message, error) {
	if ev, ok := e.(*hook.AckedEvent); ok && ev != nil && ev.Message != nil {
		return ev.ClientID, ev.Message, nil
	}
	return "", nil, invalidEvent(e, "*hook.AckedEvent with a Message")
}

func subscribed(e hook.Event) (*hook.SubscribedEvent, error) {
	if ev, ok := e.(*hook.SubscribedEvent); ok && ev != nil {
		return ev, nil
	}
	return nil, invalidEvent(e, "*hook.SubscribedEvent")
}

// Prepare checks r and returns its action: a hook.LookupAction for on_subscribe_lookup,
// on_retain_lookup and the fetch functions, a hook.WriteAction otherwise. It refuses, with a
// *hook.RuleError naming the field, a function not in Config.Functions (hook.ErrUnsupported),
// a function at a point where it does not apply, statements other than RECORD commands
// (hook.ErrUnsupported), a malformed RECORD command, and any key in r.Options
// (hook.ErrUnknownOption: the Store takes no options of its own). Prepare changes nothing.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	fail := func(field string, err error) error { return &hook.RuleError{Rule: r.Name, Field: field, Err: err} }
	if s.isClosed() {
		return nil, fail("", hook.ErrClosed)
	}
	if s.v.bug != bugUnknownOptionAccepted {
		if err := r.CheckOptions(); err != nil {
			return nil, err
		}
	}
	a := r.Action
	switch {
	case a.Commands != nil && !s.v.noCommands:
		return s.prepareCommands(r)
	case a.Commands != nil:
		return nil, fail("action.commands", fmt.Errorf("memstore: this store takes no commands: %w", hook.ErrUnsupported))
	case a.SQL != nil:
		return nil, fail("action.sql", fmt.Errorf("memstore: SQL statements: %w", hook.ErrUnsupported))
	case a.CQL != nil:
		return nil, fail("action.cql", fmt.Errorf("memstore: CQL statements: %w", hook.ErrUnsupported))
	case a.Function == "":
		return nil, fail("action", fmt.Errorf("%w: no function and no commands", hook.ErrAction))
	}
	info, known := hook.LookupFunction(a.Function)
	if !known && s.v.bug == bugUnknownFunctionAccepted {
		return &writeAction{s: s, op: func(hook.Event) (op, error) { return func(*tx) error { return nil }, nil }}, nil
	}
	if !known {
		return nil, fail("action.function", fmt.Errorf("%w %q", hook.ErrUnknownFunction, a.Function))
	}
	if !s.fns[a.Function] {
		return nil, fail("action.function", fmt.Errorf("memstore: function %s: %w", a.Function, hook.ErrUnsupported))
	}
	if !info.AllowedAt(r.Point) {
		return nil, fail("action.function", fmt.Errorf("%w: %s at %v (allowed at %v)", hook.ErrFunctionPoint, a.Function, r.Point, info.Points))
	}
	if r.ExpiredTime > 0 && s.v.bug == bugPrepareAppliesExpiry {
		s.ns.mu.Lock()
		s.ns.topicTTL[r.Topic] = r.ExpiredTime
		s.ns.mu.Unlock()
	}
	return s.action(a.Function, r.ExpiredTime, r.OfflineOpts), nil
}

func (s *Store) action(fn string, ttl time.Duration, opts hook.OfflineOpts) hook.Action {
	v := &s.v
	// pub is a write on message.publish.
	pub := func(apply func(t *tx, m *hook.Message) error) *writeAction {
		return &writeAction{s: s, ttl: ttl, op: func(e hook.Event) (op, error) {
			m, err := publishMessage(e)
			if err != nil {
				return nil, err
			}
			return func(t *tx) error { return apply(t, m) }, nil
		}}
	}
	// ack is a write on message.acked.
	ack := func(apply func(t *tx, client string, m *hook.Message)) *writeAction {
		return &writeAction{s: s, op: func(e hook.Event) (op, error) {
			client, m, err := ackedMessage(e)
			if err != nil {
				return nil, err
			}
			return func(t *tx) error { apply(t, client, m); return nil }, nil
		}}
	}
	// sub is a message lookup on session.subscribed.
	sub := func(retained bool, find func(ns *Namespace, client, filter string) ([]*hook.Message, error)) *lookupAction {
		return &lookupAction{s: s, lookup: func(e hook.Event) (hook.Result, error) {
			ev, err := subscribed(e)
			if err != nil {
				return hook.Result{}, err
			}
			_, filter, _ := topic.ParseShared(ev.Topic)
			if v.exactFilters && hasWildcard(filter) {
				if retained && v.bug == bugWildcardRetainedEmpty || !retained && v.bug == bugWildcardFetchEmpty {
					return hook.Result{}, nil
				}
				return hook.Result{}, fmt.Errorf("memstore: lookup of %q: wildcard filters: %w", filter, hook.ErrUnsupported)
			}
			msgs, err := find(s.ns, ev.ClientID, filter)
			if retained {
				return hook.Result{Retained: msgs}, err
			}
			return hook.Result{Offline: msgs}, err
		}}
	}

	switch fn {
	case hook.OnClientConnected:
		return &writeAction{s: s, op: func(e hook.Event) (op, error) {
			ev, ok := e.(*hook.ConnectedEvent)
			if !ok || ev == nil {
				return nil, invalidEvent(e, "*hook.ConnectedEvent")
			}
			return func(t *tx) error {
				t.ns.clients[ev.ClientID] = backend.ClientState{ClientID: ev.ClientID, Online: true, Node: ev.Node, OnlineAt: ev.ConnectedAt}
				return nil
			}, nil
		}}
	case hook.OnClientDisconnected:
		return &writeAction{s: s, op: func(e hook.Event) (op, error) {
			ev, ok := e.(*hook.DisconnectedEvent)
			if !ok || ev == nil {
				return nil, invalidEvent(e, "*hook.DisconnectedEvent")
			}
			return func(t *tx) error {
				if v.bug == bugDisconnectIgnored {
					return nil
				}
				st := t.ns.clients[ev.ClientID]
				st.ClientID, st.Online, st.OfflineAt = ev.ClientID, false, ev.DisconnectedAt
				if ev.Node != "" {
					st.Node = ev.Node
				}
				t.ns.clients[ev.ClientID] = st
				return nil
			}, nil
		}}
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup:
		return &lookupAction{s: s, lookup: func(e hook.Event) (hook.Result, error) {
			var client string
			switch ev := e.(type) {
			case *hook.SessionCreatedEvent:
				if ev == nil {
					return hook.Result{}, invalidEvent(e, "*hook.SessionCreatedEvent")
				}
				client = ev.ClientID
			case *hook.ConnectedEvent:
				if ev == nil {
					return hook.Result{}, invalidEvent(e, "*hook.ConnectedEvent")
				}
				client = ev.ClientID
			default:
				return hook.Result{}, invalidEvent(e, "*hook.SessionCreatedEvent or *hook.ConnectedEvent")
			}
			var res hook.Result
			for _, c := range slices.Sorted(maps.Keys(s.ns.subs)) {
				if c != client && v.bug != bugSubsOfAllClients {
					continue
				}
				for _, f := range slices.Sorted(maps.Keys(s.ns.subs[c])) {
					res.Subscriptions = append(res.Subscriptions, hook.Subscription{Topic: f, QoS: s.ns.subs[c][f]})
				}
			}
			return res, nil
		}}
	case hook.OnMessagePublish:
		return pub(func(t *tx, m *hook.Message) error {
			if m.QoS == 0 && !(v.sink && v.bug != bugSinkSkipsQoS0) && v.bug != bugPublishStoresQoS0 {
				return nil
			}
			return t.store(m, ttl)
		})
	case hook.OnMessageStore:
		return pub(func(t *tx, m *hook.Message) error { return t.store(m, ttl) })
	case hook.OnMessageRetain:
		return pub(func(t *tx, m *hook.Message) error {
			if !m.Retain || len(m.Payload) == 0 && v.bug != bugRetainStoresEmpty {
				return nil
			}
			m, err := t.payloadCheck(m)
			if m != nil {
				t.ns.retained[m.Topic] = m
			}
			return err
		})
	case hook.OnRetainDelete:
		return pub(func(t *tx, m *hook.Message) error {
			if m.Retain && len(m.Payload) == 0 {
				delete(t.ns.retained, m.Topic)
			}
			return nil
		})
	case hook.OnRetainLookup:
		return sub(true, func(ns *Namespace, _, filter string) ([]*hook.Message, error) {
			var out []*hook.Message
			for _, tp := range slices.Sorted(maps.Keys(ns.retained)) {
				if s.match(filter, tp, v.bug == bugRetainIgnoresDollar) {
					out = append(out, ns.retained[tp])
				}
			}
			return out, nil
		})
	case hook.OnMessageFetch, hook.OnMessageFetchForPubsub, hook.OnMessageFetchForQueue:
		queue := fn == hook.OnMessageFetchForQueue
		return sub(false, func(ns *Namespace, client, filter string) ([]*hook.Message, error) {
			return s.fetch(ns, client, filter, opts, queue), nil
		})
	case hook.OnMessageAcked, hook.OnMessageAckedForPubsub:
		return ack(func(t *tx, client string, m *hook.Message) { t.setPosition(client, m) })
	case hook.OnMessageAckedForQueue:
		return ack(func(t *tx, client string, m *hook.Message) {
			if v.bug == bugQueueAckIsPosition {
				t.setPosition(client, m)
				return
			}
			t.ns.remove(m.ID)
		})
	case hook.OnAckedDelete:
		return &writeAction{s: s, op: func(e hook.Event) (op, error) {
			ev, ok := e.(*hook.UnsubscribedEvent)
			if !ok || ev == nil {
				return nil, invalidEvent(e, "*hook.UnsubscribedEvent")
			}
			_, filter, _ := topic.ParseShared(ev.Topic)
			under := func(p position) bool {
				return p.client == ev.ClientID && (p.topic == filter || v.bug != bugAckedDeleteExact && s.match(filter, p.topic, false))
			}
			return func(t *tx) error {
				maps.DeleteFunc(t.ns.acked, func(p position, _ uint64) bool { return under(p) })
				maps.DeleteFunc(t.ns.latestAt, func(p position, _ string) bool { return under(p) })
				return nil
			}, nil
		}}
	case hook.OnMessageStoreKeepLatest:
		return pub(func(t *tx, m *hook.Message) error {
			prev := t.ns.latest[m.Topic]
			if prev != nil && (prev.ID >= m.ID || v.bug == bugKeepLatestKeepsFirst) {
				return nil
			}
			m, err := t.payloadCheck(m)
			if m != nil {
				t.ns.latest[m.Topic] = m
			}
			return err
		})
	case hook.OnMessageFetchForKeepLatest:
		return sub(false, func(ns *Namespace, client, filter string) ([]*hook.Message, error) {
			var out []*hook.Message
			for tp, m := range ns.latest {
				pos, acked := ns.latestAt[position{client, tp}]
				if s.match(filter, tp, false) && (!acked || m.ID > pos) {
					out = append(out, m)
				}
			}
			slices.SortFunc(out, func(a, b *hook.Message) int { return strings.Compare(a.ID, b.ID) })
			return out, nil
		})
	case hook.OnMessageAckedForKeepLatest:
		return ack(func(t *tx, client string, m *hook.Message) {
			p := position{client, m.Topic}
			if cur, ok := t.ns.latestAt[p]; !ok || m.ID > cur || v.bug == bugAckMovesBack {
				t.ns.latestAt[p] = m.ID
			}
		})
	}
	panic("memstore: no action for " + fn) // Prepare checked fn is a built-in function
}

// store stores m (once per msgid) with the expiry ttl.
func (t *tx) store(m *hook.Message, ttl time.Duration) error {
	if _, dup := t.ns.byID[m.ID]; dup && t.s.v.bug != bugNoDedupe {
		return nil
	}
	m, err := t.payloadCheck(m)
	if m == nil {
		return err
	}
	sm := &stored{m: m, key: t.nextKey()}
	if ttl > 0 {
		sm.expires = m.Timestamp.Add(ttl)
	}
	t.ns.msgs = append(t.ns.msgs, sm)
	t.ns.byID[m.ID] = sm
	return nil
}

// payloadCheck returns the message to store in place of m (nil: none) and why it is refused.
func (t *tx) payloadCheck(m *hook.Message) (*hook.Message, error) {
	v := &t.s.v
	switch {
	case v.bug == bugLossyPayload && !isText(m.Payload):
		c := *m
		c.Payload = []byte(strings.ToValidUTF8(strings.ReplaceAll(string(m.Payload), "\x00", ""), "\uFFFD"))
		return &c, nil
	case v.bug == bugTrimsSpace:
		c := *m
		c.Payload = []byte(strings.TrimSpace(string(m.Payload)))
		return &c, nil
	case v.textPayloads && !isText(m.Payload) && v.bug == bugBinaryDroppedSilently:
		return nil, nil
	case v.textPayloads && !isText(m.Payload):
		return nil, fmt.Errorf("memstore: message %s: the payload holds NUL or invalid UTF-8, and this store keeps text only", m.ID)
	}
	return m, nil
}

func isText(b []byte) bool { return utf8.Valid(b) && !slices.Contains(b, 0) }

// setPosition moves client's position on m's topic to m, if m is stored and newer: a
// position never moves back. An ack of a message that is not stored (QoS 0, expired, or
// never published here) changes nothing.
func (t *tx) setPosition(client string, m *hook.Message) {
	sm, ok := t.ns.byID[m.ID]
	if !ok {
		return
	}
	p := position{client, m.Topic}
	if cur, ok := t.ns.acked[p]; !ok || sm.key > cur || t.s.v.bug == bugAckMovesBack {
		t.ns.acked[p] = sm.key
	}
}

// fetch returns the stored messages on topics matching filter that the client has not acked
// (all of them, for the queue), oldest first, within opts.
func (s *Store) fetch(ns *Namespace, client, filter string, opts hook.OfflineOpts, queue bool) []*hook.Message {
	v := &s.v
	now := time.Now()
	var out []*hook.Message
	for _, sm := range ns.sorted() {
		m := sm.m
		switch {
		case !s.match(filter, m.Topic, false):
		case sm.expired(now) && v.bug != bugNeverExpires:
		case s.expiredByTopic(ns, m, now):
		case opts.TimeRange > 0 && s.tooOld(m, now.Add(-opts.TimeRange)) && v.bug != bugIgnoresTimeRange:
		default:
			pos, acked := ns.acked[position{client, m.Topic}]
			if acked && sm.key <= pos && (!queue || v.bug == bugQueueAckIsPosition) && v.bug != bugFetchIgnoresAck {
				continue
			}
			out = append(out, m)
		}
	}
	if v.bug == bugNewestFirst {
		slices.Reverse(out)
	}
	if n := opts.MaxReturnedCount; n > 0 && len(out) > n && v.bug != bugIgnoresMaxReturned {
		out = out[:n]
	}
	return out
}

// tooOld reports whether m was received before since.
func (s *Store) tooOld(m *hook.Message, since time.Time) bool {
	if s.v.timeRangeByID && hook.IsGeneratedID(m.ID) {
		return m.ID < hook.IDTimePrefix(since) // what a store with a msgid index can query
	}
	return m.Timestamp.Before(since)
}

// expiredByTopic is the prepare-applies-expiry bug: an expiry a Prepare recorded for a topic
// filter applies to every message on it.
func (s *Store) expiredByTopic(ns *Namespace, m *hook.Message, now time.Time) bool {
	if s.v.bug != bugPrepareAppliesExpiry {
		return false
	}
	for f, ttl := range ns.topicTTL {
		if (f == "" || topic.Match(f, m.Topic)) && !now.Before(m.Timestamp.Add(ttl)) {
			return true
		}
	}
	return false
}

// match is topic.Match, or its buggy variants.
func (s *Store) match(filter, name string, noDollarRule bool) bool {
	if s.v.bug == bugCaseInsensitiveTopics {
		filter, name = strings.ToLower(filter), strings.ToLower(name)
	}
	if noDollarRule && strings.HasPrefix(name, "$") {
		name = "x" + name[1:] // what a leading wildcard matches does not depend on the first level
	}
	return topic.Match(filter, name)
}

func hasWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }
