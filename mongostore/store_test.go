package mongostore

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

func prepareWrite(t *testing.T, s *Store, r hook.Rule) hook.WriteAction {
	t.Helper()
	if r.Name == "" {
		r.Name = "r." + r.Action.Function
	}
	a, err := s.Prepare(&r)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(context.Background(), []hook.Action{a}); err != nil {
		t.Fatal(err)
	}
	return a.(hook.WriteAction)
}

func publish(t *testing.T, w hook.WriteAction, msgs ...*hook.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := w.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
	}
}

func flush(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestExistingEMQXDatabase: a database written by EMQX (integer _ids, Unix-second times,
// retain as an integer, ObjectIds elsewhere) is used as it is: EnsureSchema adds what the
// store needs, new messages get _ids after EMQX's, and everything reads back.
func TestExistingEMQXDatabase(t *testing.T) {
	cfg := testConfig(t)
	cfg.EnsureSchema = false
	ctx := context.Background()
	s := openStore(t, cfg)
	db := s.Database()
	arrived := time.Now().Add(-time.Minute).Unix()
	var docs []any
	for i := 1; i <= 3; i++ {
		docs = append(docs, bson.D{{Key: "_id", Value: int32(i)}, {Key: "topic", Value: "/World"}, {Key: "msgid", Value: "emqx-" + string(rune('0'+i))},
			{Key: "sender", Value: "test"}, {Key: "qos", Value: int32(1)}, {Key: "retain", Value: int32(1)}, {Key: "payload", Value: "Hello world!"}, {Key: "arrived", Value: arrived}})
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(db.Collection(ColMsg).InsertMany(ctx, docs))
	must(db.Collection(ColRetain).InsertOne(ctx, bson.D{{Key: "topic", Value: "t/retain"}, {Key: "msgid", Value: "r1"}, {Key: "sender", Value: "c1"},
		{Key: "qos", Value: int32(1)}, {Key: "payload", Value: "Hello world!"}, {Key: "arrived", Value: arrived}}))
	must(db.Collection(ColClient).InsertOne(ctx, bson.D{{Key: "clientid", Value: "test"}, {Key: "state", Value: int32(1)},
		{Key: "node", Value: "emqx@127.0.0.1"}, {Key: "online_at", Value: int64(1482976411)}, {Key: "offline_at", Value: nil}}))
	must(db.Collection(ColAcked).InsertOne(ctx, bson.D{{Key: "clientid", Value: "emqx-sub"}, {Key: "topic", Value: "/World"}, {Key: "mongo_id", Value: int32(2)}}))
	must(db.Collection(ColSub).InsertOne(ctx, bson.D{{Key: "clientid", Value: "test"}, {Key: "topic", Value: "test_topic1"}, {Key: "qos", Value: int32(1)}}))
	must(db.Collection(ColMsg).Indexes().CreateOne(ctx, mongoIndex(bson.D{{Key: "sender", Value: 1}, {Key: "topic", Value: 1}})))
	s.Close(ctx)

	cfg.EnsureSchema = true
	s = openStore(t, cfg)
	defer s.Close(ctx)
	if err := s.EnsureSchema(ctx); err != nil { // a second run changes nothing
		t.Fatal(err)
	}
	pub := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	publish(t, pub, &hook.Message{ID: "new", Topic: "/World", QoS: 1, Payload: []byte("new"), Timestamp: time.Now()})
	flush(t, s)
	var last struct {
		ID int64 `bson:"_id"`
	}
	if err := s.msg.FindOne(ctx, bson.D{{Key: "msgid", Value: "new"}}).Decode(&last); err != nil || last.ID != 4 {
		t.Errorf("new message _id %d (%v), want 4, after EMQX's", last.ID, err)
	}
	got, err := s.Fetch(ctx, "c", "/World", hook.OfflineOpts{TimeRange: time.Hour})
	if err != nil || len(got) != 4 || got[0].ID != "emqx-1" || !got[0].Retain || got[0].Timestamp.Unix() != arrived || got[3].ID != "new" {
		t.Fatalf("fetch: %v, %v", got, err)
	}
	// EMQX's position (mongo_id 2) counts; an ack through the store adds its own document,
	// and the greater of the two counts.
	if got, err := s.Fetch(ctx, "emqx-sub", "/World", hook.OfflineOpts{}); err != nil || len(got) != 2 || got[0].ID != "emqx-3" {
		t.Fatalf("fetch after EMQX's position: %v, %v", got, err)
	}
	ack := prepareWrite(t, s, hook.Rule{Point: hook.MessageAcked, Action: hook.RuleAction{Function: hook.OnMessageAcked}})
	if err := ack.Write(ctx, &hook.AckedEvent{ClientID: "emqx-sub", Message: got[2]}); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	if got, err := s.Fetch(ctx, "emqx-sub", "#", hook.OfflineOpts{}); err != nil || len(got) != 1 || got[0].ID != "new" {
		t.Fatalf("fetch after the store's ack: %v, %v", got, err)
	}
	rs, err := s.Retained(ctx, "t/#")
	if err != nil || len(rs) != 1 || string(rs[0].Payload) != "Hello world!" {
		t.Errorf("retained: %v, %v", rs, err)
	}
	st, err := s.ClientState(ctx, "test")
	if err != nil || !st.Online || st.OnlineAt.Unix() != 1482976411 || st.Node != "emqx@127.0.0.1" {
		t.Errorf("client state: %+v, %v", st, err)
	}
	// EMQX's mqtt_client and mqtt_retain documents (ObjectId _ids, unique clientid and topic
	// indexes) are updated in place: the store's upserts by _id fall back to the field.
	disc := prepareWrite(t, s, hook.Rule{Point: hook.ClientDisconnected, Action: hook.RuleAction{Function: hook.OnClientDisconnected}})
	ret := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageRetain}})
	if err := disc.Write(ctx, &hook.DisconnectedEvent{ClientID: "test"}); err != nil {
		t.Fatal(err)
	}
	publish(t, ret, &hook.Message{ID: "r2", Topic: "t/retain", QoS: 1, Retain: true, Payload: []byte("new retained"), Timestamp: time.Now()})
	flush(t, s)
	if st, err := s.ClientState(ctx, "test"); err != nil || st.Online || st.OfflineAt.IsZero() {
		t.Errorf("client state after a disconnect: %+v, %v", st, err)
	}
	if rs, err := s.Retained(ctx, "t/#"); err != nil || len(rs) != 1 || string(rs[0].Payload) != "new retained" {
		t.Errorf("retained after an update: %v, %v", rs, err)
	}
	for col, f := range map[string]bson.D{ColClient: {{Key: "clientid", Value: "test"}}, ColRetain: {{Key: "topic", Value: "t/retain"}}} {
		if n, err := s.Database().Collection(col).CountDocuments(ctx, f); err != nil || n != 1 {
			t.Errorf("%s holds %d documents for %v (%v), want 1", col, n, f, err)
		}
	}
	if st := s.Stats(); st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	subs, err := s.Subscriptions(ctx, "test")
	if err != nil || len(subs) != 1 || subs[0] != (hook.Subscription{Topic: "test_topic1", QoS: 1}) {
		t.Errorf("subscriptions: %v, %v", subs, err)
	}
}

