package mongostore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// wildcard reports whether filter has a '+' or '#' level.
func wildcard(filter string) bool {
	for l := range strings.SplitSeq(filter, "/") {
		if l == "+" || l == "#" {
			return true
		}
	}
	return false
}

// topicCond is the condition on a topic field that the filter matches: the topic itself for
// a filter without wildcards, else an anchored regular expression in the syntax common to
// PCRE (MongoDB) and RE2 (FerretDB): a literal prefix (which MongoDB serves from an index),
// '[^/]*' for '+', an optional tail for '#', and the rule that a filter starting with a
// wildcard does not match topics starting with '$'.
func topicCond(filter string) any {
	if !wildcard(filter) {
		return filter
	}
	return bson.D{{Key: "$regex", Value: filterRegexp(filter)}}
}

func filterRegexp(filter string) string {
	var b strings.Builder
	b.WriteString(`^`)
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i == 0:
			b.WriteString(`(?:[^$][\s\S]*)?`)
		case l == "#":
			b.WriteString(`(?:/[\s\S]*)?`)
		default:
			if i > 0 {
				b.WriteByte('/')
			}
			switch {
			case l == "+" && i == 0:
				b.WriteString(`(?:[^$/][^/]*)?`)
			case l == "+":
				b.WriteString(`[^/]*`)
			default:
				quoteRegexp(&b, l)
			}
		}
	}
	b.WriteString(`\z`)
	return b.String()
}

// quoteRegexp writes s with every ASCII punctuation character escaped by a backslash, which
// both engines read as the literal character.
func quoteRegexp(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') && c > ' ' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
}

