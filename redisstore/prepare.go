package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// Functions lists the built-in functions the store implements.
var Functions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected,
	hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore,
	hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetchForQueue, hook.OnMessageAckedForQueue,
	hook.OnMessageFetchForPubsub, hook.OnMessageAckedForPubsub,
	hook.OnMessageStoreKeepLatest, hook.OnMessageFetchForKeepLatest, hook.OnMessageAckedForKeepLatest,
}

// Prepare checks r and returns its action: a hook.LookupAction for on_subscribe_lookup,
// on_retain_lookup and the fetch functions, a hook.WriteAction for the other functions and
// for custom commands. The error, a *hook.RuleError naming the rule and the field, wraps
// hook.ErrUnsupported for a function the store does not implement (on_message_fetch,
// on_message_acked and on_acked_delete: Redis has the _for_queue, _for_pubsub and
// _keep_latest functions instead) and for SQL or CQL statements, hook.ErrUnknownOption for
// a rule option the store does not know (it takes none besides the rule format's), and the
// template's error for a command that does not compile.
//
// Prepare changes nothing in the store: what a rule needs of it (expired_time) is applied by
// Activate, once every rule of a registration has prepared.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	if r == nil {
		return nil, fmt.Errorf("redisstore: prepare: nil rule")
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
		return s.prepareCommands(r)
	case a.SQL != nil:
		return nil, fail("action.sql", fmt.Errorf("%w: SQL statements in the Redis store (use \"commands\")", hook.ErrUnsupported))
	case a.CQL != nil:
		return nil, fail("action.cql", fmt.Errorf("%w: CQL statements in the Redis store (use \"commands\")", hook.ErrUnsupported))
	}
	fn := a.Function
	switch fn {
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup:
		return &subLookup{s: s}, nil
	case hook.OnRetainLookup:
		return &retainLookup{s: s}, nil
	case hook.OnMessageFetchForQueue, hook.OnMessageFetchForPubsub:
		return &fetchLookup{s: s, pubsub: fn == hook.OnMessageFetchForPubsub, opts: r.OfflineOpts}, nil
	case hook.OnMessageFetchForKeepLatest:
		return &latestLookup{s: s, opts: r.OfflineOpts}, nil
	case hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain, hook.OnMessageStoreKeepLatest:
		return &writeAction{s: s, fn: fn, ttl: r.ExpiredTime}, nil
	case hook.OnClientConnected, hook.OnClientDisconnected, hook.OnRetainDelete,
		hook.OnMessageAckedForQueue, hook.OnMessageAckedForPubsub, hook.OnMessageAckedForKeepLatest:
		return &writeAction{s: s, fn: fn}, nil
	}
	return nil, fail("action.function", fmt.Errorf("%w: %s in the Redis store (it implements %v)", hook.ErrUnsupported, fn, Functions))
}

// Activate implements hook.Activator: it applies what the rules of a registration need of
// the store, once every one of them has prepared. A storing rule with expired_time makes
// writes without one PERSIST what they write (so that a message stored again without expiry
// keeps no earlier one), and the longest expired_time of the message storing rules bounds
// how long the IDs of expiring topic sets are kept (see scriptAdd). Actions of another store
// are ignored. It cannot fail.
func (s *Store) Activate(ctx context.Context, actions []hook.Action) error {
	var ttl time.Duration
	expiring := false
	for _, act := range actions {
		a, ok := act.(*writeAction)
		if !ok || a.s != s || a.ttl <= 0 {
			continue
		}
		expiring = true
		if a.fn == hook.OnMessagePublish || a.fn == hook.OnMessageStore {
			ttl = max(ttl, a.ttl)
		}
	}
	if expiring {
		s.ttlRules.Store(true)
	}
	for {
		cur := s.maxTTL.Load()
		if int64(ttl) <= cur || s.maxTTL.CompareAndSwap(cur, int64(ttl)) {
			return nil
		}
	}
}

// writeAction is a built-in function that records: Write turns the event into a queued op.
type writeAction struct {
	s   *Store
	fn  string
	ttl time.Duration // expired_time of the storing functions
}

func (a *writeAction) Write(ctx context.Context, e hook.Event) error {
	switch a.fn {
	case hook.OnClientConnected:
		ev, ok := e.(*hook.ConnectedEvent)
		if !ok || ev == nil {
			return a.badEvent(e)
		}
		return a.s.enqueue(ctx, op{kind: opConnected, key: ev.ClientID, client: ev.ClientID, node: ev.Node, at: ev.ConnectedAt})
	case hook.OnClientDisconnected:
		ev, ok := e.(*hook.DisconnectedEvent)
		if !ok || ev == nil {
			return a.badEvent(e)
		}
		return a.s.enqueue(ctx, op{kind: opDisconnected, key: ev.ClientID, client: ev.ClientID, node: ev.Node, at: ev.DisconnectedAt})
	case hook.OnMessageAckedForQueue, hook.OnMessageAckedForPubsub, hook.OnMessageAckedForKeepLatest:
		ev, ok := e.(*hook.AckedEvent)
		if !ok || ev == nil || ev.Message == nil {
			return a.badEvent(e)
		}
		if err := a.checkMessage(ev.Message); err != nil {
			return err
		}
		// Keyed by topic: in order with the writes of the messages they name (a position
		// moves to a message of the topic's set only once it is there).
		o := op{kind: opPubsubAck, key: ev.Message.Topic, client: ev.ClientID, msg: ev.Message}
		switch a.fn {
		case hook.OnMessageAckedForQueue:
			o.kind = opQueueAck
		case hook.OnMessageAckedForKeepLatest:
			o.kind = opLatestAck
		}
		return a.s.enqueue(ctx, o)
	}
	ev, ok := e.(*hook.PublishEvent)
	if !ok || ev == nil || ev.Message == nil {
		return a.badEvent(e)
	}
	m := ev.Message
	if err := a.checkMessage(m); err != nil {
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
	case hook.OnMessageStoreKeepLatest:
		o.kind = opLatest
	}
	return a.s.enqueue(ctx, o)
}

func (a *writeAction) badEvent(e hook.Event) error {
	return fmt.Errorf("redisstore: %s cannot record %T: %w", a.fn, e, hook.ErrInvalidEvent)
}

// checkMessage refuses messages the keys cannot be built from.
func (a *writeAction) checkMessage(m *hook.Message) error {
	switch {
	case m.ID == "":
		return fmt.Errorf("redisstore: %s: message on %q has no ID: %w", a.fn, m.Topic, hook.ErrInvalidEvent)
	case m.Topic == "":
		return fmt.Errorf("redisstore: %s: message %s has no topic: %w", a.fn, m.ID, hook.ErrInvalidEvent)
	case m.QoS > 2:
		return fmt.Errorf("redisstore: %s: message %s has QoS %d: %w", a.fn, m.ID, m.QoS, hook.ErrInvalidEvent)
	}
	return nil
}

func (s *Store) enqueue(ctx context.Context, o op) error { return s.w.EnqueueContext(ctx, o) }
