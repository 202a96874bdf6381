package mongostore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// outage publishes steadily through a store whose server is behind a proxy, cuts the server
// off (mode) for down, then lets it back: every message is stored exactly once, every client
// and retained topic holds one document with its last write, and nothing failed or was
// dropped. The store runs with the broker's defaults (backend.Options zero: QueryTimeout and
// ConnectTimeout 5s, retries without limit).
func outage(t *testing.T, mode testenv.ProxyMode, down time.Duration) {
	env := testenv.Mongo(t)
	host := strings.TrimSuffix(strings.TrimPrefix(env.URI, "mongodb://"), "/")
	proxy := testenv.NewProxy(t, host)
	s := openStore(t, Config{URI: "mongodb://" + proxy.Addr() + "/?directConnection=true", Database: env.Database,
		EnsureSchema: true, Node: "fault@127.0.0.1"})
	closed := false
	defer func() {
		if !closed {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			s.Close(ctx)
		}
	}()
	write := func(fn string, p hook.Point) hook.WriteAction {
		return prepareWrite(t, s, hook.Rule{Point: p, Topic: "#", Action: hook.RuleAction{Function: fn}})
	}
	pub, ret := write(hook.OnMessagePublish, hook.MessagePublish), write(hook.OnMessageRetain, hook.MessagePublish)
	conn, disc := write(hook.OnClientConnected, hook.ClientConnected), write(hook.OnClientDisconnected, hook.ClientDisconnected)

	// A message every 5ms (the broker's hook call returns at once), a retained message every
	// 5th on one of 50 topics, a client state every 3rd for one of 20 clients.
	const interval = 5 * time.Millisecond
	before, after := 2*time.Second, 3*time.Second
	n := int((before + down + after) / interval)
	const clients, topics = 20, 50
	lastState := map[string]any{}  // client -> state (int32 1 online, 0 offline)
	lastRetain := map[string]any{} // topic -> msgid
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	cut, back := false, false
	retains, states := 0, 0
	for i := range n {
		if el := time.Since(start); !cut && el >= before {
			proxy.Set(mode)
			cut = true
			t.Logf("%s: server cut off at message %d", time.Now().Format(time.TimeOnly), i)
		} else if cut && !back && el >= before+down {
			proxy.Set(testenv.Pass)
			back = true
			t.Logf("%s: server back at message %d; stats %+v", time.Now().Format(time.TimeOnly), i, s.Stats())
		}
		m := &hook.Message{ID: fmt.Sprintf("f%06d", i), From: "pub", Topic: fmt.Sprintf("f/%d", i%7), QoS: 1,
			Payload: []byte(fmt.Sprint("payload ", i)), Timestamp: time.Now()}
		if err := pub.Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		if i%5 == 0 {
			r := &hook.Message{ID: fmt.Sprintf("r%06d", i), From: "pub", Topic: fmt.Sprintf("r/%d", (i/5)%topics), QoS: 1,
				Retain: true, Payload: []byte(fmt.Sprint("retained ", i)), Timestamp: time.Now()}
			if err := ret.Write(ctx, &hook.PublishEvent{Message: r}); err != nil {
				t.Fatalf("retain %d: %v", i, err)
			}
			lastRetain[r.Topic] = r.ID
			retains++
		}
		if i%3 == 0 {
			c := fmt.Sprintf("c%02d", (i/3)%clients)
			var err error
			if online := (i/3/clients)%2 == 0; online {
				err = conn.Write(ctx, &hook.ConnectedEvent{ClientID: c, ConnectedAt: time.Now()})
				lastState[c] = int32(1)
			} else {
				err = disc.Write(ctx, &hook.DisconnectedEvent{ClientID: c, DisconnectedAt: time.Now()})
				lastState[c] = int32(0)
			}
			if err != nil {
				t.Fatalf("client state %d: %v", i, err)
			}
			states++
		}
		time.Sleep(interval)
	}
	if !back {
		proxy.Set(testenv.Pass)
	}
	fctx, fcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer fcancel()
	if err := s.Flush(fctx); err != nil {
		t.Fatalf("flush after the outage: %v; stats %+v", err, s.Stats())
	}
	st := s.Stats()
	closed = true
	if err := s.Close(fctx); err != nil {
		t.Errorf("close: %v", err)
	}

	// Read back through a client of its own, not through the proxy.
	rc, err := mongo.Connect(options.Client().ApplyURI(env.URI).SetServerSelectionTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Disconnect(context.Background())
	db := rc.Database(env.Database)
	rctx, rcancel := context.WithTimeout(ctx, time.Minute)
	defer rcancel()
	var msgs []struct {
		ID    int64  `bson:"_id"`
		MsgID string `bson:"msgid"`
	}
	readAll(t, rctx, db.Collection(ColMsg), &msgs, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "msgid", Value: 1}}))
	seen := map[string]int{}
	outOfOrder, prev := 0, ""
	for _, m := range msgs {
		seen[m.MsgID]++
		if m.MsgID < prev {
			outOfOrder++
		}
		prev = m.MsgID
	}
	missing, dups := 0, 0
	for i := range n {
		switch seen[fmt.Sprintf("f%06d", i)] {
		case 0:
			missing++
		case 1:
		default:
			dups++
		}
	}
	t.Logf("%s for %v: published %d messages, %d retained, %d client states; mqtt_msg holds %d documents "+
		"(%d missing, %d duplicated, %d out of publish order); stats: success %d, failed %d, retried %d, dropped %v",
		map[testenv.ProxyMode]string{testenv.Blackhole: "blackhole", testenv.Reset: "reset"}[mode], down, n, retains, states, len(msgs), missing, dups, outOfOrder, st.Success, st.Failed, st.Retried, st.Dropped)
	if missing != 0 || dups != 0 || len(msgs) != n {
		t.Errorf("mqtt_msg: %d documents for %d messages: %d missing, %d duplicated", len(msgs), n, missing, dups)
	}
	dropped := uint64(0)
	for _, d := range st.Dropped {
		dropped += d
	}
	if st.Failed != 0 || dropped != 0 || st.Success != uint64(n+retains+states) {
		t.Errorf("stats %+v: want %d successes, no failure, no drop", st, n+retains+states)
	}
	if st.Retried == 0 {
		t.Errorf("stats %+v: no retry: the outage was not seen", st)
	}

	// One document per key, holding the last write of the key.
	for col, want := range map[string]struct {
		key, field string
		last       map[string]any
	}{ColRetain: {"topic", "msgid", lastRetain}, ColClient: {"clientid", "state", lastState}} {
		var docs []bson.M
		readAll(t, rctx, db.Collection(col), &docs)
		if len(docs) != len(want.last) {
			t.Errorf("%s holds %d documents for %d keys", col, len(docs), len(want.last))
		}
		for _, d := range docs {
			if k, _ := d[want.key].(string); d[want.field] != want.last[k] {
				t.Errorf("%s %s: %s %v, want the last one, %v", col, k, want.field, d[want.field], want.last[k])
			}
		}
	}
}

// readAll reads every document of col into out.
func readAll[T any](t *testing.T, ctx context.Context, col *mongo.Collection, out *[]T, opts ...options.Lister[options.FindOptions]) {
	t.Helper()
	cur, err := col.Find(ctx, bson.D{}, opts...)
	if err == nil {
		err = cur.All(ctx, out)
	}
	if err != nil {
		t.Fatalf("read %s: %v", col.Name(), err)
	}
}

// TestOutage: the server unreachable for 30 s under load (a network partition: the proxy
// accepts connections and forwards nothing, so every request times out), then back.
func TestOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage")
	}
	outage(t, testenv.Blackhole, 30*time.Second)
}

// TestOutageRefused: the server stopped for a few seconds (connections reset and refused).
func TestOutageRefused(t *testing.T) {
	outage(t, testenv.Reset, 5*time.Second)
}