func mongoIndex(keys bson.D) mongo.IndexModel { return mongo.IndexModel{Keys: keys} }

// TestDuplicateIsSuccess: a message written again (a retried batch, or two rules storing it)
// is success for that message: stored once, nothing counted as failed.
func TestDuplicateIsSuccess(t *testing.T) {
	s := newStore(t)
	pub := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageStore}})
	m := &hook.Message{ID: "dup", Topic: "t", QoS: 1, Payload: []byte("x"), Timestamp: time.Now()}
	other := &hook.Message{ID: "other", Topic: "t", QoS: 1, Payload: []byte("y"), Timestamp: time.Now()}
	publish(t, pub, m)
	flush(t, s)
	publish(t, pub, m, other, m)
	flush(t, s)
	if st := s.Stats(); st.Failed != 0 || st.Success != 4 {
		t.Errorf("stats %+v, want 4 successes and no failure", st)
	}
	got, err := s.Fetch(context.Background(), "c", "t", hook.OfflineOpts{})
	if err != nil || len(got) != 2 || got[0].ID != "dup" || got[1].ID != "other" {
		t.Errorf("fetch: %v, %v", got, err)
	}
}

// TestStaleLockTakenOver: a lock left by a broker that died is taken over once its lease
// has passed; a live one is waited for.
func TestStaleLockTakenOver(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.lock.InsertOne(ctx, bson.D{{Key: "_id", Value: ColMsg}, {Key: "owner", Value: "dead"},
		{Key: "until", Value: bson.NewDateTimeFromTime(time.Now().Add(-time.Second))}}); err != nil {
		t.Fatal(err)
	}
	pub := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	publish(t, pub, &hook.Message{ID: "m1", Topic: "t", QoS: 1, Timestamp: time.Now()})
	flush(t, s)
	// A live lock, released after a while: the write waits for it, then goes through. (The
	// store keeps its own lock a few milliseconds after a batch: take it once it is free.)
	for deadline := time.Now().Add(10 * time.Second); ; {
		_, err := s.lock.InsertOne(ctx, bson.D{{Key: "_id", Value: ColMsg}, {Key: "owner", Value: "alive"},
			{Key: "until", Value: bson.NewDateTimeFromTime(time.Now().Add(time.Minute))}})
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	publish(t, pub, &hook.Message{ID: "m2", Topic: "t", QoS: 1, Timestamp: time.Now()})
	time.Sleep(50 * time.Millisecond)
	if got, _ := s.Fetch(ctx, "c", "t", hook.OfflineOpts{}); len(got) != 1 {
		t.Errorf("%d messages stored while another writer held the lock, want 1", len(got))
	}
	if _, err := s.lock.DeleteOne(ctx, bson.D{{Key: "owner", Value: "alive"}}); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	if got, _ := s.Fetch(ctx, "c", "t", hook.OfflineOpts{}); len(got) != 2 {
		t.Errorf("%d messages stored after the lock was released, want 2", len(got))
	}
	if st := s.Stats(); st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestSweeper: where the server has no TTL index (FerretDB), expired messages are deleted by
// SweepExpired; on MongoDB the TTL index does it.
func TestSweeper(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	pub := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, ExpiredTime: time.Second, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	keep := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Topic: "keep/#", Action: hook.RuleAction{Function: hook.OnMessageStore}})
	publish(t, pub, &hook.Message{ID: "gone", Topic: "t", QoS: 1, Timestamp: time.Now()})
	publish(t, keep, &hook.Message{ID: "kept", Topic: "keep/t", QoS: 1, Timestamp: time.Now()})
	flush(t, s)
	var idx []bson.M
	cur, err := s.msg.Indexes().List(ctx)
	if err != nil || cur.All(ctx, &idx) != nil {
		t.Fatal(err)
	}
	t.Logf("native TTL: %v; indexes %v", s.NativeTTL(), idx)
	if s.NativeTTL() {
		t.Skip("the server has TTL indexes: no sweeper")
	}
	time.Sleep(1100 * time.Millisecond)
	if got, _ := s.Fetch(ctx, "c", "#", hook.OfflineOpts{}); len(got) != 1 || got[0].ID != "kept" {
		t.Errorf("fetch after expiry: %v", got)
	}
	n, err := s.SweepExpired(ctx)
	if err != nil || n != 1 {
		t.Fatalf("SweepExpired: %d, %v; want 1", n, err)
	}
	if c, _ := s.msg.CountDocuments(ctx, bson.D{}, options.Count()); c != 1 {
		t.Errorf("%d messages left, want 1", c)
	}
}

