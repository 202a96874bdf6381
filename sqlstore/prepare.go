package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/topic"
)

// Functions lists the built-in functions the store implements.
var Functions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected,
	hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore,
	hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
}

// Prepare checks r and returns its action: a hook.WriteAction for the functions that record
// (and for custom SQL statements), a hook.LookupAction for on_subscribe_lookup,
// on_retain_lookup and on_message_fetch. It changes nothing in the store: a storing rule's
// expired_time takes effect when Activate is called with the action (Dispatcher.Register does).
//
// The error is a *hook.RuleError for r (the dispatcher adds the backend's name). It wraps
// hook.ErrUnsupported for a function the store does not implement (the Redis-only
// _for_queue, _for_pubsub and _keep_latest ones) or for Redis commands and CQL,
// hook.ErrUnknownOption for a key of r.Options (sqlstore reads no store-specific rule keys),
// and the template's error for a statement whose placeholders cannot be bound.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := r.CheckOptions(); err != nil {
		return nil, err
	}
	fail := func(field string, err error) error { return &hook.RuleError{Rule: r.Name, Field: field, Err: err} }
	a := &r.Action
	switch {
	case a.SQL != nil:
		c := &customAction{s: s, rule: r.Name}
		for i, src := range a.SQL {
			st, err := template.CompileStatement(s.d.tmpl, src)
			if err != nil {
				return nil, fail(fmt.Sprintf("action.sql[%d]", i), err)
			}
			c.stmts = append(c.stmts, st)
		}
		return c, nil
	case a.Commands != nil:
		return nil, fail("action.commands", fmt.Errorf("%w: Redis commands in an SQL store (use \"sql\")", hook.ErrUnsupported))
	case a.CQL != nil:
		return nil, fail("action.cql", fmt.Errorf("%w: CQL statements in an SQL store (use \"sql\")", hook.ErrUnsupported))
	}
	switch a.Function {
	case hook.OnSubscribeLookup, hook.OnSubscriptionLookup:
		return &subLookup{s: s}, nil
	case hook.OnRetainLookup:
		return &retainLookup{s: s}, nil
	case hook.OnMessageFetch:
		return &fetchLookup{s: s, opts: r.OfflineOpts}, nil
	case hook.OnMessagePublish, hook.OnMessageStore:
		return &writeAction{s: s, fn: a.Function, exp: &expiry{filter: r.Topic, ttl: r.ExpiredTime}}, nil
	case hook.OnClientConnected, hook.OnClientDisconnected, hook.OnMessageRetain, hook.OnRetainDelete,
		hook.OnMessageAcked, hook.OnAckedDelete:
		return &writeAction{s: s, fn: a.Function}, nil
	}
	return nil, fail("action.function", fmt.Errorf("%w: %s (sqlstore implements %s)", hook.ErrUnsupported, a.Function, strings.Join(Functions, ", ")))
}

// writeAction is a built-in function that records: Write turns the event into a queued op.
type writeAction struct {
	s   *Store
	fn  string
	exp *expiry // storing functions: the rule's filter and expired_time, applied by Activate
}

func (a *writeAction) Write(ctx context.Context, e hook.Event) error {
	s := a.s
	o := op{}
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
		if o.kind == opMsg && s.msgText.Load() || o.kind == opRetain && s.retainText.Load() {
			if err := textPayload(m.Payload); err != nil {
				return s.w.Refuse(fmt.Errorf("sqlstore: message %s on %q: %w (Config.MigratePayload converts the column to bytea)", m.ID, m.Topic, err))
			}
		}
		o.key, o.msg, o.at = m.Topic, m, orNow(m.Timestamp)
		if o.kind == opMsg {
			o.key = msgStream
		}
	case hook.OnMessageAcked:
		ev, ok := e.(*hook.AckedEvent)
		if !ok || ev == nil || ev.Message == nil {
			return a.badEvent(e)
		}
		o = op{kind: opAcked, key: msgStream, client: ev.ClientID, msg: ev.Message, at: time.Now()}
	case hook.OnAckedDelete:
		ev, ok := e.(*hook.UnsubscribedEvent)
		if !ok || ev == nil {
			return a.badEvent(e)
		}
		f := topic.Unshared(ev.Topic)
		o = op{kind: opAckedDelete, key: msgStream, client: ev.ClientID, filter: f}
	}
	if err := s.fits(&o); err != nil {
		return s.w.Refuse(err)
	}
	return s.w.EnqueueContext(ctx, o)
}

// fits checks that the values of o fit the columns they go into. It runs in the broker's
// call: no allocation unless a value does not fit.
func (s *Store) fits(o *op) error {
	wp := s.widths.Load()
	if wp == nil {
		return nil
	}
	widths := *wp
	check := func(column, v string) error { // column: "table.column", a key of widths
		n := widths[column]
		if n == 0 || len(v) <= n { // a character takes a byte at least
			return nil
		}
		if c := utf8.RuneCountInString(v); c > n {
			return fmt.Errorf("sqlstore: a value of %d characters for %s, which holds %d: %w", c, column, n, ErrValueTooLong)
		}
		return nil
	}
	switch o.kind {
	case opConnected, opDisconnected:
		return errors.Join(check("mqtt_client.clientid", o.client), check("mqtt_client.node", o.node))
	case opMsg, opRetain:
		cols := &msgColumns
		if o.kind == opRetain {
			cols = &retainColumns
		}
		m := o.msg
		err := errors.Join(check(cols[0], m.Topic), check(cols[1], m.ID), check(cols[2], m.From))
		if err == nil && s.d.hasNode {
			err = check(cols[3], s.node(m.Node))
		}
		return err
	case opAcked:
		return errors.Join(check("mqtt_acked.clientid", o.client), check("mqtt_acked.topic", o.msg.Topic))
	}
	return nil
}

// The checked columns of a message and a retained message: topic, msgid, sender, node.
var (
	msgColumns    = [4]string{"mqtt_msg.topic", "mqtt_msg.msgid", "mqtt_msg.sender", "mqtt_msg.node"}
	retainColumns = [4]string{"mqtt_retain.topic", "mqtt_retain.msgid", "mqtt_retain.sender", "mqtt_retain.node"}
)

func (a *writeAction) badEvent(e hook.Event) error {
	return fmt.Errorf("sqlstore: %s cannot record %T: %w", a.fn, e, hook.ErrInvalidEvent)
}

func orNow(t time.Time) time.Time {
	if t.IsZero() {
		return time.Now()
	}
	return t
}

// customAction is a rule's list of SQL statements, run in order in one transaction with the
// event's values bound to their markers.
type customAction struct {
	s     *Store
	rule  string
	stmts []*template.Statement
}

func (c *customAction) Write(ctx context.Context, e hook.Event) error {
	if e == nil {
		return fmt.Errorf("sqlstore: nil event: %w", hook.ErrInvalidEvent)
	}
	v := hook.TemplateValues(e)
	key := v.ClientID
	if key == "" {
		key = v.Topic
	}
	return c.s.w.EnqueueContext(ctx, op{kind: opCustom, key: key, custom: c, vals: &v})
}
