package dynamostore_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/dynamostore"
	"github.com/mqttstore/mqttstore/hook"
)

// fixture is a store with one action per function of the spec's rule list.
type fixture struct {
	t   *testing.T
	s   *dynamostore.Store
	ids *hook.IDGenerator
	act map[string]hook.Action
}

func newFixture(t *testing.T, cfg dynamostore.Config, mods ...func(*hook.Rule)) *fixture {
	t.Helper()
	s := open(t, cfg)
	t.Cleanup(func() { s.Close(context.Background()) })
	f := &fixture{t: t, s: s, ids: hook.NewIDGenerator("test@127.0.0.1"), act: make(map[string]hook.Action)}
	var acts []hook.Action
	for _, fn := range dynamostore.Functions {
		info, _ := hook.LookupFunction(fn)
		r := &hook.Rule{Name: fn, Point: info.Points[0], Topic: "#", Action: hook.RuleAction{Function: fn}}
		for _, m := range mods {
			m(r)
		}
		a, err := s.Prepare(r)
		if err != nil {
			t.Fatalf("Prepare(%s): %v", fn, err)
		}
		f.act[fn] = a
		acts = append(acts, a)
	}
	if err := s.Activate(context.Background(), acts); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) write(fn string, e hook.Event) {
	f.t.Helper()
	if err := f.act[fn].(hook.WriteAction).Write(context.Background(), e); err != nil {
		f.t.Fatalf("%s: %v", fn, err)
	}
}

func (f *fixture) msg(tp string, qos byte, payload string) *hook.Message {
	return &hook.Message{ID: f.ids.Next(), Topic: tp, QoS: qos, From: "pub", Payload: []byte(payload), Timestamp: time.Now()}
}

func (f *fixture) publish(ms ...*hook.Message) {
	f.t.Helper()
	for _, m := range ms {
		f.write(hook.OnMessagePublish, &hook.PublishEvent{Message: m})
	}
}

func (f *fixture) ack(client string, ms ...*hook.Message) {
	f.t.Helper()
	for _, m := range ms {
		f.write(hook.OnMessageAckedForQueue, &hook.AckedEvent{ClientID: client, Message: m})
	}
}

func (f *fixture) flush() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.s.Flush(ctx); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) fetch(client, filter string) []*hook.Message {
	f.t.Helper()
	res, err := f.act[hook.OnMessageFetchForQueue].(hook.LookupAction).Lookup(context.Background(), &hook.SubscribedEvent{ClientID: client, Topic: filter, QoS: 1})
	if err != nil {
		f.t.Fatalf("fetch %s %s: %v", client, filter, err)
	}
	return res.Offline
}

func (f *fixture) noFailures() {
	f.t.Helper()
	st := f.s.Stats()
	dropped := uint64(0)
	for _, n := range st.Dropped {
		dropped += n
	}
	if st.Failed != 0 || dropped != 0 {
		f.t.Errorf("stats %+v: want no failed or dropped writes", st)
	}
}

func ids(ms []*hook.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func wantIDs(t *testing.T, what string, got []*hook.Message, want ...*hook.Message) {
	t.Helper()
	if g, w := ids(got), ids(want); !slices.Equal(g, w) {
		t.Errorf("%s: got %v, want %v", what, g, w)
	}
}

// scanCount counts the items of one of the store's tables (tests only: the store never scans).
func scanCount(t *testing.T, s *dynamostore.Store, table string) int {
	t.Helper()
	out, err := s.Client().Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(s.TableName(table)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Items)
}

// TestQueueTwoCompetingSubscribers: one-to-one delivery. A and B both subscribe to the same
// queue; each message is acked by one of them and is then gone for both; the acks are recorded
// in mqtt_acked; nothing is left in mqtt_msg or the topic sets.
func TestQueueTwoCompetingSubscribers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig(t))
	var all []*hook.Message
	for i := range 10 {
		all = append(all, f.msg([]string{"work/a", "work/b"}[i%2], 1, fmt.Sprint("job", i)))
	}
	f.publish(all...)
	f.flush()
	wantIDs(t, "A's first fetch", f.fetch("A", "work/#"), all...)
	wantIDs(t, "B's first fetch", f.fetch("B", "work/+"), all...)
	// They compete: A takes the even jobs, B the odd ones.
	var even, odd []*hook.Message
	for i, m := range all {
		if i%2 == 0 {
			even = append(even, m)
		} else {
			odd = append(odd, m)
		}
	}
	f.ack("A", even...)
	f.flush()
	wantIDs(t, "B's fetch after A acked the even jobs", f.fetch("B", "work/#"), odd...)
	f.ack("B", odd...)
	f.flush()
	wantIDs(t, "A's fetch after B acked the odd jobs", f.fetch("A", "work/#"))
	wantIDs(t, "C's fetch", f.fetch("C", "work/a"))
	if n := scanCount(t, f.s, dynamostore.TableMsg); n != 0 {
		t.Errorf("mqtt_msg holds %d items after every message was acked; want 0", n)
	}
	out, err := f.s.Client().Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(f.s.TableName(dynamostore.TableAcked)), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, it := range out.Items {
		got[it["topic"].(*types.AttributeValueMemberS).Value+" "+it["clientid"].(*types.AttributeValueMemberS).Value] = it["msgid"].(*types.AttributeValueMemberS).Value
	}
	want := map[string]string{"work/a A": all[8].ID, "work/b B": all[9].ID}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("mqtt_acked = %v; want %v (the last ack of each client per topic)", got, want)
	}
	// on_acked_delete by wildcard removes A's entries.
	f.write(hook.OnAckedDelete, &hook.UnsubscribedEvent{ClientID: "A", Topic: "work/#"})
	f.flush()
	if n := scanCount(t, f.s, dynamostore.TableAcked); n != 1 {
		t.Errorf("mqtt_acked holds %d items after A's on_acked_delete of work/#; want 1 (B's)", n)
	}
	f.noFailures()
}

