package mongostore

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// Functions lists the built-in functions the store implements: the spec's Mongo rule list.
var Functions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected,
	hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore,
	hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
}

// Prepare checks r and returns its action: a hook.WriteAction for the functions that record,
// a hook.LookupAction for on_subscribe_lookup, on_retain_lookup and on_message_fetch. It
// changes nothing in the store: a storing rule's expired_time takes effect when Activate is
// called with the action (Dispatcher.Register does).
//
// The error is a *hook.RuleError for r. It wraps hook.ErrUnsupported for a function the
// store does not implement (the Redis-only _for_queue, _for_pubsub and _keep_latest ones) and
// for statements (MongoDB has no custom actions), and hook.ErrUnknownOption for a key of
// r.Options other than payload_format.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := r.CheckOptions(OptPayloadFormat); err != nil {
		return nil, err
	}
	fail := func(field string, err error) error { return &hook.RuleError{Rule: r.Name, Field: field, Err: err} }
	a := &r.Action
	switch {
	case a.SQL != nil:
		return nil, fail("action.sql", fmt.Errorf("%w: SQL statements in the MongoDB store (it has built-in functions only)", hook.ErrUnsupported))
	case a.Commands != nil:
		return nil, fail("action.commands", fmt.Errorf("%w: Redis commands in the MongoDB store (it has built-in functions only)", hook.ErrUnsupported))
	case a.CQL != nil:
		return nil, fail("action.cql", fmt.Errorf("%w: CQL statements in the MongoDB store (it has built-in functions only)", hook.ErrUnsupported))
	}
	pf, err := parsePayloadFormat(r)
	if err != nil {
		return nil, err
	}
	if pf != formatPlain {
		switch a.Function {
		case hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain:
		default:
			return nil, fail(OptPayloadFormat, fmt.Errorf("%w: payload_format applies to on_message_publish, on_message_store and on_message_retain, not %s", hook.ErrUnsupported, a.Function))
		}
	}
	switch a.Function {
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup:
		return &subLookup{s: s}, nil
	case hook.OnRetainLookup:
		return &retainLookup{s: s}, nil
	case hook.OnMessageFetch:
		return &fetchLookup{s: s, opts: r.OfflineOpts}, nil
	case hook.OnMessagePublish, hook.OnMessageStore:
		return &writeAction{s: s, fn: a.Function, format: pf, filter: r.Topic, ttl: r.ExpiredTime}, nil
	case hook.OnClientConnected, hook.OnClientDisconnected, hook.OnMessageRetain, hook.OnRetainDelete,
		hook.OnMessageAcked, hook.OnAckedDelete:
		return &writeAction{s: s, fn: a.Function, format: pf}, nil
	}
	return nil, fail("action.function", fmt.Errorf("%w: %s (mongostore implements %s)", hook.ErrUnsupported, a.Function, strings.Join(Functions, ", ")))
}

// writeAction is a built-in function that records: Write turns the event into a queued op.
type writeAction struct {
	s      *Store
	fn     string
	format payloadFormat
	// storing rules: the rule's filter and expired_time, applied once Activate has run.
	filter string
	ttl    time.Duration
	active atomic.Bool
}

func (a *writeAction) Write(ctx context.Context, e hook.Event) error {
	s := a.s
	var o op
	switch a.fn {
	case hook.OnClientConnected:
		ev, ok := e.(*hook.ConnectedEvent)
		if !ok || ev == nil {
			return a.badEvent(e)
		}
		o = op{kind: opConnected, key: ev.ClientID, client: ev.ClientID, node: s.node(ev.Node), at: orNow(ev.ConnectedAt)}
	case hook.OnClientDisconnected:
		ev, ok := e.(*hook.DisconnectedEvent)
		if !ok || ev == nil {
			return a.badEvent(e)
		}
		o = op{kind: opDisconnected, key: ev.ClientID, client: ev.ClientID, node: s.node(ev.Node), at: orNow(ev.DisconnectedAt)}
	case hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain, hook.OnRetainDelete:
		ev, ok := e.(*hook.PublishEvent)
		if !ok || ev == nil || ev.Message == nil {
			return a.badEvent(e)
		}
		m := ev.Message
		if !hook.Records(a.fn, m) {
			return nil
		}
		switch a.fn {
		case hook.OnMessagePublish, hook.OnMessageStore:
			o.kind = opMsg
		case hook.OnMessageRetain:
			o.kind = opRetain
		case hook.OnRetainDelete:
			o.kind = opRetainDelete
		}
		o.key, o.msg, o.at, o.node, o.format = m.Topic, m, orNow(m.Timestamp), s.node(m.Node), a.format
		if o.kind == opMsg {
			o.key = msgStream
			if a.ttl > 0 && a.active.Load() {
				o.expireAt = o.at.Add(a.ttl)
			}
		}
	case hook.OnMessageAcked:
		ev, ok := e.(*hook.AckedEvent)
		if !ok || ev == nil || ev.Message == nil {
			return a.badEvent(e)
		}
		o = op{kind: opAcked, key: msgStream, client: ev.ClientID, msg: ev.Message}
	case hook.OnAckedDelete:
		ev, ok := e.(*hook.UnsubscribedEvent)
		if !ok || ev == nil {
			return a.badEvent(e)
		}
		o = op{kind: opAckedDelete, key: msgStream, client: ev.ClientID, filter: topic.Unshared(ev.Topic)}
	}
	return s.w.EnqueueContext(ctx, o)
}

func (a *writeAction) badEvent(e hook.Event) error {
	return fmt.Errorf("mongostore: %s cannot record %T: %w", a.fn, e, hook.ErrInvalidEvent)
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}
