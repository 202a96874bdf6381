package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// Attribute names beyond the spec's (msgid, topic, qos, sender, payload, retain, arrived;
// clientid, connect_state, node, online_at, offline_at; MsgId).
const (
	attrTS       = "ts"        // arrival in Unix milliseconds (arrived is in seconds, as EMQX)
	attrExpire   = "expire_at" // Unix seconds: DynamoDB's TTL attribute
	attrExpireMS = "expire_ms" // Unix milliseconds: what fetches filter on
	attrUsername = "username"
)

type opKind uint8

const (
	opStore opKind = iota + 1
	opRetain
	opRetainDelete
	opConnected
	opDisconnected
	opQueueAck
	opAckedDelete
)

// op is one queued write.
type op struct {
	kind   opKind
	key    string // the writer's ordering key: the topic for messages and acks, else the client
	client string
	node   string
	at     time.Time
	msg    *hook.Message
	filter string        // opAckedDelete
	ttl    time.Duration // opStore, opRetain
}

func (o op) size() int {
	n := 64 + len(o.key) + len(o.client) + len(o.node) + len(o.filter)
	if o.msg != nil {
		n += len(o.msg.ID) + len(o.msg.Topic) + len(o.msg.From) + len(o.msg.Username) + len(o.msg.Payload)
	}
	return n
}

func (s *Store) enqueue(ctx context.Context, o op) error {
	if err := s.w.EnqueueContext(ctx, o); err != nil {
		return fmt.Errorf("dynamostore: %w", err)
	}
	return nil
}

// request is one item of a BatchWriteItem: the last write of the batch to its key, and the
// batch items it carries.
type request struct {
	table string
	wr    types.WriteRequest
	items []int
	index string // the s.indexed key to remember once written ("" if none)
}