// TestRepeatedKeysInOneBatch writes the same keys several times within one batch (one
// BatchWriteItem refuses a repeated key): the last write of each key wins, nothing fails.
func TestRepeatedKeysInOneBatch(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Options.BatchInterval = 300 * time.Millisecond // one batch
	cfg.Options.Shards = 1
	f := newFixture(t, cfg)
	m := f.msg("dup/a", 1, "same")
	r1, r2 := f.msg("dup/r", 1, "r1"), f.msg("dup/r", 1, "r2")
	r1.Retain, r2.Retain = true, true
	at := time.Now().Truncate(time.Millisecond)
	f.publish(m, m, m)
	f.write(hook.OnMessageRetain, &hook.PublishEvent{Message: r1})
	f.write(hook.OnMessageRetain, &hook.PublishEvent{Message: r2})
	f.write(hook.OnClientConnected, &hook.ConnectedEvent{ClientID: "c", Node: "n1", ConnectedAt: at})
	f.write(hook.OnClientDisconnected, &hook.DisconnectedEvent{ClientID: "c", Node: "n1", DisconnectedAt: at.Add(time.Second)})
	f.write(hook.OnClientConnected, &hook.ConnectedEvent{ClientID: "c", Node: "n2", ConnectedAt: at.Add(2 * time.Second)})
	f.flush()
	f.noFailures()
	wantIDs(t, "fetch of dup/a", f.fetch("x", "dup/a"), m)
	res, err := f.act[hook.OnRetainLookup].(hook.LookupAction).Lookup(context.Background(), &hook.SubscribedEvent{ClientID: "x", Topic: "dup/#"})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs(t, "retained on dup/#", res.Retained, r2)
	st, err := f.s.ClientState(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Online || st.Node != "n2" || !st.OnlineAt.Equal(at.Add(2*time.Second)) || !st.OfflineAt.IsZero() {
		t.Errorf("client state %+v; want online on n2 since %v", st, at.Add(2*time.Second))
	}
	if s := f.s.Stats(); s.Success != 8 {
		t.Errorf("stats %+v; want 8 successful writes", s)
	}
}

// TestItemTooLarge: a message over DynamoDB's 400 KB item limit is refused and counted in
// Stats.Failed; its neighbours are written.
func TestItemTooLarge(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig(t))
	big := f.msg("big/a", 1, strings.Repeat("x", dynamostore.MaxItemSize+1))
	small := f.msg("big/a", 1, "small")
	f.publish(big, small)
	f.flush()
	if st := f.s.Stats(); st.Failed != 1 || st.Success != 1 {
		t.Errorf("stats %+v; want 1 failed (the big one), 1 success", st)
	}
	wantIDs(t, "fetch of big/a", f.fetch("x", "big/a"), small)
}

