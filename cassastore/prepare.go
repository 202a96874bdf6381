package cassastore

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/topic"
)

// Functions lists the built-in functions the store implements: the spec's Cassandra rule
// list (on_subscription_lookup is its spelling of on_subscribe_lookup), on_message_store and
// on_acked_delete.
var Functions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected,
	hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore,
	hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
}

// Prepare checks r and returns its action: a hook.LookupAction for on_subscribe_lookup
// (on_subscription_lookup), on_retain_lookup and on_message_fetch, a hook.WriteAction for the
// other functions and for custom "cql" statements, whose ${var} placeholders are compiled
// with template.CQL into bind markers. It refuses, with a *hook.RuleError, the functions the
// store does not implement and Redis or SQL actions (hook.ErrUnsupported), statements whose
// placeholders cannot be bound, and unknown rule options (hook.ErrUnknownOption). Prepare
// changes nothing in the store: expired_time is a USING TTL on each insert.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	if r == nil {
		return nil, fmt.Errorf("cassastore: prepare: nil rule")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := r.CheckOptions(); err != nil {
		return nil, err
	}
	fail := func(field string, err error) error { return &hook.RuleError{Rule: r.Name, Field: field, Err: err} }
	a := &r.Action
	switch {
	case a.CQL != nil:
		c := &customAction{s: s, rule: r.Name}
		for i, src := range a.CQL {
			st, err := template.CompileStatement(template.CQL, src)
			if err != nil {
				return nil, fail(fmt.Sprintf("action.cql[%d]", i), err)
			}
			c.stmts = append(c.stmts, st)
		}
		return c, nil
	case a.Commands != nil:
		return nil, fail("action.commands", fmt.Errorf("%w: Redis commands in the Cassandra store (use \"cql\")", hook.ErrUnsupported))
	case a.SQL != nil:
		return nil, fail("action.sql", fmt.Errorf("%w: SQL statements in the Cassandra store (use \"cql\")", hook.ErrUnsupported))
	}
	switch fn := a.Function; fn {
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup, hook.OnRetainLookup, hook.OnMessageFetch:
		return &lookupAction{s: s, fn: fn, opts: r.OfflineOpts}, nil
	case hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain:
		return &writeAction{s: s, fn: fn, ttl: ttlSeconds(r.ExpiredTime)}, nil
	case hook.OnClientConnected, hook.OnClientDisconnected, hook.OnRetainDelete, hook.OnMessageAcked, hook.OnAckedDelete:
		return &writeAction{s: s, fn: fn}, nil
	default:
		return nil, fail("action.function", fmt.Errorf("%w: %s in the Cassandra store (it implements %s)", hook.ErrUnsupported, fn, strings.Join(Functions, ", ")))
	}
}

// Activate implements hook.Activator: a rule that stores messages publishes this store's
// writer mark (see the package doc, "Several brokers") before any message is queued, and
// keeps it current while the store is open.
func (s *Store) Activate(ctx context.Context, actions []hook.Action) error {
	for _, act := range actions {
		if a, ok := act.(*writeAction); ok && a.s == s && (a.fn == hook.OnMessagePublish || a.fn == hook.OnMessageStore) {
			if err := s.publishMark(ctx); err != nil {
				return fmt.Errorf("cassastore: publish the writer mark: %w", err)
			}
			return nil
		}
	}
	return nil
}

// writeAction records an event through the writer.
type writeAction struct {
	s   *Store
	fn  string
	ttl int // USING TTL seconds; 0: none
}