// flush writes one batch (at most 25 ops, all with keys of one shard):
//
//  1. every op becomes put or delete requests; a key written twice in the batch keeps its
//     last write (no repeated key in a BatchWriteItem), items over 400 KB are refused;
//  2. BatchWriteItem in requests of at most 25; UnprocessedItems, and the later items of the
//     same ordering key, are marked for retry;
//  3. the string-set updates of mqtt_topic_msg_map (ADD on store, DELETE on queue ack,
//     netted per message) and the client updates of on_client_disconnected run as UpdateItem
//     calls, Config.UpdateConcurrency at a time, for the items not marked.
func (s *Store) flush(ctx context.Context, batch []op, res *backend.BatchResult) error {
	var order []string
	reqs := make(map[string]*request)
	put := func(k string, r *request) {
		if old, ok := reqs[k]; ok {
			r.items = append(old.items, r.items...)
		} else {
			order = append(order, k)
		}
		reqs[k] = r
	}
	refused := make(map[int]bool)
	type setOp struct {
		add bool
		i   int
	}
	sets := make(map[string]map[string]setOp) // topic -> msgid -> last op
	setFor := func(topic string) map[string]setOp {
		m := sets[topic]
		if m == nil {
			m = make(map[string]setOp)
			sets[topic] = m
		}
		return m
	}
	type clientState struct {
		put             bool
		items           []int
		node            string
		online, offline time.Time
		state           int
	}
	clients := make(map[string]*clientState)
	var clientOrder []string

	for i, o := range batch {
		switch o.kind {
		case opStore, opRetain:
			item := messageItem(o.msg, o.ttl)
			table := s.t.msg
			if o.kind == opRetain {
				table = s.t.retain
			}
			if n := itemSize(item); n > MaxItemSize {
				err := fmt.Errorf("dynamostore: message %s on %q: item of %d bytes over DynamoDB's limit of %d", o.msg.ID, o.msg.Topic, n, MaxItemSize)
				res.Fail(i, err)
				refused[i] = true
				continue
			}
			k := table + "\x00" + keyValue(table, item)
			put(k, &request{table: table, wr: types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}, items: []int{i}})
			kindBucket := "m"
			if o.kind == opRetain {
				kindBucket = "r"
			} else {
				setFor(o.msg.Topic)[o.msg.ID] = setOp{add: true, i: i}
			}
			for _, ix := range indexEntries(kindBucket, o.msg.Topic) {
				ik := ix[0] + "\x00" + ix[1]
				if _, ok := s.indexed.Load(ik); ok {
					continue
				}
				put(s.t.index+"\x00"+ik, &request{table: s.t.index, index: ik, items: []int{i}, wr: types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
					"bucket": str(ix[0]), "topic": str(ix[1]),
				}}}})
			}
		case opRetainDelete:
			key := map[string]types.AttributeValue{"topic": str(o.msg.Topic)}
			put(s.t.retain+"\x00"+o.msg.Topic, &request{table: s.t.retain, wr: types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key}}, items: []int{i}})
		case opQueueAck:
			m := o.msg
			put(s.t.msg+"\x00"+m.ID, &request{table: s.t.msg, items: []int{i}, wr: types.WriteRequest{DeleteRequest: &types.DeleteRequest{
				Key: map[string]types.AttributeValue{"msgid": str(m.ID)}}}})
			put(s.t.acked+"\x00"+m.Topic+"\x00"+o.client, &request{table: s.t.acked, items: []int{i}, wr: types.WriteRequest{PutRequest: &types.PutRequest{
				Item: map[string]types.AttributeValue{"topic": str(m.Topic), "clientid": str(o.client), "msgid": str(m.ID)}}}})
			setFor(m.Topic)[m.ID] = setOp{add: false, i: i}
		case opAckedDelete:
			topics := []string{o.filter}
			if isWildcard(o.filter) {
				var err error
				if topics, err = s.matchingTopics(ctx, "m", o.filter); err != nil {
					return err
				}
			}
			for _, tp := range topics {
				put(s.t.acked+"\x00"+tp+"\x00"+o.client, &request{table: s.t.acked, items: []int{i}, wr: types.WriteRequest{DeleteRequest: &types.DeleteRequest{
					Key: map[string]types.AttributeValue{"topic": str(tp), "clientid": str(o.client)}}}})
			}
		case opConnected, opDisconnected:
			c := clients[o.client]
			if c == nil {
				c = &clientState{}
				clients[o.client] = c
				clientOrder = append(clientOrder, o.client)
			}
			c.items = append(c.items, i)
			c.node = o.node
			if o.kind == opConnected {
				c.put, c.state, c.online, c.offline = true, 1, o.at, time.Time{}
			} else {
				c.state, c.offline = 0, o.at
			}
		}
	}
	type update struct {
		in    *dynamodb.UpdateItemInput
		items []int
	}
	var updates []update
	for _, id := range clientOrder {
		c := clients[id]
		if c.put {
			item := map[string]types.AttributeValue{
				"clientid": str(id), "connect_state": num(int64(c.state)), "node": str(c.node),
				"online_at": num(unixSec(c.online)), "offline_at": num(unixSec(c.offline)),
				"online_at_ms": num(unixMS(c.online)), "offline_at_ms": num(unixMS(c.offline)),
			}
			put(s.t.client+"\x00"+id, &request{table: s.t.client, items: c.items, wr: types.WriteRequest{PutRequest: &types.PutRequest{Item: item}}})
			continue
		}
		updates = append(updates, update{items: c.items, in: &dynamodb.UpdateItemInput{
			TableName:                aws.String(s.t.client),
			Key:                      map[string]types.AttributeValue{"clientid": str(id)},
			UpdateExpression:         aws.String("SET connect_state = :s, #n = :n, offline_at = :o, offline_at_ms = :oms"),
			ExpressionAttributeNames: map[string]string{"#n": "node"},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":s": num(0), ":n": str(c.node), ":o": num(unixSec(c.offline)), ":oms": num(unixMS(c.offline)),
			},
		}})
	}

	// 2. BatchWriteItem, 25 requests at most each.
	retry := make(map[int]error)
	for start := 0; start < len(order); start += 25 {
		chunk := order[start:min(start+25, len(order))]
		in := &dynamodb.BatchWriteItemInput{RequestItems: make(map[string][]types.WriteRequest)}
		for _, k := range chunk {
			r := reqs[k]
			in.RequestItems[r.table] = append(in.RequestItems[r.table], r.wr)
		}
		out, err := s.db.BatchWriteItem(ctx, in, noSDKRetry)
		if err != nil {
			if len(retry) > 0 || start > 0 {
				// Earlier requests went through: the writes are idempotent, so the whole batch
				// is written again (marks for the unprocessed ones stand).
				for i := range batch {
					if !refused[i] {
						res.Retry(i, err)
					}
				}
				return nil
			}
			return s.redact(err)
		}
		unprocessed := make(map[string]bool)
		for table, wrs := range out.UnprocessedItems {
			for _, wr := range wrs {
				var attrs map[string]types.AttributeValue
				if wr.PutRequest != nil {
					attrs = wr.PutRequest.Item
				} else if wr.DeleteRequest != nil {
					attrs = wr.DeleteRequest.Key
				}
				unprocessed[table+"\x00"+keyValue(table, attrs)] = true
			}
		}
		for _, k := range chunk {
			r := reqs[k]
			if unprocessed[k] {
				for _, i := range r.items {
					retry[i] = errUnprocessed
				}
				continue
			}
			if r.index != "" {
				s.indexed.Store(r.index, struct{}{})
			}
		}
	}
	// The items after a retried one with the same ordering key are written again after it.
	if len(retry) > 0 {
		first := make(map[string]int)
		for i := range batch {
			if _, ok := retry[i]; ok {
				if _, seen := first[batch[i].key]; !seen {
					first[batch[i].key] = i
				}
			}
		}
		for i := range batch {
			if f, ok := first[batch[i].key]; ok && i > f && !refused[i] {
				if _, ok := retry[i]; !ok {
					retry[i] = errUnprocessed
				}
			}
		}
		for i, err := range retry {
			res.Retry(i, err)
		}
	}

	// 3. String sets and client updates.
	for topic, ids := range sets {
		var add, del []string
		var addItems, delItems []int
		for id, so := range ids {
			if _, r := retry[so.i]; r || refused[so.i] {
				continue
			}
			if so.add {
				add, addItems = append(add, id), append(addItems, so.i)
			} else {
				del, delItems = append(del, id), append(delItems, so.i)
			}
		}
		key := map[string]types.AttributeValue{"topic": str(topic)}
		if len(add) > 0 {
			updates = append(updates, update{items: addItems, in: &dynamodb.UpdateItemInput{
				TableName: aws.String(s.t.topicMsg), Key: key,
				UpdateExpression:          aws.String("ADD MsgId :ids"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":ids": &types.AttributeValueMemberSS{Value: add}},
			}})
		}
		if len(del) > 0 {
			updates = append(updates, update{items: delItems, in: &dynamodb.UpdateItemInput{
				TableName: aws.String(s.t.topicMsg), Key: key,
				UpdateExpression:          aws.String("DELETE MsgId :ids"),
				ExpressionAttributeValues: map[string]types.AttributeValue{":ids": &types.AttributeValueMemberSS{Value: del}},
			}})
		}
	}
	if len(updates) == 0 {
		return nil
	}
	sem := make(chan struct{}, s.cfg.UpdateConcurrency)
	var wg sync.WaitGroup
	for _, u := range updates {
		skip := false
		for _, i := range u.items {
			if _, r := retry[i]; r {
				skip = true
			}
		}
		if skip {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			_, err := s.db.UpdateItem(ctx, u.in, noSDKRetry)
			if err == nil {
				return
			}
			err = s.redact(err)
			f := classify(err)
			for _, i := range u.items {
				if f == backend.FailRetry || f == backend.FailUnknown {
					res.Retry(i, err)
				} else {
					res.Fail(i, err)
				}
			}
		}()
	}
	wg.Wait()
	return nil
}

