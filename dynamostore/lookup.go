package dynamostore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

func isWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

// matchingTopics returns the topics of kind ("m": stored messages, "r": retained) that filter
// matches, from mqtt_topic_index: one Query per first level (a filter whose first level is a
// wildcard reads the list of first levels first), narrowed by begins_with on the filter's
// literal prefix, then checked with topic.Match. No Scan.
func (s *Store) matchingTopics(ctx context.Context, kind, filter string) ([]string, error) {
	levels := strings.Split(filter, "/")
	var firsts []string
	if l := levels[0]; l != "+" && l != "#" {
		firsts = []string{l}
	} else {
		roots, err := s.queryIndex(ctx, kind, "")
		if err != nil {
			return nil, err
		}
		for _, r := range roots {
			if first := strings.TrimPrefix(r, "L"); !strings.HasPrefix(first, "$") {
				firsts = append(firsts, first)
			}
		}
	}
	prefix := ""
	for _, l := range levels {
		if l == "+" || l == "#" {
			break
		}
		if prefix != "" {
			prefix += "/"
		}
		prefix += l
	}
	var out []string
	for _, first := range firsts {
		p := prefix
		if !strings.HasPrefix(p, first) {
			p = first
		}
		topics, err := s.queryIndex(ctx, kind+"/"+first, p)
		if err != nil {
			return nil, err
		}
		for _, tp := range topics {
			if topic.Match(filter, tp) {
				out = append(out, tp)
			}
		}
	}
	return out, nil
}

// queryIndex lists the topics of one index bucket, those beginning with prefix when it is set.
func (s *Store) queryIndex(ctx context.Context, bucket, prefix string) ([]string, error) {
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.t.index),
		KeyConditionExpression:    aws.String("#b = :b"),
		ExpressionAttributeNames:  map[string]string{"#b": "bucket"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":b": str(bucket)},
		ConsistentRead:            aws.Bool(true),
	}
	if prefix != "" {
		in.KeyConditionExpression = aws.String("#b = :b AND begins_with(#t, :p)")
		in.ExpressionAttributeNames["#t"] = "topic"
		in.ExpressionAttributeValues[":p"] = str(prefix)
	}
	var out []string
	pages := dynamodb.NewQueryPaginator(s.db, in)
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: query %s: %w", s.t.index, s.redact(err))
		}
		for _, it := range page.Items {
			out = append(out, getS(it, "topic"))
		}
	}
	return out, nil
}

// fetchQueue returns the stored messages on the topics filter matches (mqtt_topic_msg_map,
// then mqtt_msg), not expired, within opts, oldest first.
func (s *Store) fetchQueue(ctx context.Context, filter string, opts hook.OfflineOpts) ([]*hook.Message, error) {
	topics := []string{filter}
	if isWildcard(filter) {
		var err error
		if topics, err = s.matchingTopics(ctx, "m", filter); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	var ids []string
	err := s.parallel(ctx, len(topics), func(ctx context.Context, i int) error {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(s.t.topicMsg), Key: map[string]types.AttributeValue{"topic": str(topics[i])},
			ConsistentRead: aws.Bool(true), ProjectionExpression: aws.String("MsgId"),
		})
		if err != nil {
			return fmt.Errorf("dynamostore: get %s %q: %w", s.t.topicMsg, topics[i], s.redact(err))
		}
		if ss, ok := out.Item["MsgId"].(*types.AttributeValueMemberSS); ok {
			mu.Lock()
			ids = append(ids, ss.Value...)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	items, err := s.batchGet(ctx, s.t.msg, "msgid", ids)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	var msgs []*hook.Message
	for _, it := range items {
		m, exp := decodeMessage(it)
		if !exp.IsZero() && !now.Before(exp) {
			continue
		}
		if opts.TimeRange > 0 && m.Timestamp.Before(now.Add(-opts.TimeRange)) {
			continue
		}
		if !topic.Match(filter, m.Topic) {
			continue
		}
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b *hook.Message) int { return strings.Compare(a.ID, b.ID) })
	if n := opts.MaxReturnedCount; n > 0 && len(msgs) > n {
		msgs = msgs[:n]
	}
	return msgs, nil
}

// retained returns the retained messages on the topics filter matches, by topic.
func (s *Store) retained(ctx context.Context, filter string) ([]*hook.Message, error) {
	var items []map[string]types.AttributeValue
	if isWildcard(filter) {
		topics, err := s.matchingTopics(ctx, "r", filter)
		if err != nil {
			return nil, err
		}
		if items, err = s.batchGet(ctx, s.t.retain, "topic", topics); err != nil {
			return nil, err
		}
	} else {
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
			TableName: aws.String(s.t.retain), Key: map[string]types.AttributeValue{"topic": str(filter)}, ConsistentRead: aws.Bool(true),
		})
		if err != nil {
			return nil, fmt.Errorf("dynamostore: get %s %q: %w", s.t.retain, filter, s.redact(err))
		}
		if out.Item != nil {
			items = append(items, out.Item)
		}
	}
	now := time.Now()
	var msgs []*hook.Message
	for _, it := range items {
		m, exp := decodeMessage(it)
		if !exp.IsZero() && !now.Before(exp) {
			continue
		}
		m.Retain = true
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b *hook.Message) int { return strings.Compare(a.Topic, b.Topic) })
	return msgs, nil
}

