package backendtest_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// memStore is an in-memory test double of the store contract, written only to prove the
// suite: it implements every built-in function as ARCHITECTURE.md describes, and custom
// actions of its own kind (commands "RECORD name=${var} ..."). With a bug set it misbehaves in
// one specific way, which the suite must catch (see TestSuiteCatchesBugs).
//
// Writes are asynchronous like a real store's: they queue, and are applied when the queue
// reaches batchSize, on Flush, and on Close.
type memStore struct {
	ns  *memNamespace
	bug string
	fns map[string]bool // the functions Prepare accepts
	cmd bool            // whether Prepare accepts custom commands

	applyMu sync.Mutex // held while applying, so queued writes apply in order
	mu      sync.Mutex // guards pending and closed
	pending []func(*memNamespace)
	closed  bool
}

const batchSize = 64

// memNamespace is the data of one namespace; a reopened store shares it.
type memNamespace struct {
	mu       sync.Mutex
	clients  map[string]backend.ClientState
	subs     map[string]map[string]byte // client -> filter -> qos
	msgs     []storedMessage            // in the order stored
	ids      map[string]bool
	retained map[string]*hook.Message
	acked    map[[2]string]string // {client, topic} -> msgid
	latest   map[string]*hook.Message
	records  []backendtest.Record
}

type storedMessage struct {
	m       *hook.Message
	expires time.Time // zero: never
}

// bugs are the deliberate misbehaviours of memStore, by name.
var bugs = map[string]string{
	"fetch-ignores-ack":            "fetch returns messages at or before the client's acked position",
	"retain-ignores-dollar":        "retained lookup matches '$' topics with leading wildcards",
	"publish-stores-qos0":          "on_message_publish stores QoS 0 messages",
	"close-drops-queue":            "Close discards queued writes",
	"no-dedupe":                    "a message written twice is stored twice",
	"newest-first":                 "fetch returns the newest message first",
	"ignores-max-returned":         "fetch ignores max_returned_count",
	"ignores-time-range":           "fetch ignores time_range",
	"never-expires":                "expired_time is ignored",
	"acked-delete-exact":           "on_acked_delete deletes only the position whose topic equals the filter",
	"splices-custom":               "custom commands are rendered into text and split again",
	"lossy-payload":                "stored payloads lose invalid UTF-8",
	"drops-when-busy":              "writes arriving while batchSize are queued are silently dropped",
	"case-insensitive-topics":      "topics match ignoring case",
	"queue-ack-is-position":        "on_message_acked_for_queue moves a per-client position instead of removing the message",
	"keep-latest-keeps-first":      "on_message_store_keep_latest keeps the first message of a topic",
	"disconnect-ignored":           "on_client_disconnected records nothing",
	"subs-of-all-clients":          "on_subscribe_lookup returns every client's subscriptions",
	"retain-stores-empty":          "on_message_retain stores an empty payload",
	"unknown-function-accepted":    "Prepare accepts an unknown function",
	"unknown-placeholder-accepted": "Prepare accepts an unknown placeholder",
}

func newMemNamespace() *memNamespace {
	return &memNamespace{
		clients:  make(map[string]backend.ClientState),
		subs:     make(map[string]map[string]byte),
		ids:      make(map[string]bool),
		retained: make(map[string]*hook.Message),
		acked:    make(map[[2]string]string),
		latest:   make(map[string]*hook.Message),
	}
}

func newMemStore(ns *memNamespace, bug string, fns []string, cmd bool) *memStore {
	if _, ok := bugs[bug]; bug != "" && !ok {
		panic("memstore: unknown bug " + bug)
	}
	s := &memStore{ns: ns, bug: bug, fns: make(map[string]bool), cmd: cmd}
	for _, f := range fns {
		s.fns[f] = true
	}
	return s
}

// enqueue queues op, applying the queue when it is full.
func (s *memStore) enqueue(op func(*memNamespace)) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("memstore: write: %w", hook.ErrClosed)
	}
	if s.bug == "drops-when-busy" && len(s.pending) >= batchSize/2 {
		s.mu.Unlock()
		return nil
	}
	s.pending = append(s.pending, op)
	full := len(s.pending) >= batchSize
	s.mu.Unlock()
	if full && s.bug != "drops-when-busy" {
		s.apply()
	}
	return nil
}

func (s *memStore) apply() {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	ops := s.pending
	s.pending = nil
	s.mu.Unlock()
	s.ns.mu.Lock()
	defer s.ns.mu.Unlock()
	for _, op := range ops {
		op(s.ns)
	}
}

func (s *memStore) Flush(ctx context.Context) error {
	s.apply()
	return ctx.Err()
}