// errUnprocessed marks the items DynamoDB returned in UnprocessedItems.
var errUnprocessed = errors.New("dynamostore: BatchWriteItem left the item unprocessed (throttled)")

// noSDKRetry leaves retries of writes to the backend.Writer, which counts them and keeps the
// order per key.
func noSDKRetry(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }

// classify tells the writer what an error of a flush means.
func classify(err error) backend.Failure {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
			"InternalServerError", "InternalFailure", "ServiceUnavailable", "LimitExceededException",
			"TransactionConflictException", "ThrottledException":
			return backend.FailRetry
		case "ResourceNotFoundException", "AccessDeniedException", "UnrecognizedClientException",
			"MissingAuthenticationTokenException", "InvalidSignatureException", "IncompleteSignature":
			return backend.FailBatch
		case "ValidationException", "ItemCollectionSizeLimitExceededException", "SerializationException":
			return backend.FailItem
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return backend.FailRetry
	}
	// No answer, or half of one: the request may have been written. Whatever the transport's
	// error ("http: server closed idle connection" is none of IsTransient's), a failed send
	// (RequestSendError: refused, reset, closed, timed out) or a cut answer
	// (DeserializationError) is an outage, never a bad item.
	var se *smithyhttp.RequestSendError
	var de *smithy.DeserializationError
	if errors.As(err, &se) || errors.As(err, &de) {
		return backend.FailUnknown
	}
	if backend.IsTransient(err) || errors.Is(err, context.Canceled) {
		return backend.FailUnknown // maybe written: idempotent writes are retried
	}
	var oe *smithy.OperationError
	if errors.As(err, &oe) && re == nil && ae == nil {
		return backend.FailUnknown // no answer from the server (connection errors)
	}
	return backend.FailItem
}