// batchGet reads the items of table whose key attribute (a lone HASH key) is one of keys, in
// BatchGetItem requests of 100, with UnprocessedKeys asked again after a short backoff.
func (s *Store) batchGet(ctx context.Context, table, attr string, keys []string) ([]map[string]types.AttributeValue, error) {
	var out []map[string]types.AttributeValue
	for start := 0; start < len(keys); start += 100 {
		ka := types.KeysAndAttributes{ConsistentRead: aws.Bool(true)}
		for _, k := range keys[start:min(start+100, len(keys))] {
			ka.Keys = append(ka.Keys, map[string]types.AttributeValue{attr: str(k)})
		}
		req := map[string]types.KeysAndAttributes{table: ka}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt > 0 {
				select {
				case <-time.After(time.Duration(min(attempt, 8)) * 20 * time.Millisecond):
				case <-ctx.Done():
					return nil, fmt.Errorf("dynamostore: batch get %s: %w", table, ctx.Err())
				}
			}
			res, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("dynamostore: batch get %s: %w", table, s.redact(err))
			}
			out = append(out, res.Responses[table]...)
			req = res.UnprocessedKeys
		}
	}
	return out, nil
}

// parallel runs f(0..n-1), Config.UpdateConcurrency at a time, and returns the first error.
func (s *Store) parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	if n == 1 {
		return f(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.cfg.UpdateConcurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// decodeMessage reads an item of mqtt_msg or mqtt_retain, and its expiry (zero: none).
func decodeMessage(it map[string]types.AttributeValue) (*hook.Message, time.Time) {
	m := &hook.Message{
		ID:       getS(it, "msgid"),
		Topic:    getS(it, "topic"),
		QoS:      byte(getN(it, "qos")),
		Retain:   getN(it, "retain") == 1,
		From:     getS(it, "sender"),
		Username: getS(it, attrUsername),
	}
	switch p := it["payload"].(type) {
	case *types.AttributeValueMemberS:
		m.Payload = []byte(p.Value)
	case *types.AttributeValueMemberB:
		m.Payload = p.Value
	}
	if ms := getN(it, attrTS); ms > 0 {
		m.Timestamp = time.UnixMilli(ms)
	} else if sec := getN(it, "arrived"); sec > 0 {
		m.Timestamp = time.Unix(sec, 0)
	}
	var exp time.Time
	if ms := getN(it, attrExpireMS); ms > 0 {
		exp = time.UnixMilli(ms)
	} else if sec := getN(it, attrExpire); sec > 0 {
		exp = time.Unix(sec, 0)
	}
	return m, exp
}

func getS(it map[string]types.AttributeValue, a string) string {
	if v, ok := it[a].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func getN(it map[string]types.AttributeValue, a string) int64 {
	if v, ok := it[a].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

// subscriptions returns the client's stored subscriptions (mqtt_sub), by topic.
func (s *Store) subscriptions(ctx context.Context, clientID string) ([]hook.Subscription, error) {
	pages := dynamodb.NewQueryPaginator(s.db, &dynamodb.QueryInput{
		TableName:                 aws.String(s.t.sub),
		KeyConditionExpression:    aws.String("#c = :c"),
		ExpressionAttributeNames:  map[string]string{"#c": "clientid"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": str(clientID)},
		ConsistentRead:            aws.Bool(true),
	})
	var subs []hook.Subscription
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("dynamostore: query %s: %w", s.t.sub, s.redact(err))
		}
		for _, it := range page.Items {
			subs = append(subs, hook.Subscription{Topic: getS(it, "topic"), QoS: byte(getN(it, "qos"))})
		}
	}
	return subs, nil
}

// ClientState implements backend.ClientStateReader (mqtt_client).
func (s *Store) ClientState(ctx context.Context, clientID string) (backend.ClientState, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.t.client), Key: map[string]types.AttributeValue{"clientid": str(clientID)}, ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return backend.ClientState{}, fmt.Errorf("dynamostore: client state %q: %w", clientID, s.redact(err))
	}
	if out.Item == nil {
		return backend.ClientState{}, fmt.Errorf("dynamostore: client %q: %w", clientID, hook.ErrNotFound)
	}
	at := func(ms, sec string) time.Time {
		if v := getN(out.Item, ms); v > 0 {
			return time.UnixMilli(v)
		}
		if v := getN(out.Item, sec); v > 0 {
			return time.Unix(v, 0)
		}
		return time.Time{}
	}
	return backend.ClientState{
		ClientID:  clientID,
		Online:    getN(out.Item, "connect_state") == 1,
		Node:      getS(out.Item, "node"),
		OnlineAt:  at("online_at_ms", "online_at"),
		OfflineAt: at("offline_at_ms", "offline_at"),
	}, nil
}

// AddSubscription implements backend.SubscriptionStore: a PutItem into mqtt_sub.
func (s *Store) AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error {
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.t.sub), Item: map[string]types.AttributeValue{
		"clientid": str(clientID), "topic": str(sub.Topic), "qos": num(int64(sub.QoS)),
	}})
	if err != nil {
		return fmt.Errorf("dynamostore: add subscription %q %q: %w", clientID, sub.Topic, s.redact(err))
	}
	return nil
}

// DeleteSubscription implements backend.SubscriptionStore: a DeleteItem from mqtt_sub.
func (s *Store) DeleteSubscription(ctx context.Context, clientID, tp string) error {
	_, err := s.db.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: aws.String(s.t.sub), Key: map[string]types.AttributeValue{
		"clientid": str(clientID), "topic": str(tp),
	}})
	if err != nil {
		return fmt.Errorf("dynamostore: delete subscription %q %q: %w", clientID, tp, s.redact(err))
	}
	return nil
}
