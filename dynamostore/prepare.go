package dynamostore

import (
	"context"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// Functions lists the built-in functions the store implements: the spec's DynamoDB rule list.
var Functions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected,
	hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore,
	hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetchForQueue, hook.OnMessageAckedForQueue, hook.OnAckedDelete,
}

// Prepare checks r and returns its action: a hook.LookupAction for on_subscribe_lookup,
// on_retain_lookup and on_message_fetch_for_queue, a hook.WriteAction for the others. It
// refuses, with a *hook.RuleError wrapping hook.ErrUnsupported, the functions the store does
// not implement and every custom action (DynamoDB has no statements in the spec), and
// unknown rule options with hook.ErrUnknownOption. Prepare changes nothing in the store:
// expired_time's TTL is enabled by Activate.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	if r == nil {
		return nil, fmt.Errorf("dynamostore: prepare: nil rule")
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
	case a.Commands != nil:
		return nil, fail("action.commands", fmt.Errorf("%w: Redis commands in the DynamoDB store", hook.ErrUnsupported))
	case a.SQL != nil:
		return nil, fail("action.sql", fmt.Errorf("%w: SQL statements in the DynamoDB store", hook.ErrUnsupported))
	case a.CQL != nil:
		return nil, fail("action.cql", fmt.Errorf("%w: CQL statements in the DynamoDB store", hook.ErrUnsupported))
	}
	switch fn := a.Function; fn {
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup, hook.OnRetainLookup, hook.OnMessageFetchForQueue:
		return &lookupAction{s: s, fn: fn, opts: r.OfflineOpts}, nil
	case hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain:
		return &writeAction{s: s, fn: fn, ttl: r.ExpiredTime}, nil
	case hook.OnClientConnected, hook.OnClientDisconnected, hook.OnRetainDelete, hook.OnMessageAckedForQueue, hook.OnAckedDelete:
		return &writeAction{s: s, fn: fn}, nil
	default:
		return nil, fail("action.function", fmt.Errorf("%w: %s in the DynamoDB store (it implements %v)", hook.ErrUnsupported, fn, Functions))
	}
}

// Activate implements hook.Activator: a rule of this store with expired_time turns on
// DynamoDB's TTL on expire_at (mqtt_msg, mqtt_retain), once; a server without TTL is logged
// once and expired messages are filtered on read (they are in every case). It never fails:
// the items carry their expiry whatever the server does with it.
func (s *Store) Activate(ctx context.Context, actions []hook.Action) error {
	for _, act := range actions {
		if a, ok := act.(*writeAction); ok && a.s == s && a.ttl > 0 {
			s.enableTTL(ctx)
			return nil
		}
	}
	return nil
}

// writeAction records an event through the writer.
type writeAction struct {
	s   *Store
	fn  string
	ttl time.Duration
}

func (a *writeAction) Write(ctx context.Context, e hook.Event) error {
	bad := func() error {
		return fmt.Errorf("dynamostore: %s: %w: %T", a.fn, hook.ErrInvalidEvent, e)
	}
	switch a.fn {
	case hook.OnClientConnected:
		ev, ok := e.(*hook.ConnectedEvent)
		if !ok || ev == nil || ev.ClientID == "" {
			return bad()
		}
		at := ev.ConnectedAt
		if at.IsZero() {
			at = time.Now()
		}
		return a.s.enqueue(ctx, op{kind: opConnected, key: ev.ClientID, client: ev.ClientID, node: ev.Node, at: at})
	case hook.OnClientDisconnected:
		ev, ok := e.(*hook.DisconnectedEvent)
		if !ok || ev == nil || ev.ClientID == "" {
			return bad()
		}
		at := ev.DisconnectedAt
		if at.IsZero() {
			at = time.Now()
		}
		return a.s.enqueue(ctx, op{kind: opDisconnected, key: ev.ClientID, client: ev.ClientID, node: ev.Node, at: at})
	case hook.OnAckedDelete:
		ev, ok := e.(*hook.UnsubscribedEvent)
		if !ok || ev == nil || ev.ClientID == "" || ev.Topic == "" {
			return bad()
		}
		_, filter, _ := topic.ParseShared(ev.Topic)
		return a.s.enqueue(ctx, op{kind: opAckedDelete, key: ev.ClientID, client: ev.ClientID, filter: filter})
	case hook.OnMessageAckedForQueue:
		ev, ok := e.(*hook.AckedEvent)
		if !ok || ev == nil || ev.Message == nil || ev.ClientID == "" {
			return bad()
		}
		if err := checkMessage(ev.Message); err != nil {
			return err
		}
		// Keyed by topic: after the write of the message it removes.
		return a.s.enqueue(ctx, op{kind: opQueueAck, key: ev.Message.Topic, client: ev.ClientID, msg: ev.Message})
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
	case hook.OnMessageRetain:
		o.kind = opRetain
	case hook.OnRetainDelete:
		o.kind = opRetainDelete
	}
	return a.s.enqueue(ctx, o)
}

func checkMessage(m *hook.Message) error {
	switch {
	case m.ID == "":
		return fmt.Errorf("dynamostore: %w: message on %q has no ID", hook.ErrInvalidEvent, m.Topic)
	case m.Topic == "":
		return fmt.Errorf("dynamostore: %w: message %s has no topic", hook.ErrInvalidEvent, m.ID)
	case m.QoS > 2:
		return fmt.Errorf("dynamostore: %w: message %s has QoS %d", hook.ErrInvalidEvent, m.ID, m.QoS)
	}
	return nil
}

// lookupAction answers on_subscribe_lookup, on_retain_lookup and on_message_fetch_for_queue.
type lookupAction struct {
	s    *Store
	fn   string
	opts hook.OfflineOpts
}

func (a *lookupAction) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	if a.s.closed.Load() {
		return hook.Result{}, fmt.Errorf("dynamostore: %w", hook.ErrClosed)
	}
	ctx, cancel := context.WithTimeout(ctx, a.s.opts.QueryTimeout)
	defer cancel()
	switch a.fn {
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup:
		var id string
		switch ev := e.(type) {
		case *hook.SessionCreatedEvent:
			id = ev.ClientID
		case *hook.ConnectedEvent:
			id = ev.ClientID
		default:
			return hook.Result{}, fmt.Errorf("dynamostore: %s: %w: %T", a.fn, hook.ErrInvalidEvent, e)
		}
		subs, err := a.s.subscriptions(ctx, id)
		return hook.Result{Subscriptions: subs}, err
	}
	ev, ok := e.(*hook.SubscribedEvent)
	if !ok || ev == nil {
		return hook.Result{}, fmt.Errorf("dynamostore: %s: %w: %T", a.fn, hook.ErrInvalidEvent, e)
	}
	_, filter, _ := topic.ParseShared(ev.Topic)
	if err := topic.ValidateFilter(filter); err != nil {
		return hook.Result{}, fmt.Errorf("dynamostore: %s: %w: %v", a.fn, hook.ErrInvalidEvent, err)
	}
	if a.fn == hook.OnRetainLookup {
		msgs, err := a.s.retained(ctx, filter)
		return hook.Result{Retained: msgs}, err
	}
	msgs, err := a.s.fetchQueue(ctx, filter, a.opts)
	return hook.Result{Offline: msgs}, err
}
