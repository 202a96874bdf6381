package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// query runs q and calls each for every row, with the row's Scan.
func (s *Store) query(ctx context.Context, q string, args []any, each func(scan func(dest ...any) error) error) error {
	var rows interface {
		Next() bool
		Scan(dest ...any) error
		Err() error
	}
	if s.pg != nil {
		r, err := s.pg.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer r.Close()
		rows = r
	} else {
		ps, err := s.prepared(ctx, q)
		if err != nil {
			return err
		}
		r, err := ps.QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		defer r.Close()
		rows = r
	}
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return err
		}
	}
	return rows.Err()
}

// exec runs q once, outside the write queue, and returns the rows affected.
func (s *Store) exec(ctx context.Context, q string, args ...any) (int64, error) {
	if s.pg != nil {
		tag, err := s.pg.Exec(ctx, q, args...)
		return tag.RowsAffected(), err
	}
	ps, err := s.prepared(ctx, q)
	if err != nil {
		return 0, err
	}
	res, err := ps.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// topicCond writes to q the condition that the topic column col matches p, appending the
// arguments it binds to args.
func (s *Store) topicCond(q *strings.Builder, args []any, col string, p filterPlan) []any {
	d := s.d
	c := d.topicCol(col)
	bind := func(v any) string {
		args = append(args, v)
		return d.ph(len(args))
	}
	switch {
	case p.exact:
		q.WriteString(c + " = " + bind(p.filter))
	case p.prefix != "":
		q.WriteString("(" + c + " >= " + bind(p.prefix) + " AND " + c + " < " + bind(rangeEnd(p.prefix)))
		if p.hasParent {
			q.WriteString(" OR " + c + " = " + bind(p.parent))
		}
		q.WriteString(")")
		if !p.prefixOnly {
			q.WriteString(" AND " + d.matchCond(c, bind(d.matchArg(p))))
		}
	default: // the first level is a wildcard: no range, the pattern also applies the '$' rule
		q.WriteString(d.matchCond(c, bind(d.matchArg(p))))
	}
	return args
}

// subLookup is on_subscribe_lookup: the client's rows of mqtt_sub.
type subLookup struct {
	s *Store
}

func (l *subLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	var client string
	switch ev := e.(type) {
	case *hook.SessionCreatedEvent:
		if ev != nil {
			client = ev.ClientID
		}
	case *hook.ConnectedEvent:
		if ev != nil {
			client = ev.ClientID
		}
	}
	if client == "" {
		return hook.Result{}, fmt.Errorf("sqlstore: on_subscribe_lookup cannot answer %T without a client ID: %w", e, hook.ErrInvalidEvent)
	}
	subs, err := l.s.Subscriptions(ctx, client)
	if err != nil {
		return hook.Result{}, err
	}
	return hook.Result{Subscriptions: subs}, nil
}

// Subscriptions returns the client's stored subscriptions (mqtt_sub), oldest first.
func (s *Store) Subscriptions(ctx context.Context, clientID string) ([]hook.Subscription, error) {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	var subs []hook.Subscription
	err := s.query(ctx, s.d.subLookup, []any{clientID}, func(scan func(...any) error) error {
		var t string
		var qos sql.NullInt64
		if err := scan(&t, &qos); err != nil {
			return err
		}
		subs = append(subs, hook.Subscription{Topic: t, QoS: byte(min(max(qos.Int64, 0), 2))})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: subscriptions of %q: %w", clientID, err)
	}
	return subs, nil
}

// AddSubscription stores (or updates the QoS of) a subscription of the client in mqtt_sub.
func (s *Store) AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error {
	if err := topic.ValidateFilter(sub.Topic); err != nil {
		return fmt.Errorf("sqlstore: add subscription of %q: %w", clientID, err)
	}
	if sub.QoS > 2 {
		return fmt.Errorf("sqlstore: add subscription of %q to %q: QoS %d is not 0, 1 or 2", clientID, sub.Topic, sub.QoS)
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	args := []any{clientID, sub.Topic, int32(sub.QoS)}
	if s.pg != nil {
		args = append(args, s.d.timeArg(time.Now()))
	}
	if _, err := s.exec(ctx, s.d.subAdd, args...); err != nil {
		return fmt.Errorf("sqlstore: add subscription of %q to %q: %w", clientID, sub.Topic, err)
	}
	return nil
}

// DeleteSubscription deletes the client's subscription to topic filter from mqtt_sub.
func (s *Store) DeleteSubscription(ctx context.Context, clientID, filter string) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	if _, err := s.exec(ctx, s.d.subDelete, clientID, filter); err != nil {
		return fmt.Errorf("sqlstore: delete subscription of %q to %q: %w", clientID, filter, err)
	}
	return nil
}

// ClientState returns what on_client_connected and on_client_disconnected recorded for the
// client (mqtt_client); an error wrapping hook.ErrNotFound if nothing.
func (s *Store) ClientState(ctx context.Context, clientID string) (backend.ClientState, error) {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	st := backend.ClientState{ClientID: clientID}
	found := false
	err := s.query(ctx, s.d.clientState, []any{clientID}, func(scan func(...any) error) error {
		var state, online, offline any
		var node sql.NullString
		if err := scan(&state, &node, &online, &offline); err != nil {
			return err
		}
		found = true
		st.Node = node.String
		st.Online = fmt.Sprint(normalize(state)) == "1"
		var err error
		if st.OnlineAt, err = toTime(online); err != nil {
			return err
		}
		st.OfflineAt, err = toTime(offline)
		return err
	})
	if err != nil {
		return st, fmt.Errorf("sqlstore: client state of %q: %w", clientID, err)
	}
	if !found {
		return st, fmt.Errorf("sqlstore: client state of %q: %w", clientID, hook.ErrNotFound)
	}
	return st, nil
}

// normalize turns the text forms of a scanned value into a string.
func normalize(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// retainLookup is on_retain_lookup: the retained messages whose topic the subscribed filter
// matches.
type retainLookup struct {
	s *Store
}

func (l *retainLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	ev, ok := e.(*hook.SubscribedEvent)
	if !ok || ev == nil {
		return hook.Result{}, fmt.Errorf("sqlstore: on_retain_lookup cannot answer %T: %w", e, hook.ErrInvalidEvent)
	}
	msgs, err := l.s.Retained(ctx, ev.Topic)
	if err != nil {
		return hook.Result{}, err
	}
	return hook.Result{Retained: msgs}, nil
}

// Retained returns the retained messages (mqtt_retain) whose topic filter matches (without
// its shared-subscription prefix), in topic order: an index lookup for a filter without
// wildcards, an index range on the literal levels before the first wildcard otherwise.
func (s *Store) Retained(ctx context.Context, filter string) ([]*hook.Message, error) {
	filter = topic.Unshared(filter)
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("sqlstore: retained: %w", err)
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	q, args := s.retainedQuery(filter)
	var msgs []*hook.Message
	err := s.query(ctx, q, args, func(scan func(...any) error) error {
		m := &hook.Message{Retain: true}
		var msgid, sender, node sql.NullString
		var qos sql.NullInt64
		var arrived any
		dest := []any{&m.Topic, &msgid, &sender, &qos, &m.Payload, &arrived}
		if s.d.hasNode {
			dest = append(dest, &node)
		}
		if err := scan(dest...); err != nil {
			return err
		}
		if !topic.Match(filter, m.Topic) {
			return nil // a case-insensitive collation let it through
		}
		m.ID, m.From, m.Node, m.QoS = msgid.String, sender.String, node.String, byte(qos.Int64)
		var err error
		m.Timestamp, err = toTime(arrived)
		msgs = append(msgs, m)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: retained messages for %q: %w", filter, err)
	}
	return msgs, nil
}

func (s *Store) retainedQuery(filter string) (string, []any) {
	var q strings.Builder
	q.WriteString("SELECT topic, msgid, sender, qos, payload, arrived")
	if s.d.hasNode {
		q.WriteString(", node")
	}
	q.WriteString(" FROM mqtt_retain WHERE ")
	args := s.topicCond(&q, nil, "topic", planFilter(filter))
	q.WriteString(" ORDER BY " + s.d.topicCol("topic"))
	return q.String(), args
}

// fetchLookup is on_message_fetch.
type fetchLookup struct {
	s    *Store
	opts hook.OfflineOpts
}

func (l *fetchLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	ev, ok := e.(*hook.SubscribedEvent)
	if !ok || ev == nil {
		return hook.Result{}, fmt.Errorf("sqlstore: on_message_fetch cannot answer %T: %w", e, hook.ErrInvalidEvent)
	}
	msgs, err := l.s.Fetch(ctx, ev.ClientID, ev.Topic, l.opts)
	if err != nil {
		return hook.Result{}, err
	}
	return hook.Result{Offline: msgs}, nil
}

// Fetch returns the stored messages (mqtt_msg) on topics the filter matches (without its
// shared-subscription prefix) that the client has not acknowledged: newer (by id) than its
// position for their topic in mqtt_acked, oldest first, at most opts.MaxReturnedCount of them,
// none older than opts.TimeRange, none expired.
//
// The query walks the (topic, id) index: one range for a filter without wildcards, a range on
// the literal levels before the first wildcard otherwise (narrowed by a pattern, so that the
// LIMIT counts matching rows only); the acked position is a lookup in mqtt_acked's unique
// (clientid, topic) index.
func (s *Store) Fetch(ctx context.Context, clientID, filter string, opts hook.OfflineOpts) ([]*hook.Message, error) {
	filter = topic.Unshared(filter)
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("sqlstore: fetch: %w", err)
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	now := time.Now()
	exp := s.expiryRules()
	q, args := s.fetchQuery(clientID, filter, opts, exp, now)
	d := s.d
	var msgs []*hook.Message
	err := s.query(ctx, q, args, func(scan func(...any) error) error {
		m := &hook.Message{}
		var id int64
		var msgid, sender, node sql.NullString
		var qos, retain sql.NullInt64
		var arrived any
		dest := []any{&id, &msgid, &sender, &m.Topic, &qos, &retain, &m.Payload, &arrived}
		if d.hasNode {
			dest = append(dest, &node)
		}
		if err := scan(dest...); err != nil {
			return err
		}
		var err error
		if m.Timestamp, err = toTime(arrived); err != nil {
			return err
		}
		if !topic.Match(filter, m.Topic) || exp.expired(m.Topic, m.Timestamp, now) {
			return nil
		}
		m.ID, m.From, m.Node = msgid.String, sender.String, node.String
		m.QoS, m.Retain = byte(qos.Int64), retain.Int64 != 0
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlstore: fetch %q for %q: %w", filter, clientID, err)
	}
	return msgs, nil
}

// fetchQuery is the query of Fetch and its arguments.
func (s *Store) fetchQuery(clientID, filter string, opts hook.OfflineOpts, exp expiries, now time.Time) (string, []any) {
	d := s.d
	p := planFilter(filter)
	var q strings.Builder
	q.WriteString("SELECT m.id, m.msgid, m.sender, m.topic, m.qos, m.retain, m.payload, m.arrived")
	if d.hasNode {
		q.WriteString(", m.node")
	}
	q.WriteString(" FROM mqtt_msg m WHERE ")
	args := s.topicCond(&q, nil, "m.topic", p)
	args = append(args, clientID)
	q.WriteString(" AND m.id > COALESCE((SELECT a.mid FROM mqtt_acked a WHERE a.clientid = " + d.ph(len(args)) + " AND " + d.topicCol("a.topic") + " = ")
	if p.exact {
		args = append(args, filter)
		q.WriteString(d.ph(len(args)))
	} else {
		q.WriteString(d.topicCol("m.topic"))
	}
	q.WriteString("), 0)")
	var cutoff time.Time
	if opts.TimeRange > 0 {
		cutoff = now.Add(-opts.TimeRange)
	}
	if ttl, all := exp.longest(); all && ttl > 0 {
		if c := now.Add(-ttl); c.After(cutoff) {
			cutoff = c
		}
	}
	if !cutoff.IsZero() {
		args = append(args, d.timeArg(cutoff))
		q.WriteString(" AND m.arrived >= " + d.ph(len(args)))
	}
	q.WriteString(" ORDER BY m.id")
	if opts.MaxReturnedCount > 0 {
		args = append(args, int64(opts.MaxReturnedCount))
		q.WriteString(" LIMIT " + d.ph(len(args)))
	}
	return q.String(), args
}

// toTime converts a scanned DATETIME/timestamp: time.Time from pgx, from go-sql-driver/mysql
// with parseTime and from SQLite's DATETIME columns; text otherwise.
func toTime(v any) (time.Time, error) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return v.UTC(), nil
	case []byte:
		return parseTime(string(v))
	case string:
		return parseTime(v)
	case int64: // SQLite, written as Unix seconds by someone else
		return time.Unix(v, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time column holds %T", v)
}

var timeLayouts = []string{"2006-01-02 15:04:05.999999999", time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999 -0700 MST", "2006-01-02"}

func parseTime(s string) (time.Time, error) {
	if s == "" || strings.HasPrefix(s, "0000-00-00") {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time column holds %q", s)
}