// TestFetchOptions: expired_time, offline_opts.max_returned_count and time_range on
// on_message_fetch_for_queue. dynalite has no TTL: the fetch filter does the expiry.
func TestFetchOptions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, testConfig(t), func(r *hook.Rule) {
		switch r.Action.Function {
		case hook.OnMessagePublish:
			r.ExpiredTime = time.Hour
		case hook.OnMessageFetchForQueue:
			r.OfflineOpts = hook.OfflineOpts{MaxReturnedCount: 2, TimeRange: 3 * time.Hour}
		}
	})
	expired := f.msg("opt/a", 1, "expired")
	expired.Timestamp = time.Now().Add(-90 * time.Minute) // expired_time 1h
	var fresh []*hook.Message
	for i := range 3 {
		fresh = append(fresh, f.msg("opt/a", 1, fmt.Sprint("fresh", i)))
	}
	f.publish(append([]*hook.Message{expired}, fresh...)...)
	f.flush()
	wantIDs(t, "fetch with max_returned_count 2", f.fetch("x", "opt/#"), fresh[:2]...)

	g := newFixture(t, testConfig(t), func(r *hook.Rule) {
		if r.Action.Function == hook.OnMessageFetchForQueue {
			r.OfflineOpts = hook.OfflineOpts{TimeRange: time.Hour}
		}
	})
	old, young := g.msg("tr/a", 1, "old"), g.msg("tr/a", 1, "young")
	old.Timestamp = time.Now().Add(-2 * time.Hour)
	g.publish(old, young)
	g.flush()
	wantIDs(t, "fetch with time_range 1h", g.fetch("x", "tr/a"), young)
	if f.s.NativeTTL() {
		t.Log("the server has native TTL")
	}
}

// TestSecretNeverShown: the secret key appears neither in errors nor in logs, nor in a
// printed Config.
func TestSecretNeverShown(t *testing.T) {
	t.Parallel()
	const secret = "TZt7XoRi+vtCJYQ9YsAinh19jR1rngm/hxZMWR2P"
	var logs bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := dynamostore.Config{
		Region: "us-east-1", Endpoint: "http://127.0.0.1:1", // nothing listens
		AccessKeyID: "AKIAU5IM2XOC7AQWG7HK", SecretAccessKey: secret,
		Options: backend.Options{Logger: logger, Retry: backend.Retry{MaxAttempts: 2, MinBackoff: time.Millisecond}},
	}
	var errs []string
	for _, v := range []string{"%v", "%+v", "%#v", "%s"} {
		errs = append(errs, fmt.Sprintf(v, cfg))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := dynamostore.Open(ctx, cfg); err == nil {
		t.Fatal("Open on a closed port succeeded")
	} else {
		errs = append(errs, err.Error())
	}
	pool := backend.NewPool("pool1", map[string]string{
		"server": "http://127.0.0.1:1", "aws_access_key_id": "AKIAU5IM2XOC7AQWG7HK", "aws_secret_access_key": secret,
	})
	settings := backend.NewPool("dynamo", map[string]string{"region": "us-east-1"}).Settings
	if _, err := backend.Open(ctx, backend.PoolConfig{Store: "dynamo", Pool: pool, Settings: settings, Options: cfg.Options}); err == nil {
		t.Fatal("backend.Open on a closed port succeeded")
	} else {
		errs = append(errs, err.Error())
	}
	// A store whose endpoint goes away: its failed writes are logged.
	env, ft := faultyConfig(t)
	env.AccessKeyID, env.SecretAccessKey = "AKIAU5IM2XOC7AQWG7HK", secret
	env.Options.Logger, env.Options.Retry.MaxAttempts = logger, 2
	s := open(t, env)
	ft.set(func(f *faults) { f.down = true })
	if err := s.Ping(ctx); err == nil {
		t.Error("Ping succeeded with the endpoint down")
	} else {
		errs = append(errs, err.Error())
	}
	a, _ := s.Prepare(&hook.Rule{Name: "p", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	_ = a.(hook.WriteAction).Write(ctx, &hook.PublishEvent{Message: &hook.Message{ID: "x1", Topic: "t", QoS: 1, Timestamp: time.Now()}})
	if err := s.Flush(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	if st := s.Stats(); st.Failed != 1 {
		t.Errorf("stats %+v; want the write failed (MaxAttempts 2, endpoint down)", st)
	}
	if err := s.Close(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "writes failed") {
		t.Errorf("no failed write was logged: %s", logs.String())
	}
	for _, e := range append(errs, logs.String()) {
		if strings.Contains(e, secret) || strings.Contains(e, "TZt7XoRi") {
			t.Errorf("the secret key is shown: %s", e)
		}
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