// subLookup is on_subscribe_lookup: the client's documents of mqtt_sub.
type subLookup struct{ s *Store }

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
		return hook.Result{}, fmt.Errorf("mongostore: on_subscribe_lookup cannot answer %T without a client ID: %w", e, hook.ErrInvalidEvent)
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
	cur, err := s.sub.Find(ctx, bson.D{{Key: "clientid", Value: clientID}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongostore: subscriptions of %q: %w", clientID, err)
	}
	var docs []struct {
		Topic string `bson:"topic"`
		QoS   any    `bson:"qos"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("mongostore: subscriptions of %q: %w", clientID, err)
	}
	subs := make([]hook.Subscription, 0, len(docs))
	for _, d := range docs {
		subs = append(subs, hook.Subscription{Topic: d.Topic, QoS: byte(min(max(toInt64(d.QoS), 0), 2))})
	}
	return subs, nil
}

// AddSubscription stores (or updates the QoS of) a subscription of the client in mqtt_sub.
func (s *Store) AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error {
	if err := topic.ValidateFilter(sub.Topic); err != nil {
		return fmt.Errorf("mongostore: add subscription of %q: %w", clientID, err)
	}
	if sub.QoS > 2 {
		return fmt.Errorf("mongostore: add subscription of %q to %q: QoS %d is not 0, 1 or 2", clientID, sub.Topic, sub.QoS)
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	f := bson.D{{Key: "clientid", Value: clientID}, {Key: "topic", Value: sub.Topic}}
	u := bson.D{{Key: "$set", Value: bson.D{{Key: "qos", Value: int32(sub.QoS)}}}}
	_, err := s.sub.UpdateOne(ctx, f, u, options.UpdateOne().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) { // a concurrent upsert created it
		_, err = s.sub.UpdateOne(ctx, f, u)
	}
	if err != nil {
		return fmt.Errorf("mongostore: add subscription of %q to %q: %w", clientID, sub.Topic, err)
	}
	return nil
}

// DeleteSubscription deletes the client's subscription to topic filter from mqtt_sub.
func (s *Store) DeleteSubscription(ctx context.Context, clientID, filter string) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	if _, err := s.sub.DeleteMany(ctx, bson.D{{Key: "clientid", Value: clientID}, {Key: "topic", Value: filter}}); err != nil {
		return fmt.Errorf("mongostore: delete subscription of %q to %q: %w", clientID, filter, err)
	}
	return nil
}

// ClientState returns what on_client_connected and on_client_disconnected recorded for the
// client (mqtt_client); an error wrapping hook.ErrNotFound if nothing.
func (s *Store) ClientState(ctx context.Context, clientID string) (backend.ClientState, error) {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	st := backend.ClientState{ClientID: clientID}
	var d struct {
		State   any           `bson:"state"`
		Node    string        `bson:"node"`
		Online  bson.RawValue `bson:"online_at"`
		Offline bson.RawValue `bson:"offline_at"`
	}
	err := s.clientCol.FindOne(ctx, bson.D{{Key: "clientid", Value: clientID}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return st, fmt.Errorf("mongostore: client state of %q: %w", clientID, hook.ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("mongostore: client state of %q: %w", clientID, err)
	}
	st.Online = toInt64(d.State) == 1
	st.Node = d.Node
	st.OnlineAt, st.OfflineAt = toTime(d.Online), toTime(d.Offline)
	return st, nil
}

// toTime reads a time field: a BSON date, or Unix seconds as EMQX writes them.
func toTime(v bson.RawValue) time.Time {
	switch v.Type {
	case bson.TypeDateTime:
		return v.Time().UTC()
	case bson.TypeInt32:
		return time.Unix(int64(v.Int32()), 0).UTC()
	case bson.TypeInt64:
		return time.Unix(v.Int64(), 0).UTC()
	case bson.TypeDouble:
		return time.UnixMilli(int64(v.Double() * 1000)).UTC()
	case bson.TypeTimestamp:
		t, _ := v.Timestamp()
		return time.Unix(int64(t), 0).UTC()
	}
	return time.Time{}
}

// storedMsg is a document of mqtt_msg or mqtt_retain as read.
type storedMsg struct {
	ID      bson.RawValue `bson:"_id"`
	Topic   string        `bson:"topic"`
	MsgID   string        `bson:"msgid"`
	Sender  string        `bson:"sender"`
	Node    string        `bson:"node"`
	QoS     any           `bson:"qos"`
	Retain  any           `bson:"retain"`
	Payload bson.RawValue `bson:"payload"`
	Arrived bson.RawValue `bson:"arrived"`
}

func (d *storedMsg) message() (*hook.Message, error) {
	p, err := payloadBytes(d.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload of %s: %w", d.MsgID, err)
	}
	m := &hook.Message{ID: d.MsgID, From: d.Sender, Node: d.Node, Topic: d.Topic, QoS: byte(min(max(toInt64(d.QoS), 0), 2)),
		Payload: p, Timestamp: toTime(d.Arrived)}
	switch r := d.Retain.(type) {
	case bool:
		m.Retain = r
	default:
		m.Retain = toInt64(r) != 0
	}
	return m, nil
}

// retainLookup is on_retain_lookup.
type retainLookup struct{ s *Store }

func (l *retainLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	ev, ok := e.(*hook.SubscribedEvent)
	if !ok || ev == nil {
		return hook.Result{}, fmt.Errorf("mongostore: on_retain_lookup cannot answer %T: %w", e, hook.ErrInvalidEvent)
	}
	msgs, err := l.s.Retained(ctx, ev.Topic)
	if err != nil {
		return hook.Result{}, err
	}
	return hook.Result{Retained: msgs}, nil
}

// Retained returns the retained messages (mqtt_retain) whose topic the filter matches
// (without its shared-subscription prefix), in topic order.
func (s *Store) Retained(ctx context.Context, filter string) ([]*hook.Message, error) {
	filter = topic.Unshared(filter)
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("mongostore: retained: %w", err)
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	cur, err := s.retain.Find(ctx, bson.D{{Key: "topic", Value: topicCond(filter)}}, options.Find().SetSort(bson.D{{Key: "topic", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("mongostore: retained messages for %q: %w", filter, err)
	}
	defer cur.Close(ctx)
	var msgs []*hook.Message
	for cur.Next(ctx) {
		var d storedMsg
		if err := cur.Decode(&d); err != nil {
			return nil, fmt.Errorf("mongostore: retained messages for %q: %w", filter, err)
		}
		if !topic.Match(filter, d.Topic) {
			continue
		}
		m, err := d.message()
		if err != nil {
			return nil, fmt.Errorf("mongostore: retained messages for %q: %w", filter, err)
		}
		m.Retain = true
		msgs = append(msgs, m)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("mongostore: retained messages for %q: %w", filter, err)
	}
	return msgs, nil
}

// fetchBatch is the batch size of fetch and lookup cursors: large, so that a fetch is
// usually one round trip and the server (FerretDB on SQLite holds a connection per open
// cursor) keeps no cursor open between them.
const fetchBatch = 10000

// fetchLookup is on_message_fetch.
type fetchLookup struct {
	s    *Store
	opts hook.OfflineOpts
}

func (l *fetchLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	ev, ok := e.(*hook.SubscribedEvent)
	if !ok || ev == nil {
		return hook.Result{}, fmt.Errorf("mongostore: on_message_fetch cannot answer %T: %w", e, hook.ErrInvalidEvent)
	}
	msgs, err := l.s.Fetch(ctx, ev.ClientID, ev.Topic, l.opts)
	if err != nil {
		return hook.Result{}, err
	}
	return hook.Result{Offline: msgs}, nil
}

// Fetch returns the stored messages (mqtt_msg) on topics the filter matches (without its
// shared-subscription prefix) that the client has not acknowledged: with an _id above its
// position for their topic in mqtt_acked (mongo_id), oldest first, at most
// opts.MaxReturnedCount of them, none older than opts.TimeRange, none expired.
func (s *Store) Fetch(ctx context.Context, clientID, filter string, opts hook.OfflineOpts) ([]*hook.Message, error) {
	filter = topic.Unshared(filter)
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("mongostore: fetch: %w", err)
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	fail := func(err error) ([]*hook.Message, error) {
		return nil, fmt.Errorf("mongostore: fetch %q for %q: %w", filter, clientID, err)
	}
	// The client's positions on the topics the filter matches.
	cur, err := s.acked.Find(ctx, bson.D{{Key: "clientid", Value: clientID}, {Key: "topic", Value: topicCond(filter)}})
	if err != nil {
		return fail(err)
	}
	var acks []struct {
		Topic string `bson:"topic"`
		ID    any    `bson:"mongo_id"`
	}
	if err := cur.All(ctx, &acks); err != nil {
		return fail(err)
	}
	// The greatest position per topic (an EMQX document and the store's may both be there).
	pos := map[string]int64{}
	var ackedTopics bson.A
	for _, a := range acks {
		if !topic.Match(filter, a.Topic) {
			continue
		}
		p, seen := pos[a.Topic]
		if !seen {
			ackedTopics = append(ackedTopics, a.Topic)
		}
		if id := toInt64(a.ID); !seen || id > p {
			pos[a.Topic] = id
		}
	}
	var conds bson.A
	for _, t := range ackedTopics {
		conds = append(conds, bson.D{{Key: "topic", Value: t}, {Key: "_id", Value: bson.D{{Key: "$gt", Value: pos[t.(string)]}}}})
	}
	var and bson.A
	switch {
	case len(conds) == 0:
		and = append(and, bson.D{{Key: "topic", Value: topicCond(filter)}})
	case !wildcard(filter):
		and = append(and, conds[0])
	default:
		conds = append(conds, bson.D{{Key: "$and", Value: bson.A{
			bson.D{{Key: "topic", Value: topicCond(filter)}},
			bson.D{{Key: "topic", Value: bson.D{{Key: "$nin", Value: ackedTopics}}}},
		}}})
		and = append(and, bson.D{{Key: "$or", Value: conds}})
	}
	now := time.Now()
	if opts.TimeRange > 0 {
		cutoff := now.Add(-opts.TimeRange)
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "arrived", Value: bson.D{{Key: "$gte", Value: bson.NewDateTimeFromTime(cutoff)}}}},
			bson.D{{Key: "arrived", Value: bson.D{{Key: "$gte", Value: cutoff.Unix()}}}}, // EMQX: Unix seconds
		}}})
	}
	if s.expiring.Load() {
		and = append(and, bson.D{{Key: "$or", Value: bson.A{
			bson.D{{Key: "expire_at", Value: nil}},
			bson.D{{Key: "expire_at", Value: bson.D{{Key: "$gt", Value: bson.NewDateTimeFromTime(now)}}}},
		}}})
	}
	q := bson.D{{Key: "$and", Value: and}}
	fo := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(fetchBatch)
	if opts.MaxReturnedCount > 0 {
		fo.SetLimit(int64(opts.MaxReturnedCount))
	}
	mc, err := s.msg.Find(ctx, q, fo)
	if err != nil {
		return fail(err)
	}
	defer mc.Close(ctx)
	var msgs []*hook.Message
	for mc.Next(ctx) {
		var d storedMsg
		if err := mc.Decode(&d); err != nil {
			return fail(err)
		}
		if !topic.Match(filter, d.Topic) {
			continue
		}
		m, err := d.message()
		if err != nil {
			return fail(err)
		}
		msgs = append(msgs, m)
	}
	if err := mc.Err(); err != nil {
		return fail(err)
	}
	return msgs, nil
}