// TestConcurrentUpserts: two stores on one database (two brokers) write the states of the
// same clients and the retained messages of the same topics at once, on keys neither has
// written before: each client and each topic ends with one document, keyed by _id, even
// without the unique indexes on clientid and topic (FerretDB's upserts are not atomic: the
// primary key is what keeps them single), and nothing fails.
func TestConcurrentUpserts(t *testing.T) {
	cfg := testConfig(t)
	stores := []*Store{openStore(t, cfg), openStore(t, cfg)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	defer func() {
		for _, s := range stores {
			s.Close(ctx)
		}
	}()
	for col, name := range map[string]string{ColClient: "clientid_unique", ColRetain: "topic_unique"} {
		if err := stores[0].db.Collection(col).Indexes().DropOne(ctx, name); err != nil {
			t.Fatalf("drop index %s.%s: %v", col, name, err)
		}
	}
	const keys, rounds = 20, 15
	var wg sync.WaitGroup
	for w, s := range stores {
		conn := prepareWrite(t, s, hook.Rule{Point: hook.ClientConnected, Action: hook.RuleAction{Function: hook.OnClientConnected}})
		disc := prepareWrite(t, s, hook.Rule{Point: hook.ClientDisconnected, Action: hook.RuleAction{Function: hook.OnClientDisconnected}})
		ret := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageRetain}})
		wg.Go(func() {
			for r := range rounds {
				for k := range keys {
					c := fmt.Sprintf("c%d", k)
					var err error
					if r%2 == 0 {
						err = conn.Write(ctx, &hook.ConnectedEvent{ClientID: c, Node: fmt.Sprint("n", w)})
					} else {
						err = disc.Write(ctx, &hook.DisconnectedEvent{ClientID: c, Node: fmt.Sprint("n", w)})
					}
					if err == nil {
						err = ret.Write(ctx, &hook.PublishEvent{Message: &hook.Message{ID: fmt.Sprintf("w%d-%d-%d", w, r, k),
							Topic: fmt.Sprintf("r/%d", k), QoS: 1, Retain: true, Payload: []byte("x"), Timestamp: time.Now()}})
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
				// Both writers hit the new keys at once, and again on every round.
				if err := s.Flush(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for _, s := range stores {
		flush(t, s)
		if st := s.Stats(); st.Failed != 0 || st.Success != 2*keys*rounds {
			t.Errorf("stats %+v, want %d successes and no failure", st, 2*keys*rounds)
		}
	}
	for col, field := range map[string]string{ColClient: "clientid", ColRetain: "topic"} {
		var docs []bson.M
		cur, err := stores[0].db.Collection(col).Find(ctx, bson.D{})
		if err != nil || cur.All(ctx, &docs) != nil {
			t.Fatalf("read %s: %v", col, err)
		}
		seen := map[any]int{}
		for _, d := range docs {
			seen[d[field]]++
			if d["_id"] != d[field] {
				t.Errorf("%s document %v: _id is not its %s", col, d, field)
			}
		}
		if len(docs) != keys || len(seen) != keys {
			t.Errorf("%s holds %d documents for %d keys: %v", col, len(docs), keys, seen)
		}
	}
}

// TestUnsafeWriteMode: w_mode = unsafe (EMQX's unacknowledged writes) is accepted. On
// MongoDB the store writes messages, retained messages, acks and client states without
// waiting for the server: they arrive, and every write counts as a success, including one the
// server refuses, which is what it risks: here a disconnect of a client whose document EMQX
// wrote (ObjectId _id, unique clientid index) is refused as a duplicate key, unseen, and the
// state stays online (safe, the store updates the document by clientid instead). FerretDB
// answers unacknowledged writes, which would put the driver's reading of the connection out
// of step: there the store says so in the log and writes acknowledged, so the disconnect is
// recorded.
func TestUnsafeWriteMode(t *testing.T) {
	env := testenv.Mongo(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var logs bytes.Buffer
	opts := testOptions
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b, err := backend.Open(ctx, backend.PoolConfig{Store: "mongo", Pool: backend.NewPool("pool1", map[string]string{
		"server": strings.TrimSuffix(strings.TrimPrefix(env.URI, "mongodb://"), "/"), "database": env.Database, "w_mode": "unsafe",
	}), Options: opts, EnsureSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	s := b.(*Store)
	defer s.Close(ctx)
	ferret, err := s.answersUnacknowledged(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("server answers unacknowledged writes (FerretDB): %v; the store writes unacknowledged: %v", ferret, s.Unacknowledged())
	if s.Unacknowledged() == ferret || ferret != strings.Contains(logs.String(), "w_mode = unsafe ignored") {
		t.Fatalf("w_mode = unsafe on a server that answers unacknowledged writes: %v; store unacknowledged: %v; logs:\n%s", ferret, s.Unacknowledged(), logs.String())
	}
	if _, err := s.Database().Collection(ColClient).InsertOne(ctx, bson.D{{Key: "clientid", Value: "legacy"}, {Key: "state", Value: int32(1)}}); err != nil {
		t.Fatal(err)
	}
	pub := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	ret := prepareWrite(t, s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageRetain}})
	conn := prepareWrite(t, s, hook.Rule{Point: hook.ClientConnected, Action: hook.RuleAction{Function: hook.OnClientConnected}})
	disc := prepareWrite(t, s, hook.Rule{Point: hook.ClientDisconnected, Action: hook.RuleAction{Function: hook.OnClientDisconnected}})
	const n = 20
	for i := range n {
		publish(t, pub, &hook.Message{ID: fmt.Sprint("u", i), Topic: "u/t", QoS: 1, Payload: []byte("x"), Timestamp: time.Now()})
	}
	publish(t, ret, &hook.Message{ID: "r", Topic: "u/r", QoS: 1, Retain: true, Payload: []byte("kept"), Timestamp: time.Now()})
	if err := disc.Write(ctx, &hook.DisconnectedEvent{ClientID: "legacy"}); err != nil {
		t.Fatal(err)
	}
	flush(t, s) // the disconnect goes before the marker below
	if err := conn.Write(ctx, &hook.ConnectedEvent{ClientID: "marker"}); err != nil {
		t.Fatal(err)
	}
	flush(t, s)
	if st := s.Stats(); st.Success != n+3 || st.Failed != 0 {
		t.Errorf("stats %+v: want %d successes", st, n+3)
	}
	// Unacknowledged, the writes are on their way when Flush returns.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		msgs, err1 := s.Database().Collection(ColMsg).CountDocuments(ctx, bson.D{})
		rets, err2 := s.Database().Collection(ColRetain).CountDocuments(ctx, bson.D{{Key: "topic", Value: "u/r"}})
		_, err3 := s.ClientState(ctx, "marker")
		if err1 == nil && err2 == nil && err3 == nil && msgs == n && rets == 1 {
			break
		}
		if !s.Unacknowledged() || time.Now().After(deadline) {
			t.Fatalf("writes not all there: %d messages (%v), %d retained (%v), marker client: %v", msgs, err1, rets, err2, err3)
		}
	}
	if st, err := s.ClientState(ctx, "legacy"); err != nil || st.Online != s.Unacknowledged() {
		t.Errorf("legacy client: %+v, %v; want online only if writes are unacknowledged (its disconnect refused, unseen)", st, err)
	}
}
