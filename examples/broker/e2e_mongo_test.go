package main

// End-to-end tests of -store mongo: the broker with the MongoDB store's default rules
// (mongostore/default.conf through the backend registry) on a database of the test's own
// (MQTTSTORE_MONGO_URI, FerretDB in scripts/services), driven by a real MQTT client, with
// the results read back with the mongo driver.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// mongoTarget is a broker target on a fresh MongoDB database, and the test's own client.
type mongoTarget struct {
	*target
	db *mongo.Database
}

func newMongoTarget(t *testing.T) *mongoTarget {
	env := testenv.Mongo(t)
	c, err := mongo.Connect(options.Client().ApplyURI(env.URI).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c.Disconnect(ctx)
	})
	// -store mongo -dsn mongodb://host:port/<database>: the default rules and pool, the
	// server and database of the URI.
	return &mongoTarget{target: &target{kind: "mongo", dsn: env.URI + env.Database}, db: c.Database(env.Database)}
}

// find returns the documents of col matching filter, sorted by sort (nil: none).
func (tg *mongoTarget) find(t *testing.T, col string, filter bson.D, sort bson.D) []bson.M {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opts := options.Find()
	if sort != nil {
		opts.SetSort(sort)
	}
	cur, err := tg.db.Collection(col).Find(ctx, filter, opts)
	if err != nil {
		t.Fatalf("find in %s: %v", col, err)
	}
	var docs []bson.M
	if err := cur.All(ctx, &docs); err != nil {
		t.Fatalf("find in %s: %v", col, err)
	}
	return docs
}

// clientDocs returns the client's mqtt_client documents.
func (tg *mongoTarget) clientDocs(t *testing.T, id string) []bson.M {
	return tg.find(t, "mqtt_client", bson.D{{Key: "clientid", Value: id}}, nil)
}

// waitMongoState waits until the client's one mqtt_client document has the state (1 online,
// 0 offline), and returns it.
func (tg *mongoTarget) waitMongoState(t *testing.T, id string, state int32) bson.M {
	t.Helper()
	var doc bson.M
	mqtttest.Eventually(t, fmt.Sprintf("%s state %d", id, state), func() bool {
		docs := tg.clientDocs(t, id)
		if len(docs) > 1 {
			t.Fatalf("mqtt_client holds %d documents for %s: %v", len(docs), id, docs)
		}
		if len(docs) == 1 && docs[0]["state"] == state {
			doc = docs[0]
			return true
		}
		return false
	})
	return doc
}

func TestMongoClientState(t *testing.T) {
	tg := newMongoTarget(t)
	b := tg.start(t)
	c := mqtttest.Connect(t, b.addr, "dev-1", true)
	doc := tg.waitMongoState(t, "dev-1", 1)
	if _, ok := doc["online_at"].(bson.DateTime); !ok || doc["offline_at"] != nil || doc["node"] != "node1" {
		t.Errorf("online: %v; want state 1, node node1, online_at a date, offline_at null", doc)
	}
	c.Disconnect(100)
	doc = tg.waitMongoState(t, "dev-1", 0)
	if _, ok := doc["offline_at"].(bson.DateTime); !ok {
		t.Errorf("offline: %v; want offline_at a date", doc)
	}
	mqtttest.Connect(t, b.addr, "dev-1", true)
	tg.waitMongoState(t, "dev-1", 1)
	tg.restart(t, b) // disconnects dev-1 and writes it out
	tg.waitMongoState(t, "dev-1", 0)
}

