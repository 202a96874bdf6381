package main

// End-to-end tests of -store dynamo: the broker with the DynamoDB store's default rules
// (dynamostore/default.conf, from the backend registry) on the test's dynalite, under a table
// prefix of the test's own, driven by real MQTT clients; the results are checked in the
// spec's tables with the AWS SDK.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// dynamoTarget is dynalite with the DynamoDB rules and a table prefix of the test's (in the
// embedded target: its start and restart run the broker on that configuration file), and
// the test's own client.
type dynamoTarget struct {
	target
	db *dynamodb.Client
}

func newDynamoTarget(t *testing.T) *dynamoTarget {
	t.Helper()
	env := testenv.DynamoDB(t)
	conf := string(config{Store: "dynamo"}.defaultText())
	if conf == "" {
		t.Fatal("no default configuration for -store dynamo")
	}
	for _, r := range [][2]string{
		{"backend.dynamo.pool1.server = http://127.0.0.1:8000", "backend.dynamo.pool1.server = " + env.Endpoint},
		{"backend.dynamo.region = us-east-1", "backend.dynamo.region = " + env.Region},
	} {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("the default configuration has no %q", r[0])
		}
		conf = strings.Replace(conf, r[0], r[1], 1)
	}
	conf += "\nbackend.dynamo.pool1.table_prefix = " + env.TablePrefix + "\n"
	return &dynamoTarget{
		target: target{kind: "dynamo", prefix: env.TablePrefix, configFile: writeConfig(t, conf)},
		db:     env.Client(),
	}
}

func (tg *dynamoTarget) scan(t *testing.T, table string) []map[string]types.AttributeValue {
	t.Helper()
	var items []map[string]types.AttributeValue
	pages := dynamodb.NewScanPaginator(tg.db, &dynamodb.ScanInput{TableName: aws.String(tg.prefix + table), ConsistentRead: aws.Bool(true)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, page.Items...)
	}
	return items
}

