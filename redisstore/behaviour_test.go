package redisstore

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// single is the single-server deployment.
var single = deployments[0]

func flushStore(t *testing.T, s *Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Failed != 0 {
		t.Fatalf("failed writes: %+v", st)
	}
}

func mustWrite(t *testing.T, w hook.WriteAction, events ...hook.Event) {
	t.Helper()
	for _, e := range events {
		if err := w.Write(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
}

func fetchIDs(t *testing.T, l hook.LookupAction, client, filter string) []string {
	t.Helper()
	res, err := l.Lookup(context.Background(), &hook.SubscribedEvent{ClientID: client, Topic: filter, QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range res.Offline {
		ids = append(ids, m.ID)
	}
	return ids
}

func equalStrings(a, b []string) bool { return slices.Equal(a, b) }

func TestCustomCommands(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	ctx := context.Background()
	prepare := func(cmds ...string) (hook.Action, error) {
		return s.Prepare(&hook.Rule{Name: "backend.redis.hook.message.publish.9", Point: hook.MessagePublish, Action: hook.RuleAction{Commands: cmds}})
	}
	a, err := prepare(
		"MSET k1:${clientid} ${topic} k2:${msgid} ${qos}", // keys at 1 and 3 get the prefix
		"HSET h:${clientid} ${topic} ${payload}",          // the field and the value do not
		"SET p:${msgid} ${payload}",
	)
	if err != nil {
		t.Fatal(err)
	}
	m := &hook.Message{ID: "id1", From: "c1", Topic: "a b/c", QoS: 2, Payload: []byte("two words\nand a NUL \x00 and \xff"), Timestamp: time.Now()}
	mustWrite(t, a.(hook.WriteAction), &hook.PublishEvent{Message: m})
	flushStore(t, s)
	p := s.k.prefix
	for key, want := range map[string]string{p + "k1:c1": "a b/c", p + "k2:id1": "2", p + "p:id1": string(m.Payload)} {
		if got, err := s.client.Get(ctx, key).Result(); err != nil || got != want {
			t.Errorf("GET %s = %q, %v; want %q", key, got, err, want)
		}
	}
	if got, err := s.client.HGet(ctx, p+"h:c1", "a b/c").Result(); err != nil || got != string(m.Payload) {
		t.Errorf("HGET %sh:c1 %q = %q, %v; want the payload", p, "a b/c", got, err)
	}

	refused := map[string]string{
		"SUBSCRIBE ch":                "SUBSCRIBE cannot run in a write pipeline",
		"blpop l 0":                   "blpop cannot run",
		"EVAL return 1 1 k:${msgid}":  "eval under a key prefix",
		"OBJECT ENCODING k:${msgid}":  "object under a key prefix",
		"NOSUCHCOMMAND k":             `unknown command "nosuchcommand"`,
		"${clientid} k":               "placeholder in the command name",
		"SET k:${clientid} ${nosuch}": "unknown variable ${nosuch}",
	}
	for cmd, want := range refused {
		_, err := prepare("SET ok 1", cmd)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "backend.redis.hook.message.publish.9") ||
			!strings.Contains(err.Error(), "action.commands[1]") {
			t.Errorf("Prepare(%q) error %v; want one naming the rule, the command and saying %q", cmd, err, want)
		}
	}
}

// TestUnsubscribeCommand runs the spec's session.unsubscribed command, which resets the
// pubsub position of the exact topic.
func TestUnsubscribeCommand(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	ack := mustWriter(t, s, hook.MessageAcked, hook.OnMessageAckedForPubsub)
	fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForPubsub)
	a, err := s.Prepare(&hook.Rule{Name: "unsub", Point: hook.SessionUnsubscribed, Topic: "#",
		Action: hook.RuleAction{Commands: []string{"DEL mqtt:acked:${clientid}:${topic}"}}})
	if err != nil {
		t.Fatal(err)
	}
	ids := hook.NewIDGenerator("t")
	m1 := &hook.Message{ID: ids.Next(), Topic: "pubsub/a", QoS: 1, Payload: []byte("1")}
	m2 := &hook.Message{ID: ids.Next(), Topic: "pubsub/a", QoS: 1, Payload: []byte("2")}
	mustWrite(t, pub, &hook.PublishEvent{Message: m1}, &hook.PublishEvent{Message: m2})
	mustWrite(t, ack, &hook.AckedEvent{ClientID: "c1", Message: m1})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c1", "pubsub/a"); !equalStrings(got, []string{m2.ID}) {
		t.Fatalf("fetch after acking m1 = %v, want [m2]", got)
	}
	mustWrite(t, a.(hook.WriteAction), &hook.UnsubscribedEvent{ClientID: "c1", Topic: "pubsub/a"})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c1", "pubsub/a"); !equalStrings(got, []string{m1.ID, m2.ID}) {
		t.Fatalf("fetch after unsubscribing = %v, want [m1 m2]", got)
	}
}

