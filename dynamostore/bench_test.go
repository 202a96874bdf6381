package dynamostore_test

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mqttstore/mqttstore/dynamostore"
	"github.com/mqttstore/mqttstore/hook"
)

// The benchmarks write to the test dynalite, on a fresh table prefix per run:
//
//	go test -run '^$' -bench . -benchmem -benchtime 4000x ./dynamostore/

const benchPayload = 64 // bytes per message

// benchMessages returns n QoS 1 messages with fresh IDs on 100 topics.
func benchMessages(n int) []hook.PublishEvent {
	ids := hook.NewIDGenerator("bench")
	payload := []byte(strings.Repeat("x", benchPayload))
	now := time.Now()
	evs := make([]hook.PublishEvent, n)
	for i := range evs {
		evs[i].Message = &hook.Message{ID: ids.Next(), From: "client-1", Topic: fmt.Sprintf("bench/%d/data", i%100),
			QoS: 1, Payload: payload, Timestamp: now}
	}
	return evs
}

// BenchmarkPublish measures persisted messages per second through on_message_publish, from
// Write to the end of a Flush, against a raw SDK baseline making the same calls: messages
// split over 4 workers by topic (the store's 4 shards), each sending BatchWriteItem of 25
// mqtt_msg puts, then one UpdateItem ADD per topic of the batch to mqtt_topic_msg_map, 16
// at a time.
func BenchmarkPublish(b *testing.B) {
	b.Run("store", func(b *testing.B) {
		cfg := testConfig(b)
		cfg.Options.Logger = slog.New(slog.DiscardHandler)
		storePublish(b, cfg)
	})
	b.Run("raw-sdk", func(b *testing.B) { rawPublish(b, true) })
	// The same without the string-set updates: what the UpdateItem calls cost.
	b.Run("raw-sdk-batch-only", func(b *testing.B) { rawPublish(b, false) })
}

// benchPublisher opens a store with cfg (closed when b ends) and returns its
// on_message_publish action and b.N messages to write.
func benchPublisher(b *testing.B, cfg dynamostore.Config) (*dynamostore.Store, hook.WriteAction, []hook.PublishEvent) {
	s := open(b, cfg)
	b.Cleanup(func() { s.Close(context.Background()) })
	a, err := s.Prepare(&hook.Rule{Name: "p", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		b.Fatal(err)
	}
	return s, a.(hook.WriteAction), benchMessages(b.N)
}

// storePublish writes b.N messages through on_message_publish of a store opened with cfg
// and reports persisted msg/s, from the first Write to the end of the Flush.
func storePublish(b *testing.B, cfg dynamostore.Config) {
	s, w, evs := benchPublisher(b, cfg)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range evs {
		if err := w.Write(ctx, &evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	b.StopTimer()
	if st := s.Stats(); st.Failed != 0 || st.Success != uint64(b.N) {
		b.Fatalf("stats %+v", st)
	}
}

// rawPublish is the raw SDK baseline of BenchmarkPublish; sets: with the UpdateItem ADD calls.
func rawPublish(b *testing.B, withSets bool) {
	{
		cfg := testConfig(b)
		s := open(b, cfg) // the tables
		s.Close(context.Background())
		db := s.Client()
		msgTable, mapTable := s.TableName(dynamostore.TableMsg), s.TableName(dynamostore.TableTopicMsg)
		evs := benchMessages(b.N)
		ctx := context.Background()
		const workers = 4
		seed := maphash.MakeSeed()
		var parts [workers][]*hook.Message
		b.ResetTimer()
		start := time.Now()
		for i := range evs {
			m := evs[i].Message
			k := maphash.String(seed, m.Topic) % workers
			parts[k] = append(parts[k], m)
		}
		var wg sync.WaitGroup
		for _, part := range parts {
			wg.Go(func() {
				for len(part) > 0 {
					n := min(25, len(part))
					batch := part[:n]
					part = part[n:]
					wrs := make([]types.WriteRequest, 0, n)
					sets := map[string][]string{}
					for _, m := range batch {
						wrs = append(wrs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
							"msgid": &types.AttributeValueMemberS{Value: m.ID}, "topic": &types.AttributeValueMemberS{Value: m.Topic},
							"qos": &types.AttributeValueMemberN{Value: "1"}, "sender": &types.AttributeValueMemberS{Value: m.From},
							"payload": &types.AttributeValueMemberS{Value: string(m.Payload)}, "retain": &types.AttributeValueMemberN{Value: "0"},
							"arrived": &types.AttributeValueMemberN{Value: fmt.Sprint(m.Timestamp.Unix())},
							"ts":      &types.AttributeValueMemberN{Value: fmt.Sprint(m.Timestamp.UnixMilli())},
						}}})
						sets[m.Topic] = append(sets[m.Topic], m.ID)
					}
					req := map[string][]types.WriteRequest{msgTable: wrs}
					for len(req) > 0 {
						out, err := db.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: req})
						if err != nil {
							b.Error(err)
							return
						}
						req = out.UnprocessedItems
					}
					if !withSets {
						continue
					}
					sem := make(chan struct{}, 16)
					var uw sync.WaitGroup
					for tp, ids := range sets {
						sem <- struct{}{}
						uw.Go(func() {
							defer func() { <-sem }()
							if _, err := db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
								TableName: aws.String(mapTable), Key: map[string]types.AttributeValue{"topic": &types.AttributeValueMemberS{Value: tp}},
								UpdateExpression:          aws.String("ADD MsgId :ids"),
								ExpressionAttributeValues: map[string]types.AttributeValue{":ids": &types.AttributeValueMemberSS{Value: ids}},
							}); err != nil {
								b.Error(err)
							}
						})
					}
					uw.Wait()
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msg/s")
	}
}