func (s *memStore) Close(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	if s.bug == "close-drops-queue" {
		s.pending = nil
	}
	s.mu.Unlock()
	s.apply()
	return nil
}

func (s *memStore) ClientState(ctx context.Context, clientID string) (backend.ClientState, error) {
	s.ns.mu.Lock()
	defer s.ns.mu.Unlock()
	st, ok := s.ns.clients[clientID]
	if !ok {
		return st, fmt.Errorf("memstore: client state of %q: %w", clientID, hook.ErrNotFound)
	}
	return st, nil
}

func (s *memStore) AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error {
	s.ns.mu.Lock()
	defer s.ns.mu.Unlock()
	if s.ns.subs[clientID] == nil {
		s.ns.subs[clientID] = make(map[string]byte)
	}
	s.ns.subs[clientID][sub.Topic] = sub.QoS
	return nil
}

func (s *memStore) DeleteSubscription(ctx context.Context, clientID, topic string) error {
	s.ns.mu.Lock()
	defer s.ns.mu.Unlock()
	delete(s.ns.subs[clientID], topic)
	return nil
}

type writeFunc func(hook.Event) error

func (f writeFunc) Write(_ context.Context, e hook.Event) error { return f(e) }

type lookupFunc func(hook.Event) (hook.Result, error)

func (f lookupFunc) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) { return f(e) }