// TestQueueCleanup checks what the queue leaves behind: nothing once every message is acked,
// even when a message is acked in the same batch it is stored in, and the topic index entry
// of an emptied queue is dropped by the next wildcard fetch and comes back with a new message.
func TestQueueCleanup(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	ctx := context.Background()
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	ack := mustWriter(t, s, hook.MessageAcked, hook.OnMessageAckedForQueue)
	fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForQueue)
	ids := hook.NewIDGenerator("t")
	msg := func(topic string) *hook.Message {
		return &hook.Message{ID: ids.Next(), Topic: topic, QoS: 1, Payload: []byte("p")}
	}
	// Stored and acked before any flush: one batch.
	quick := msg("queue/a")
	mustWrite(t, pub, &hook.PublishEvent{Message: quick})
	mustWrite(t, ack, &hook.AckedEvent{ClientID: "c1", Message: quick})
	kept := msg("queue/b")
	mustWrite(t, pub, &hook.PublishEvent{Message: kept})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c2", "queue/#"); !equalStrings(got, []string{kept.ID}) {
		t.Fatalf("fetch = %v, want only %s", got, kept.ID)
	}
	for _, key := range []string{s.k.msg(quick.ID), s.k.topic("queue/a")} {
		if n, _ := s.client.Exists(ctx, key).Result(); n != 0 {
			t.Errorf("%s exists after its message was acked", key)
		}
	}
	mustWrite(t, ack, &hook.AckedEvent{ClientID: "c2", Message: kept})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c2", "queue/#"); len(got) != 0 {
		t.Fatalf("fetch after acking everything = %v", got)
	}
	if idx, _ := s.client.ZRange(ctx, s.k.msgIndex(), 0, -1).Result(); len(idx) != 0 {
		t.Errorf("the topic index still holds %v after every queue was emptied and fetched", idx)
	}
	again := msg("queue/a")
	mustWrite(t, pub, &hook.PublishEvent{Message: again})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c2", "queue/+"); !equalStrings(got, []string{again.ID}) {
		t.Fatalf("fetch of a queue stored again = %v, want %s", got, again.ID)
	}
}