func (a *writeAction) Write(ctx context.Context, e hook.Event) error {
	bad := func() error {
		return fmt.Errorf("cassastore: %s: %w: %T", a.fn, hook.ErrInvalidEvent, e)
	}
	s := a.s
	switch a.fn {
	case hook.OnClientConnected:
		ev, ok := e.(*hook.ConnectedEvent)
		if !ok || ev == nil || ev.ClientID == "" {
			return bad()
		}
		return s.enqueue(ctx, op{kind: opConnected, key: ev.ClientID, client: ev.ClientID, node: s.node(ev.Node), at: orNow(ev.ConnectedAt)})
	case hook.OnClientDisconnected:
		ev, ok := e.(*hook.DisconnectedEvent)
		if !ok || ev == nil || ev.ClientID == "" {
			return bad()
		}
		return s.enqueue(ctx, op{kind: opDisconnected, key: ev.ClientID, client: ev.ClientID, node: s.node(ev.Node), at: orNow(ev.DisconnectedAt)})
	case hook.OnMessageAcked:
		ev, ok := e.(*hook.AckedEvent)
		if !ok || ev == nil || ev.Message == nil || ev.ClientID == "" {
			return bad()
		}
		if err := checkMessage(ev.Message); err != nil {
			return err
		}
		return s.enqueue(ctx, op{kind: opAcked, key: ev.ClientID, client: ev.ClientID, msg: ev.Message})
	case hook.OnAckedDelete:
		ev, ok := e.(*hook.UnsubscribedEvent)
		if !ok || ev == nil || ev.ClientID == "" || ev.Topic == "" {
			return bad()
		}
		return s.enqueue(ctx, op{kind: opAckedDelete, key: ev.ClientID, client: ev.ClientID, filter: topic.Unshared(ev.Topic)})
	}
	ev, ok := e.(*hook.PublishEvent)
	if !ok || ev == nil || ev.Message == nil {
		return bad()
	}
	m := ev.Message
	if err := checkMessage(m); err != nil {
		return err
	}
	if !hook.Records(a.fn, m) {
		return nil
	}
	o := op{key: m.Topic, msg: m, ttl: a.ttl}
	switch a.fn {
	case hook.OnMessagePublish, hook.OnMessageStore:
		o.kind = opStore
		if !s.msgBin && !utf8.Valid(m.Payload) {
			return fmt.Errorf("cassastore: message %s on %q: %w: the payload is not UTF-8 and %s.msg has no payload_bin column (Config.EnsureSchema adds it)",
				m.ID, m.Topic, hook.ErrInvalidEvent, s.cfg.Keyspace)
		}
		if s.marks.on.Load() && hook.IsGeneratedID(m.ID) {
			o.tracked = true
			s.marks.add(m.ID)
			if err := s.enqueue(ctx, o); err != nil {
				s.marks.finish(m.ID)
				return err
			}
			return nil
		}
	case hook.OnMessageRetain:
		o.kind = opRetain
		if !(s.retainFull || s.msgBin) && !utf8.Valid(m.Payload) {
			return fmt.Errorf("cassastore: retained message %s on %q: %w: the payload is not UTF-8 and the keyspace %s has no payload_bin column (Config.EnsureSchema adds it)",
				m.ID, m.Topic, hook.ErrInvalidEvent, s.cfg.Keyspace)
		}
	case hook.OnRetainDelete:
		o.kind = opRetainDelete
	}
	return s.enqueue(ctx, o)
}

func (s *Store) node(n string) string {
	if n == "" {
		return s.cfg.Node
	}
	return n
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

func checkMessage(m *hook.Message) error {
	switch {
	case m.ID == "":
		return fmt.Errorf("cassastore: %w: message on %q has no ID", hook.ErrInvalidEvent, m.Topic)
	case m.Topic == "":
		return fmt.Errorf("cassastore: %w: message %s has no topic", hook.ErrInvalidEvent, m.ID)
	case m.QoS > 2:
		return fmt.Errorf("cassastore: %w: message %s has QoS %d", hook.ErrInvalidEvent, m.ID, m.QoS)
	}
	return nil
}

// customAction is a rule's list of CQL statements, run in order with the event's values bound
// to their markers (payload as bytes: a text column refuses a payload that is not UTF-8, a
// blob column takes it as it is; qos and ts as integers).
type customAction struct {
	s     *Store
	rule  string
	stmts []*template.Statement
}

func (c *customAction) Write(ctx context.Context, e hook.Event) error {
	if e == nil {
		return fmt.Errorf("cassastore: %s: nil event: %w", c.rule, hook.ErrInvalidEvent)
	}
	v := hook.TemplateValues(e)
	key := v.ClientID
	if key == "" {
		key = v.Topic
	}
	return c.s.enqueue(ctx, op{kind: opCustom, key: key, custom: c, vals: &v})
}

// lookupAction answers on_subscribe_lookup, on_retain_lookup and on_message_fetch.
type lookupAction struct {
	s    *Store
	fn   string
	opts hook.OfflineOpts
}

func (a *lookupAction) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	if a.s.closed.Load() {
		return hook.Result{}, fmt.Errorf("cassastore: %w", hook.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, a.s.opts.QueryTimeout)
	defer cancel()
	switch a.fn {
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup:
		var id string
		switch ev := e.(type) {
		case *hook.SessionCreatedEvent:
			if ev != nil {
				id = ev.ClientID
			}
		case *hook.ConnectedEvent:
			if ev != nil {
				id = ev.ClientID
			}
		}
		if id == "" {
			return hook.Result{}, fmt.Errorf("cassastore: %s: %w: %T", a.fn, hook.ErrInvalidEvent, e)
		}
		subs, err := a.s.subscriptions(ctx, id)
		return hook.Result{Subscriptions: subs}, err
	}
	ev, ok := e.(*hook.SubscribedEvent)
	if !ok || ev == nil {
		return hook.Result{}, fmt.Errorf("cassastore: %s: %w: %T", a.fn, hook.ErrInvalidEvent, e)
	}
	filter := topic.Unshared(ev.Topic)
	if err := topic.ValidateFilter(filter); err != nil {
		return hook.Result{}, fmt.Errorf("cassastore: %s: %w: %v", a.fn, hook.ErrInvalidEvent, err)
	}
	if isWildcard(filter) && !a.s.indexOK {
		return hook.Result{}, fmt.Errorf("cassastore: %s %q: %w: wildcard lookups need the %s.%s table (Config.EnsureSchema creates it)",
			a.fn, filter, hook.ErrUnsupported, a.s.cfg.Keyspace, TableTopicIndex)
	}
	if a.fn == hook.OnRetainLookup {
		msgs, err := a.s.retained(ctx, filter)
		return hook.Result{Retained: msgs}, err
	}
	msgs, err := a.s.fetch(ctx, ev.ClientID, filter, a.opts)
	return hook.Result{Offline: msgs}, err
}