func (s *memStore) Prepare(r *hook.Rule) (hook.Action, error) {
	a := r.Action
	switch {
	case len(a.Commands) > 0 && s.cmd:
		return s.prepareCommands(r)
	case len(a.Commands) > 0 || len(a.SQL) > 0 || len(a.CQL) > 0:
		return nil, fmt.Errorf("memstore: rule %s: statements of this kind: %w", r.Name, hook.ErrUnsupported)
	case a.Function == "":
		return nil, fmt.Errorf("memstore: rule %s: no action", r.Name)
	}
	info, ok := hook.LookupFunction(a.Function)
	if !ok && s.bug == "unknown-function-accepted" {
		return writeFunc(func(hook.Event) error { return nil }), nil
	}
	if !ok || !s.fns[a.Function] {
		return nil, fmt.Errorf("memstore: rule %s: function %q: %w", r.Name, a.Function, hook.ErrUnsupported)
	}
	if !info.AllowedAt(r.Point) {
		return nil, fmt.Errorf("memstore: rule %s: %s does not apply at %s", r.Name, a.Function, r.Point)
	}
	pub := func(apply func(ns *memNamespace, m *hook.Message)) writeFunc {
		return func(e hook.Event) error {
			m := e.(*hook.PublishEvent).Message
			return s.enqueue(func(ns *memNamespace) { apply(ns, m) })
		}
	}
	ack := func(apply func(ns *memNamespace, client string, m *hook.Message)) writeFunc {
		return func(e hook.Event) error {
			ev := e.(*hook.AckedEvent)
			return s.enqueue(func(ns *memNamespace) { apply(ns, ev.ClientID, ev.Message) })
		}
	}
	sub := func(find func(ns *memNamespace, client, filter string) []*hook.Message) lookupFunc {
		return func(e hook.Event) (hook.Result, error) {
			ev := e.(*hook.SubscribedEvent)
			s.ns.mu.Lock()
			defer s.ns.mu.Unlock()
			msgs := find(s.ns, ev.ClientID, ev.Topic)
			if a.Function == hook.OnRetainLookup {
				return hook.Result{Retained: msgs}, nil
			}
			return hook.Result{Offline: msgs}, nil
		}
	}
	setPosition := func(ns *memNamespace, client string, m *hook.Message) {
		ns.acked[[2]string{client, m.Topic}] = m.ID
	}

	switch a.Function {
	case hook.OnClientConnected:
		return writeFunc(func(e hook.Event) error {
			ev := e.(*hook.ConnectedEvent)
			return s.enqueue(func(ns *memNamespace) {
				ns.clients[ev.ClientID] = backend.ClientState{ClientID: ev.ClientID, Online: true, Node: ev.Node, OnlineAt: ev.ConnectedAt}
			})
		}), nil
	case hook.OnClientDisconnected:
		return writeFunc(func(e hook.Event) error {
			ev := e.(*hook.DisconnectedEvent)
			return s.enqueue(func(ns *memNamespace) {
				if s.bug == "disconnect-ignored" {
					return
				}
				st := ns.clients[ev.ClientID]
				st.ClientID, st.Online, st.OfflineAt = ev.ClientID, false, ev.DisconnectedAt
				ns.clients[ev.ClientID] = st
			})
		}), nil
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup:
		return lookupFunc(func(e hook.Event) (hook.Result, error) {
			var client string
			switch ev := e.(type) {
			case *hook.SessionCreatedEvent:
				client = ev.ClientID
			case *hook.ConnectedEvent:
				client = ev.ClientID
			}
			s.ns.mu.Lock()
			defer s.ns.mu.Unlock()
			var res hook.Result
			for c, subs := range s.ns.subs {
				if c != client && s.bug != "subs-of-all-clients" {
					continue
				}
				for topic, qos := range subs {
					res.Subscriptions = append(res.Subscriptions, hook.Subscription{Topic: topic, QoS: qos})
				}
			}
			return res, nil
		}), nil
	case hook.OnMessagePublish:
		return pub(func(ns *memNamespace, m *hook.Message) {
			if m.QoS > 0 || s.bug == "publish-stores-qos0" {
				s.store(ns, m, r.ExpiredTime)
			}
		}), nil
	case hook.OnMessageStore:
		return pub(func(ns *memNamespace, m *hook.Message) { s.store(ns, m, r.ExpiredTime) }), nil
	case hook.OnMessageRetain:
		return pub(func(ns *memNamespace, m *hook.Message) {
			if m.Retain && (len(m.Payload) > 0 || s.bug == "retain-stores-empty") {
				ns.retained[m.Topic] = m
			}
		}), nil
	case hook.OnRetainDelete:
		return pub(func(ns *memNamespace, m *hook.Message) {
			if m.Retain && len(m.Payload) == 0 {
				delete(ns.retained, m.Topic)
			}
		}), nil
	case hook.OnRetainLookup:
		return sub(func(ns *memNamespace, _, filter string) []*hook.Message {
			var out []*hook.Message
			for topic, m := range ns.retained {
				if s.match(filter, topic, s.bug == "retain-ignores-dollar") {
					out = append(out, m)
				}
			}
			return out
		}), nil
	case hook.OnMessageFetch, hook.OnMessageFetchForPubsub, hook.OnMessageFetchForQueue:
		queue := a.Function == hook.OnMessageFetchForQueue
		return sub(func(ns *memNamespace, client, filter string) []*hook.Message {
			return s.fetch(ns, client, filter, r.OfflineOpts, queue)
		}), nil
	case hook.OnMessageAcked, hook.OnMessageAckedForPubsub, hook.OnMessageAckedForKeepLatest:
		return ack(setPosition), nil
	case hook.OnMessageAckedForQueue:
		return ack(func(ns *memNamespace, client string, m *hook.Message) {
			if s.bug == "queue-ack-is-position" {
				setPosition(ns, client, m)
				return
			}
			ns.msgs = slices.DeleteFunc(ns.msgs, func(sm storedMessage) bool { return sm.m.ID == m.ID })
		}), nil
	case hook.OnAckedDelete:
		return writeFunc(func(e hook.Event) error {
			ev := e.(*hook.UnsubscribedEvent)
			return s.enqueue(func(ns *memNamespace) {
				for k := range ns.acked {
					if k[0] == ev.ClientID && (k[1] == ev.Topic || s.bug != "acked-delete-exact" && s.match(ev.Topic, k[1], false)) {
						delete(ns.acked, k)
					}
				}
			})
		}), nil
	case hook.OnMessageStoreKeepLatest:
		return pub(func(ns *memNamespace, m *hook.Message) {
			if prev := ns.latest[m.Topic]; prev == nil || prev.ID < m.ID && s.bug != "keep-latest-keeps-first" {
				ns.latest[m.Topic] = m
			}
		}), nil
	case hook.OnMessageFetchForKeepLatest:
		return sub(func(ns *memNamespace, client, filter string) []*hook.Message {
			var out []*hook.Message
			for topic, m := range ns.latest {
				pos, acked := ns.acked[[2]string{client, topic}]
				if s.match(filter, topic, false) && (!acked || m.ID > pos) {
					out = append(out, m)
				}
			}
			slices.SortFunc(out, func(a, b *hook.Message) int { return strings.Compare(a.ID, b.ID) })
			return out
		}), nil
	}
	return nil, fmt.Errorf("memstore: rule %s: function %q: %w", r.Name, a.Function, hook.ErrUnsupported)
}

func (s *memStore) store(ns *memNamespace, m *hook.Message, ttl time.Duration) {
	if ns.ids[m.ID] && s.bug != "no-dedupe" {
		return
	}
	ns.ids[m.ID] = true
	if s.bug == "lossy-payload" {
		c := *m
		c.Payload = []byte(strings.ToValidUTF8(string(m.Payload), "\uFFFD"))
		m = &c
	}
	sm := storedMessage{m: m}
	if ttl > 0 {
		sm.expires = m.Timestamp.Add(ttl)
	}
	ns.msgs = append(ns.msgs, sm)
}