// TestExpiryCleanup checks that expired messages leave neither their IDs in their topic's set
// nor their topics in the indexes once a wildcard lookup has seen them gone.
func TestExpiryCleanup(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	ctx := context.Background()
	ttl := func(r *hook.Rule) { r.ExpiredTime = 300 * time.Millisecond }
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish, ttl)
	keep := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	retain := mustWriter(t, s, hook.MessagePublish, hook.OnMessageRetain, ttl)
	fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForPubsub)
	retained := mustLookup(t, s, hook.SessionSubscribed, hook.OnRetainLookup)
	ids := hook.NewIDGenerator("t")
	m1 := &hook.Message{ID: ids.Next(), Topic: "exp/a", QoS: 1, Payload: []byte("1"), Retain: true}
	m2 := &hook.Message{ID: ids.Next(), Topic: "exp/b", QoS: 1, Payload: []byte("2")}
	m3 := &hook.Message{ID: ids.Next(), Topic: "exp/b", QoS: 1, Payload: []byte("3")}
	mustWrite(t, pub, &hook.PublishEvent{Message: m1}, &hook.PublishEvent{Message: m2})
	mustWrite(t, retain, &hook.PublishEvent{Message: m1})
	mustWrite(t, keep, &hook.PublishEvent{Message: m3}) // exp/b's set now holds a message without expiry
	flushStore(t, s)
	if ttl, _ := s.client.PTTL(ctx, s.k.topic("exp/a")).Result(); ttl <= 0 {
		t.Errorf("PTTL of exp/a's set = %v, want the expiry of its message", ttl)
	}
	if ttl, _ := s.client.PTTL(ctx, s.k.topic("exp/b")).Result(); ttl != -1 {
		t.Errorf("PTTL of exp/b's set = %v, want none: it holds a message without expiry", ttl)
	}
	time.Sleep(600 * time.Millisecond)
	if got := fetchIDs(t, fetch, "c1", "exp/#"); !equalStrings(got, []string{m3.ID}) {
		t.Fatalf("fetch after expiry = %v, want [%s]", got, m3.ID)
	}
	if got := fetchIDs(t, retained, "c1", "exp/#"); len(got) != 0 {
		t.Fatalf("retained lookup after expiry = %v", got)
	}
	if members, _ := s.client.ZRange(ctx, s.k.topic("exp/b"), 0, -1).Result(); !equalStrings(members, []string{m3.ID}) {
		t.Errorf("exp/b's set = %v after the fetch, want only %s", members, m3.ID)
	}
	if idx, _ := s.client.ZRange(ctx, s.k.msgIndex(), 0, -1).Result(); !equalStrings(idx, []string{"exp/b"}) {
		t.Errorf("message topic index = %v, want [exp/b]", idx)
	}
	if idx, _ := s.client.ZRange(ctx, s.k.retainIndex(), 0, -1).Result(); len(idx) != 0 {
		t.Errorf("retained topic index = %v, want empty", idx)
	}
}

func TestKeepLatestKeepsNewest(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	store := mustWriter(t, s, hook.MessagePublish, hook.OnMessageStoreKeepLatest)
	fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForKeepLatest)
	ids := hook.NewIDGenerator("t")
	older := &hook.Message{ID: ids.Next(), Topic: "k/a", QoS: 1, Payload: []byte("older")}
	newer := &hook.Message{ID: ids.Next(), Topic: "k/a", QoS: 1, Payload: []byte("newer")}
	mustWrite(t, store, &hook.PublishEvent{Message: newer})
	flushStore(t, s)
	mustWrite(t, store, &hook.PublishEvent{Message: older}) // from another node, late
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c1", "k/#"); !equalStrings(got, []string{newer.ID}) {
		t.Fatalf("fetch = %v, want the newer message %s", got, newer.ID)
	}
}

func TestLookupFilters(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForQueue)
	m := &hook.Message{ID: "m1", Topic: "queue/a", QoS: 1, Payload: []byte("p")}
	mustWrite(t, pub, &hook.PublishEvent{Message: m})
	flushStore(t, s)
	for _, f := range []string{"$queue/queue/a", "$share/g/queue/+", "$share/g/#"} {
		if got := fetchIDs(t, fetch, "c1", f); !equalStrings(got, []string{"m1"}) {
			t.Errorf("fetch of shared subscription %q = %v, want [m1]", f, got)
		}
	}
	_, err := fetch.Lookup(context.Background(), &hook.SubscribedEvent{ClientID: "c1", Topic: "queue/#/a"})
	var te *topic.Error
	// The rule is named by the dispatcher (*hook.ActionError), not by the store.
	if !errors.As(err, &te) || strings.Contains(err.Error(), "test."+hook.OnMessageFetchForQueue) {
		t.Errorf("lookup of an invalid filter: %v; want a *topic.Error, without the rule name", err)
	}
}