func (tg *dynamoTarget) get(t *testing.T, table string, key map[string]types.AttributeValue) map[string]types.AttributeValue {
	t.Helper()
	out, err := tg.db.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: aws.String(tg.prefix + table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item
}

func attrS(it map[string]types.AttributeValue, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func attrN(it map[string]types.AttributeValue, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

// client returns the mqtt_client item of id (nil if none).
func (tg *dynamoTarget) client(t *testing.T, id string) map[string]types.AttributeValue {
	t.Helper()
	return tg.get(t, "mqtt_client", map[string]types.AttributeValue{"clientid": &types.AttributeValueMemberS{Value: id}})
}

// waitState waits until the client's connect_state is state ("1" online, "0" offline).
func (tg *dynamoTarget) waitState(t *testing.T, id, state string) {
	t.Helper()
	mqtttest.Eventually(t, id+" connect_state "+state, func() bool {
		return attrN(tg.client(t, id), "connect_state") == state
	})
}

// messages returns the payloads of the mqtt_msg items on topic, and the IDs of the topic's
// mqtt_topic_msg_map set.
func (tg *dynamoTarget) messages(t *testing.T, topic string) (payloads, set []string) {
	t.Helper()
	for _, it := range tg.scan(t, "mqtt_msg") {
		if attrS(it, "topic") == topic {
			payloads = append(payloads, attrS(it, "payload"))
		}
	}
	slices.Sort(payloads)
	it := tg.get(t, "mqtt_topic_msg_map", map[string]types.AttributeValue{"topic": &types.AttributeValueMemberS{Value: topic}})
	if ss, ok := it["MsgId"].(*types.AttributeValueMemberSS); ok {
		set = ss.Value
	}
	return payloads, set
}

func TestDynamoClientState(t *testing.T) {
	t.Parallel()
	tg := newDynamoTarget(t)
	b := tg.start(t)
	c := mqtttest.Connect(t, b.addr, "dev-1", true)
	tg.waitState(t, "dev-1", "1")
	it := tg.client(t, "dev-1")
	if attrS(it, "node") != "node1" || attrN(it, "online_at") == "0" || attrN(it, "online_at") == "" || attrN(it, "offline_at") != "0" {
		t.Errorf("online: %v; want node node1, online_at set, offline_at 0", it)
	}
	c.Disconnect(100)
	tg.waitState(t, "dev-1", "0")
	if it := tg.client(t, "dev-1"); attrN(it, "online_at") == "0" || attrN(it, "offline_at") == "0" || attrN(it, "offline_at") == "" {
		t.Errorf("offline: %v; want online_at and offline_at set", it)
	}
	mqtttest.Connect(t, b.addr, "dev-1", true)
	tg.waitState(t, "dev-1", "1")
}

// TestDynamoQueue: the spec's DynamoDB rules are one-to-one queues. Two workers compete for
// the jobs of queue/jobs: each stored job goes to exactly one of them (the one that fetches
// and acknowledges it first), and is then gone from mqtt_msg and from the topic's set.
func TestDynamoQueue(t *testing.T) {
	t.Parallel()
	tg := newDynamoTarget(t)
	b := tg.start(t)
	pub := mqtttest.Connect(t, b.addr, "pub-q", true)
	publish := func(jobs ...string) {
		t.Helper()
		for _, j := range jobs {
			pub.MustPublish(t, "queue/jobs", 1, false, j)
		}
		pub.Settle(t)
		b.flush(t)
	}
	first, second := []string{"j0", "j1", "j2"}, []string{"j3", "j4", "j5"}

	publish(first...)
	if got, set := tg.messages(t, "queue/jobs"); !slices.Equal(got, first) || len(set) != 3 {
		t.Errorf("stored before any worker: mqtt_msg %q, set %v; want %q and their 3 IDs", got, set, first)
	}
	w1 := mqtttest.Connect(t, b.addr, "worker-1", true)
	w1.MustSubscribe(t, "queue/jobs", 1)
	if got := payloads(w1.Barrier(t, "queue/jobs")); !slices.Equal(got, first) {
		t.Errorf("worker-1: received %q, want %q", got, first)
	}
	b.flush(t) // worker-1's acknowledgements
	w1.Disconnect(100)
	tg.waitState(t, "worker-1", "0")

	publish(second...)
	w2 := mqtttest.Connect(t, b.addr, "worker-2", true)
	w2.MustSubscribe(t, "queue/jobs", 1)
	if got := payloads(w2.Barrier(t, "queue/jobs")); !slices.Equal(got, second) {
		t.Errorf("worker-2: received %q, want %q (not worker-1's jobs)", got, second)
	}
	// worker-2's acknowledgements may still be on their way to the broker (paho acks after
	// its handler): wait until they are written.
	mqtttest.Eventually(t, "worker-2's jobs to be taken", func() bool {
		b.flush(t)
		got, set := tg.messages(t, "queue/jobs")
		return len(got) == 0 && len(set) == 0
	})

	// Everything is taken: neither worker gets a job again.
	w1 = mqtttest.Connect(t, b.addr, "worker-1", true)
	w1.MustSubscribe(t, "queue/jobs", 1)
	if got := w1.Barrier(t, "queue/jobs"); len(got) != 0 {
		t.Errorf("worker-1 again: received %v, want nothing", got)
	}
	w3 := mqtttest.Connect(t, b.addr, "worker-3", true)
	w3.MustSubscribe(t, "queue/#", 1)
	if got := w3.Barrier(t, "queue/jobs"); len(got) != 0 {
		t.Errorf("worker-3 on queue/#: received %v, want nothing", got)
	}
	if got, set := tg.messages(t, "queue/jobs"); len(got) != 0 || len(set) != 0 {
		t.Errorf("after the acknowledgements: mqtt_msg %q, set %v; want both empty", got, set)
	}
	acked := map[string]string{}
	for _, it := range tg.scan(t, "mqtt_acked") {
		acked[attrS(it, "topic")+" "+attrS(it, "clientid")] = attrS(it, "msgid")
	}
	if len(acked) != 2 || acked["queue/jobs worker-1"] == "" || acked["queue/jobs worker-2"] == "" ||
		acked["queue/jobs worker-1"] >= acked["queue/jobs worker-2"] {
		t.Errorf("mqtt_acked = %v; want worker-1's last ack (j2) before worker-2's (j5)", acked)
	}
}

// TestDynamoOfflineMessagesAcrossRestart: a persistent session whose broker restarts between
// the publishes and the reconnect: mochi has lost the session, the messages come from
// DynamoDB, once.
func TestDynamoOfflineMessagesAcrossRestart(t *testing.T) {
	t.Parallel()
	tg := newDynamoTarget(t)
	b := tg.start(t)
	sub := mqtttest.Connect(t, b.addr, "sub-2", false)
	sub.MustSubscribe(t, "off/rs/#", 1)
	sub.Disconnect(100)
	tg.waitState(t, "sub-2", "0")
	pub := mqtttest.Connect(t, b.addr, "pub-2", true)
	var want []string
	for i := range 5 {
		want = append(want, fmt.Sprintf("m%d", i))
		pub.MustPublish(t, "off/rs/t", 1, false, want[i])
	}
	pub.MustPublish(t, "off/rs/t", 0, false, "qos 0 is not stored")
	pub.Disconnect(100)
	tg.waitState(t, "pub-2", "0")

	b = tg.restart(t, b)
	if got, _ := tg.messages(t, "off/rs/t"); !slices.Equal(got, want) {
		t.Errorf("mqtt_msg after the restart: %q, want %q", got, want)
	}
	sub = mqtttest.Connect(t, b.addr, "sub-2", false)
	if sub.SessionPresent {
		t.Fatal("the restarted broker resumed the session: the test would not test the database")
	}
	sub.MustSubscribe(t, "off/rs/#", 1)
	if got := payloads(sub.Barrier(t, "off/rs/barrier")); !slices.Equal(got, want) {
		t.Errorf("after the restart: received %q, want %q", got, want)
	}
	b.flush(t)
	sub.Disconnect(100)
	tg.waitState(t, "sub-2", "0")

	b = tg.restart(t, b)
	sub = mqtttest.Connect(t, b.addr, "sub-2", false)
	sub.MustSubscribe(t, "off/rs/#", 1)
	if got := sub.Barrier(t, "off/rs/barrier"); len(got) != 0 {
		t.Errorf("after reconnecting again: received %v, want nothing", got)
	}
	if got, set := tg.messages(t, "off/rs/t"); len(got) != 0 || len(set) != 0 {
		t.Errorf("after the acknowledgements: mqtt_msg %q, set %v; want both empty", got, set)
	}
}

// TestDynamoRetainedSurviveRestart: retained messages (on_message_retain, on_retain_delete)
// come back from mqtt_retain after a restart, to a wildcard subscriber.
func TestDynamoRetainedSurviveRestart(t *testing.T) {
	t.Parallel()
	tg := newDynamoTarget(t)
	b := tg.start(t)
	pub := mqtttest.Connect(t, b.addr, "pub-3", true)
	pub.MustPublish(t, "ret/a/1", 0, true, "one")
	pub.MustPublish(t, "ret/b/2", 0, true, "two")
	pub.MustPublish(t, "ret/c", 0, true, "gone")
	pub.MustPublish(t, "ret/c", 0, true, "")
	pub.Disconnect(100)
	tg.waitState(t, "pub-3", "0")

	b = tg.restart(t, b)
	all := mqtttest.Connect(t, b.addr, "sub-3", true)
	all.MustSubscribe(t, "ret/#", 1)
	got := all.Barrier(t, "ret/barrier")
	slices.SortFunc(got, func(a, b mqtttest.Received) int { return strings.Compare(a.Topic, b.Topic) })
	want := []mqtttest.Received{{Topic: "ret/a/1", Payload: "one", Retain: true}, {Topic: "ret/b/2", Payload: "two", Retain: true}}
	if !slices.Equal(got, want) {
		t.Errorf("ret/#: received %v, want %v", got, want)
	}
}