// messageItem is a message as mqtt_msg and mqtt_retain hold it: the spec's attributes (qos,
// sender, payload, retain, arrived in seconds) plus ts in milliseconds and, with a TTL,
// expire_at (seconds, DynamoDB's TTL) and expire_ms. A payload that is valid UTF-8 is a
// string, as EMQX writes it; any other is binary; an empty one is left out.
func messageItem(m *hook.Message, ttl time.Duration) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"msgid":   str(m.ID),
		"topic":   str(m.Topic),
		"qos":     num(int64(m.QoS)),
		"retain":  num(b2i(m.Retain)),
		"arrived": num(unixSec(m.Timestamp)),
		attrTS:    num(unixMS(m.Timestamp)),
	}
	if m.From != "" {
		item["sender"] = str(m.From)
	}
	if m.Username != "" {
		item[attrUsername] = str(m.Username)
	}
	if len(m.Payload) > 0 {
		if utf8.Valid(m.Payload) {
			item["payload"] = str(string(m.Payload))
		} else {
			item["payload"] = &types.AttributeValueMemberB{Value: m.Payload}
		}
	}
	if ttl > 0 {
		base := m.Timestamp
		if base.IsZero() {
			base = time.Now()
		}
		exp := base.Add(ttl)
		item[attrExpire] = num(int64(math.Ceil(float64(exp.UnixMilli()) / 1000)))
		item[attrExpireMS] = num(exp.UnixMilli())
	}
	return item
}

// itemSize is DynamoDB's size of an item: names and values (numbers counted as text).
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberB:
			n += len(v.Value)
		case *types.AttributeValueMemberN:
			n += len(v.Value)
		default:
			n += 16
		}
	}
	return n
}

// keyValue is the key of an item of table as text, for dedupe and UnprocessedItems.
func keyValue(table string, attrs map[string]types.AttributeValue) string {
	get := func(a string) string {
		if v, ok := attrs[a].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	switch {
	case strings.HasSuffix(table, TableTopicIndex):
		return get("bucket") + "\x00" + get("topic")
	case strings.HasSuffix(table, TableAcked):
		return get("topic") + "\x00" + get("clientid")
	case strings.HasSuffix(table, TableSub):
		return get("clientid") + "\x00" + get("topic")
	case strings.HasSuffix(table, TableClient):
		return get("clientid")
	case strings.HasSuffix(table, TableMsg):
		return get("msgid")
	}
	return get("topic") // mqtt_retain, mqtt_topic_msg_map
}

// indexEntries are the mqtt_topic_index items that let a wildcard filter find topic:
// (kind+"/"+first level, topic) and (kind, "L"+first level); kind is "m" (messages) or "r"
// (retained).
func indexEntries(kind, topic string) [2][2]string {
	first, _, _ := strings.Cut(topic, "/")
	return [2][2]string{{kind + "/" + first, topic}, {kind, "L" + first}}
}

func str(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func num(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}

func b2i(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func unixSec(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func unixMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