func TestSubscriptionLookupRefusesBadQoS(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	if err := s.client.HSet(context.Background(), s.k.sub("c1"), "a/b", "high").Err(); err != nil {
		t.Fatal(err)
	}
	_, err := mustLookup(t, s, hook.SessionCreated, hook.OnSubscribeLookup, noTopic).Lookup(context.Background(), &hook.SessionCreatedEvent{ClientID: "c1"})
	if err == nil || !strings.Contains(err.Error(), `QoS "high"`) {
		t.Errorf("lookup with a bad QoS in mqtt:sub: %v; want an error naming it", err)
	}
}

func TestWriteRefusesBadMessages(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	for _, m := range []*hook.Message{{Topic: "a", QoS: 1}, {ID: "x", QoS: 1}, {ID: "x", Topic: "a", QoS: 3}} {
		if err := pub.Write(context.Background(), &hook.PublishEvent{Message: m}); err == nil {
			t.Errorf("Write(%+v) accepted", m)
		}
	}
	if err := pub.Write(context.Background(), &hook.ConnectedEvent{ClientID: "c"}); err == nil {
		t.Error("Write of a client.connected event to on_message_publish accepted")
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Mode: Sentinel, Addrs: []string{"127.0.0.1:26379"}},
		{Mode: Cluster, Addrs: []string{"127.0.0.1:7000"}, DB: 1},
		{Mode: Single, Addrs: []string{"127.0.0.1:6379", "127.0.0.1:6380"}},
		{Mode: Cluster},
		{Mode: Mode(9), Addrs: []string{"x"}},
	} {
		if _, err := Open(context.Background(), cfg); !errors.Is(err, hook.ErrConfig) {
			t.Errorf("Open(%+v) error %v; want hook.ErrConfig", cfg, err)
		}
	}
	if _, err := ParseMode("galaxy"); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("ParseMode(galaxy): %v", err)
	}
	for _, m := range []Mode{Single, Sentinel, Cluster} {
		if got, err := ParseMode(strings.ToUpper(m.String())); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m, got, err)
		}
	}
}