func (s *memStore) fetch(ns *memNamespace, client, filter string, opts hook.OfflineOpts, queue bool) []*hook.Message {
	now := time.Now()
	var out []*hook.Message
	for _, sm := range ns.msgs {
		m := sm.m
		switch {
		case !s.match(filter, m.Topic, false):
		case !sm.expires.IsZero() && now.After(sm.expires) && s.bug != "never-expires":
		case opts.TimeRange > 0 && m.Timestamp.Before(now.Add(-opts.TimeRange)) && s.bug != "ignores-time-range":
		default:
			pos, acked := ns.acked[[2]string{client, m.Topic}]
			if acked && m.ID <= pos && (!queue || s.bug == "queue-ack-is-position") && s.bug != "fetch-ignores-ack" {
				continue
			}
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b *hook.Message) int { return strings.Compare(a.ID, b.ID) })
	if s.bug == "newest-first" {
		slices.Reverse(out)
	}
	if n := opts.MaxReturnedCount; n > 0 && len(out) > n && s.bug != "ignores-max-returned" {
		out = out[:n]
	}
	return out
}

// match is topic.Match, or its buggy variants.
func (s *memStore) match(filter, name string, noDollarRule bool) bool {
	if s.bug == "case-insensitive-topics" {
		filter, name = strings.ToLower(filter), strings.ToLower(name)
	}
	if noDollarRule && strings.HasPrefix(name, "$") {
		name = "x" + name[1:] // what a leading wildcard matches does not depend on the first level
	}
	return topic.Match(filter, name)
}

// prepareCommands prepares "RECORD name=${var} ..." commands: each records the named
// placeholders of the event.
func (s *memStore) prepareCommands(r *hook.Rule) (hook.Action, error) {
	type arg struct{ name, v string }
	var cmds [][]arg
	for i, c := range r.Action.Commands {
		f := strings.Fields(c)
		if len(f) == 0 || f[0] != "RECORD" {
			return nil, fmt.Errorf("memstore: rule %s: command %d: want RECORD", r.Name, i+1)
		}
		var args []arg
		for j, a := range f[1:] {
			name, v, ok := strings.Cut(a, "=${")
			v, closed := strings.CutSuffix(v, "}")
			if !ok || !closed {
				return nil, fmt.Errorf("memstore: rule %s: command %d, argument %d: want name=${var}", r.Name, i+1, j+1)
			}
			if !slices.Contains(placeholders, v) && s.bug != "unknown-placeholder-accepted" {
				return nil, fmt.Errorf("memstore: rule %s: command %d, argument %d: unknown placeholder ${%s}", r.Name, i+1, j+1, v)
			}
			args = append(args, arg{name, v})
		}
		cmds = append(cmds, args)
	}
	return writeFunc(func(e hook.Event) error {
		vals := eventValues(e)
		return s.enqueue(func(ns *memNamespace) {
			for _, args := range cmds {
				rec := make(backendtest.Record)
				if s.bug == "splices-custom" {
					line := ""
					for _, a := range args {
						line += " " + a.name + "=" + vals[a.v]
					}
					for _, f := range strings.Fields(line) {
						name, v, _ := strings.Cut(f, "=")
						rec[name] = v
					}
				} else {
					for _, a := range args {
						rec[a.name] = vals[a.v]
					}
				}
				ns.records = append(ns.records, rec)
			}
		})
	}), nil
}

var placeholders = []string{"clientid", "username", "peerhost", "node", "topic", "qos", "msgid", "payload", "ts"}

func eventValues(e hook.Event) map[string]string {
	switch ev := e.(type) {
	case *hook.PublishEvent:
		m := ev.Message
		return map[string]string{
			"clientid": m.From, "username": m.Username, "peerhost": m.Peerhost, "node": m.Node, "topic": m.Topic,
			"qos": strconv.Itoa(int(m.QoS)), "msgid": m.ID, "payload": string(m.Payload),
			"ts": strconv.FormatInt(m.Timestamp.UnixMilli(), 10),
		}
	case *hook.ConnectedEvent:
		return map[string]string{"clientid": ev.ClientID, "username": ev.Username, "peerhost": ev.Peerhost, "node": ev.Node,
			"ts": strconv.FormatInt(ev.ConnectedAt.UnixMilli(), 10)}
	}
	return nil
}