func TestMongoOfflineMessagesAcrossRestart(t *testing.T) {
	// A persistent session whose broker restarts between the publishes and the reconnect:
	// mochi has lost the session, the messages come from mqtt_msg, after the position the
	// subscriber acked in mqtt_acked.
	tg := newMongoTarget(t)
	tp := func(s string) string { return "off/rs/" + s }
	b := tg.start(t)
	sub := mqtttest.Connect(t, b.addr, "sub-2", false)
	sub.MustSubscribe(t, tp("#"), 1)
	sub.Disconnect(100)
	tg.waitMongoState(t, "sub-2", 0)
	pub := mqtttest.Connect(t, b.addr, "pub-2", true)
	var want []string
	for i := range 10 {
		want = append(want, fmt.Sprintf("m%d", i))
		pub.MustPublish(t, tp(fmt.Sprint("t", i%3)), 1, false, want[i])
	}
	pub.MustPublish(t, tp("t0"), 0, false, "qos 0 is not stored")
	pub.Disconnect(100)
	tg.waitMongoState(t, "pub-2", 0)

	b = tg.restart(t, b)
	msgs := tg.find(t, "mqtt_msg", bson.D{{Key: "topic", Value: bson.D{{Key: "$regex", Value: "^off/rs/"}}}}, bson.D{{Key: "_id", Value: 1}})
	var stored []string
	for _, m := range msgs {
		stored = append(stored, fmt.Sprint(m["payload"]))
		if m["qos"] != int32(1) || m["sender"] != "pub-2" || m["retain"] != false {
			t.Errorf("mqtt_msg document %v", m)
		}
	}
	if !slices.Equal(stored, want) {
		t.Errorf("mqtt_msg holds %q (by _id), want %q", stored, want)
	}

	sub = mqtttest.Connect(t, b.addr, "sub-2", false)
	if sub.SessionPresent {
		t.Fatal("the restarted broker resumed the session: the test would not test the database")
	}
	sub.MustSubscribe(t, tp("#"), 1)
	if got := payloads(sub.Barrier(t, tp("barrier"))); !slices.Equal(got, want) {
		t.Errorf("after the restart: received %q, want %q", got, want)
	}
	sub.Disconnect(100)
	tg.waitMongoState(t, "sub-2", 0)
	b = tg.restart(t, b) // writes out the acknowledgements
	// One position per topic, at the last message of the topic.
	acked := tg.find(t, "mqtt_acked", bson.D{{Key: "clientid", Value: "sub-2"}}, bson.D{{Key: "topic", Value: 1}})
	if len(acked) != 3 {
		t.Errorf("mqtt_acked holds %d positions for sub-2, want 3: %v", len(acked), acked)
	}
	for _, a := range acked {
		var last any
		for _, m := range msgs {
			if m["topic"] == a["topic"] {
				last = m["_id"]
			}
		}
		if a["mongo_id"] != last {
			t.Errorf("position %v: want mongo_id %v, the last message of its topic", a, last)
		}
	}

	sub = mqtttest.Connect(t, b.addr, "sub-2", false)
	sub.MustSubscribe(t, tp("#"), 1)
	if got := sub.Barrier(t, tp("barrier")); len(got) != 0 {
		t.Errorf("after reconnecting again: received %v, want nothing", got)
	}
}

func TestMongoRetainedAcrossRestart(t *testing.T) {
	tg := newMongoTarget(t)
	b := tg.start(t)
	pub := mqtttest.Connect(t, b.addr, "pub-3", true)
	pub.MustPublish(t, "ret/a/1", 0, true, "one")
	// QoS 0: on_message_publish stores QoS 1 and 2, which the default rules would fetch for
	// the subscriber besides the retained message.
	pub.MustPublish(t, "ret/b/2", 0, true, "two")
	pub.MustPublish(t, "ret/c", 0, true, "gone")
	pub.MustPublish(t, "ret/c", 0, true, "") // deletes the retained message of ret/c
	pub.MustPublish(t, "ret/a/1", 0, false, "not retained")
	pub.Disconnect(100)
	tg.waitMongoState(t, "pub-3", 0) // the broker has handled pub-3's packets

	b = tg.restart(t, b)
	docs := tg.find(t, "mqtt_retain", bson.D{}, bson.D{{Key: "topic", Value: 1}})
	var got []string
	for _, d := range docs {
		got = append(got, fmt.Sprintf("%v=%v", d["topic"], d["payload"]))
	}
	if want := []string{"ret/a/1=one", "ret/b/2=two"}; !slices.Equal(got, want) {
		t.Errorf("mqtt_retain holds %q, want %q", got, want)
	}

	all := mqtttest.Connect(t, b.addr, "sub-3a", true)
	all.MustSubscribe(t, "ret/#", 1)
	recv := all.Barrier(t, "ret/barrier")
	slices.SortFunc(recv, func(a, b mqtttest.Received) int { return strings.Compare(a.Topic, b.Topic) })
	want := []mqtttest.Received{{Topic: "ret/a/1", Payload: "one", Retain: true}, {Topic: "ret/b/2", Payload: "two", Retain: true}}
	if !slices.Equal(recv, want) {
		t.Errorf("ret/#: received %v, want %v", recv, want)
	}
	one := mqtttest.Connect(t, b.addr, "sub-3b", true)
	one.MustSubscribe(t, "ret/+/1", 1)
	if got := one.Barrier(t, "ret/x/1"); !slices.Equal(got, want[:1]) {
		t.Errorf("ret/+/1: received %v, want %v", got, want[:1])
	}
}