func TestOpenClientKeepsClient(t *testing.T) {
	t.Parallel()
	cfg := configFor(t, single)
	c := redis.NewClient(&redis.Options{Addr: cfg.Addrs[0]})
	defer c.Close()
	s, err := OpenClient(context.Background(), c, Config{Prefix: cfg.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Errorf("the caller's client was closed: %v", err)
	}
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	if err := pub.Write(context.Background(), &hook.PublishEvent{Message: &hook.Message{ID: "x", Topic: "a", QoS: 1}}); !errors.Is(err, hook.ErrClosed) {
		t.Errorf("Write after Close: %v; want ErrClosed", err)
	}
}

// TestLexRange checks that the index range of a filter holds every topic the filter matches.
func TestLexRange(t *testing.T) {
	for filter, want := range map[string][2]string{
		"#":       {"-", "+"},
		"+/a":     {"-", "+"},
		"a/+":     {"[a/", "(a0"},
		"a/#":     {"[a", "(a0"},
		"a/b/+/c": {"[a/b/", "(a/b0"},
		"a//#":    {"[a/", "(a/0"},
		"/#":      {"[", "(0"},
	} {
		lo, hi := lexRange(filter)
		if lo != want[0] || hi != want[1] {
			t.Errorf("lexRange(%q) = %q, %q; want %q, %q", filter, lo, hi, want[0], want[1])
		}
	}
}

func FuzzLexRange(f *testing.F) {
	for _, s := range [][2]string{{"a/+", "a/b"}, {"a/#", "a"}, {"a/b/#", "a/b0"}, {"/#", "/"}, {"+/x", "y/x"}, {"a/+/c", "a//c"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, filter, name string) {
		if topic.ValidateFilter(filter) != nil || !strings.ContainsAny(filter, "+#") || !topic.Match(filter, name) {
			return
		}
		lo, hi := lexRange(filter)
		if lo == "-" {
			return
		}
		if lo[0] != '[' || hi[0] != '(' || name < lo[1:] || name >= hi[1:] {
			t.Fatalf("%q matches %q but lies outside lexRange %q, %q", filter, name, lo, hi)
		}
	})
}

// TestExpiringSetPruned checks that the set of a topic written with expired_time and never
// fetched drops the IDs of expired messages as new ones arrive, whatever their form (their
// age is their score, the server's time when they arrived), but not a member of score 1, as
// another writer following the spec gives.
func TestExpiringSetPruned(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	s.pruneSlack = 0
	ctx := context.Background()
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish, func(r *hook.Rule) { r.ExpiredTime = 300 * time.Millisecond })
	ids := hook.NewIDGenerator("t")
	foreign := &hook.Message{ID: "not-a-generated-id", Topic: "hot", QoS: 1, Payload: []byte("f")}
	old := &hook.Message{ID: ids.Next(), Topic: "hot", QoS: 1, Payload: []byte("1")}
	mustWrite(t, pub, &hook.PublishEvent{Message: foreign}, &hook.PublishEvent{Message: old})
	flushStore(t, s)
	if err := s.client.ZAdd(ctx, s.k.topic("hot"), redis.Z{Score: 1, Member: "spec-writer"}).Err(); err != nil {
		t.Fatal(err)
	}
	// New messages keep the set alive (its expiry is extended) while old expires.
	var last *hook.Message
	for range 6 {
		time.Sleep(100 * time.Millisecond)
		last = &hook.Message{ID: ids.Next(), Topic: "hot", QoS: 1, Payload: []byte("2")}
		mustWrite(t, pub, &hook.PublishEvent{Message: last})
		flushStore(t, s)
	}
	got, err := s.client.ZRange(ctx, s.k.topic("hot"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(got, old.ID) || slices.Contains(got, foreign.ID) {
		t.Errorf("set of hot = %v still holds %s or %s, which expired over 300ms ago", got, old.ID, foreign.ID)
	}
	if !slices.Contains(got, last.ID) || !slices.Contains(got, "spec-writer") {
		t.Errorf("set of hot = %v; want it to hold the last message %s, and the member of score 1", got, last.ID)
	}
	if len(got) > 5 {
		t.Errorf("set of hot holds %d IDs; the messages of the last 300ms are at most 4, with the member of score 1", len(got))
	}
}

// TestActionsRefuseNilEvents: an action called directly with a nil event pointer (the
// dispatcher refuses them before) returns an error wrapping hook.ErrInvalidEvent rather than
// panicking.
func TestActionsRefuseNilEvents(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	catch := func(name string, f func() error) {
		t.Helper()
		defer func() {
			if r := recover(); r != nil {
				t.Errorf("%s panicked: %v", name, r)
			}
		}()
		if err := f(); !errors.Is(err, hook.ErrInvalidEvent) {
			t.Errorf("%s: %v; want an error wrapping %v", name, err, hook.ErrInvalidEvent)
		}
	}
	cmds, err := s.Prepare(&hook.Rule{Name: "cmds", Point: hook.MessagePublish, Action: hook.RuleAction{Commands: []string{"SET k ${payload}"}}})
	if err != nil {
		t.Fatal(err)
	}
	catch("custom commands", func() error { return cmds.(hook.WriteAction).Write(context.Background(), (*hook.PublishEvent)(nil)) })
	for _, p := range []hook.Point{hook.SessionCreated, hook.ClientConnected} {
		sub := mustLookup(t, s, p, hook.OnSubscribeLookup, noTopic)
		var e hook.Event = (*hook.SessionCreatedEvent)(nil)
		if p == hook.ClientConnected {
			e = (*hook.ConnectedEvent)(nil)
		}
		catch("on_subscribe_lookup at "+p.String(), func() error {
			_, err := sub.Lookup(context.Background(), e)
			return err
		})
	}
}