// callCounter is an http.RoundTripper that counts the calls of each DynamoDB operation and
// the time spent in them.
type callCounter struct {
	base http.RoundTripper
	n    [2]atomic.Int64 // BatchWriteItem, UpdateItem
	ns   [2]atomic.Int64
}

func (c *callCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	op := -1
	switch target := req.Header.Get("X-Amz-Target"); {
	case strings.HasSuffix(target, ".BatchWriteItem"):
		op = 0
	case strings.HasSuffix(target, ".UpdateItem"):
		op = 1
	}
	start := time.Now()
	resp, err := c.base.RoundTrip(req)
	if op >= 0 {
		c.n[op].Add(1)
		c.ns[op].Add(int64(time.Since(start)))
	}
	return resp, err
}

// BenchmarkUpdateConcurrency measures what the mqtt_topic_msg_map string sets cost as
// Config.UpdateConcurrency bounds them (default 16): persisted msg/s through
// on_message_publish (4000 messages, 100 topics, as BenchmarkPublish), the UpdateItem calls
// per message, and the mean round trip of an UpdateItem and of a BatchWriteItem:
//
//	go test -run '^$' -bench UpdateConcurrency -benchtime 4000x ./dynamostore/
func BenchmarkUpdateConcurrency(b *testing.B) {
	for _, c := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprint("c=", c), func(b *testing.B) {
			cfg := testConfig(b)
			cfg.Options.Logger = slog.New(slog.DiscardHandler)
			cfg.UpdateConcurrency = c
			calls := &callCounter{base: http.DefaultTransport.(*http.Transport).Clone()}
			cfg.HTTPClient = &http.Client{Transport: calls}
			storePublish(b, cfg)
			updates, batches := calls.n[1].Load(), calls.n[0].Load()
			b.ReportMetric(float64(updates)/float64(b.N), "updates/msg")
			if updates > 0 {
				b.ReportMetric(float64(calls.ns[1].Load())/float64(updates)/1e3, "µs/update")
			}
			if batches > 0 {
				b.ReportMetric(float64(calls.ns[0].Load())/float64(batches)/1e3, "µs/batchwrite")
			}
		})
	}
}

// BenchmarkEnqueue is the cost of a Write as the broker sees it (the queue has room).
func BenchmarkEnqueue(b *testing.B) {
	cfg := testConfig(b)
	cfg.Options.Logger = slog.New(slog.DiscardHandler)
	cfg.Options.QueueSize = b.N + 1
	s, w, evs := benchPublisher(b, cfg)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range evs {
		if err := w.Write(ctx, &evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	s.Flush(ctx)
}
