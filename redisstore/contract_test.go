package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/hook"
)

// The tests of contract v2 (issue 9): registration without side effects, unknown options,
// ack positions that only move forward, and several brokers writing one Redis.

func rule(name string, p hook.Point, fn string, mods ...func(*hook.Rule)) hook.Rule {
	r := hook.Rule{Name: name, Point: p, Topic: "#", Action: hook.RuleAction{Function: fn}}
	for _, m := range mods {
		m(&r)
	}
	return r
}

// TestFailedRegistrationLeavesNoTrace registers, through a hook.Dispatcher, a rule storing
// messages with expired_time followed by a rule the store does not support: the
// registration fails, and the first rule's expiry must not reach the store. A later
// registration of the same function without expired_time stores messages that outlive it.
func TestFailedRegistrationLeavesNoTrace(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	ctx := context.Background()
	d := hook.NewDispatcher(hook.DispatcherOptions{})
	const ttl = 300 * time.Millisecond
	err := d.Register(ctx, "redis", s,
		rule("expiring", hook.MessagePublish, hook.OnMessagePublish, func(r *hook.Rule) { r.ExpiredTime = ttl }),
		rule("unsupported", hook.SessionSubscribed, hook.OnMessageFetch),
	)
	if !errors.Is(err, hook.ErrUnsupported) {
		t.Fatalf("Register with on_message_fetch: %v; want an error wrapping hook.ErrUnsupported", err)
	}
	if s.ttlRules.Load() || s.maxTTL.Load() != 0 {
		t.Errorf("after the failed registration the store keeps its expiry: ttlRules %v, maxTTL %v",
			s.ttlRules.Load(), time.Duration(s.maxTTL.Load()))
	}

	if err := d.Register(ctx, "redis", s,
		rule("keep", hook.MessagePublish, hook.OnMessagePublish),
		rule("fetch", hook.SessionSubscribed, hook.OnMessageFetchForPubsub),
	); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	m := &hook.Message{ID: d.IDs().Next(), Topic: "reg/a", QoS: 1, Payload: []byte("kept"), Timestamp: time.Now()}
	if err := d.MessagePublish(ctx, &hook.PublishEvent{Message: m}); err != nil {
		t.Fatal(err)
	}
	flushStore(t, s)
	time.Sleep(2 * ttl)
	res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "c1", Topic: "reg/#", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Offline) != 1 || res.Offline[0].ID != m.ID {
		t.Errorf("fetch %v after twice the failed rule's expired_time = %v; want the message stored without expiry, %s", 2*ttl, res.Offline, m.ID)
	}
	if pttl, err := s.client.PTTL(ctx, s.k.msg(m.ID)).Result(); err != nil || pttl != -1 {
		t.Errorf("PTTL %s = %v, %v; want none (-1)", s.k.msg(m.ID), pttl, err)
	}
	if st := s.Stats(); st.Success == 0 {
		t.Errorf("stats %+v: nothing written", st)
	}
}

// TestRegisterErrorsNameOnce checks, through a hook.Dispatcher, that a rule the store refuses
// gives one error naming the backend, the rule and the field or key at fault once each; an
// unknown option ("expire_time", a typo of expired_time) among them.
func TestRegisterErrorsNameOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	cases := []struct {
		rule  hook.Rule
		field string
		want  error
	}{
		{rule("rule-typo", hook.MessagePublish, hook.OnMessagePublish, func(r *hook.Rule) {
			r.Options = map[string]json.RawMessage{"expire_time": json.RawMessage("3600")}
		}), "expire_time", hook.ErrUnknownOption},
		{rule("rule-fetch", hook.SessionSubscribed, hook.OnMessageFetch), "action.function", hook.ErrUnsupported},
		{hook.Rule{Name: "rule-sql", Point: hook.MessagePublish, Action: hook.RuleAction{SQL: []string{"SELECT 1"}}}, "action.sql", hook.ErrUnsupported},
		{hook.Rule{Name: "rule-cmd", Point: hook.MessagePublish, Action: hook.RuleAction{Commands: []string{"SET k ${nosuch}"}}}, "action.commands[0]", nil},
		{hook.Rule{Name: "rule-sub", Point: hook.MessagePublish, Action: hook.RuleAction{Commands: []string{"SUBSCRIBE ch"}}}, "action.commands[0]", hook.ErrUnsupported},
	}
	for _, c := range cases {
		d := hook.NewDispatcher(hook.DispatcherOptions{})
		ok := rule("rule-ok", hook.MessagePublish, hook.OnMessageStore)
		err := d.Register(context.Background(), "redis-backend", s, ok, c.rule)
		if err == nil {
			t.Errorf("%s: Register accepted it", c.rule.Name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: %v; want an error wrapping %v", c.rule.Name, err, c.want)
		}
		var re *hook.RuleError
		if !errors.As(err, &re) || re.Backend != "redis-backend" || re.Rule != c.rule.Name || re.Field != c.field {
			t.Errorf("%s: %v (%#v); want a *hook.RuleError for backend redis-backend, rule %s, field %s", c.rule.Name, err, re, c.rule.Name, c.field)
		}
		msg := err.Error()
		for _, name := range []string{"redis-backend", c.rule.Name, c.field} {
			if n := strings.Count(msg, name); n != 1 {
				t.Errorf("%s: %q names %q %d times; want once", c.rule.Name, msg, name, n)
			}
		}
		if strings.Count(msg, "hook:") != 1 {
			t.Errorf("%s: %q: want one \"hook:\" prefix", c.rule.Name, msg)
		}
	}
}

// TestActionErrorsNameOnce: a write the store refuses, dispatched through a hook.Dispatcher,
// fails with hook.ErrInvalidEvent, and the error names the backend and the rule once each (the
// dispatcher's *hook.ActionError names them; the store's own message does not repeat them).
func TestActionErrorsNameOnce(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	d := hook.NewDispatcher(hook.DispatcherOptions{})
	ctx := context.Background()
	if err := d.Register(ctx, "redis-backend", s, rule("rule-ack", hook.MessageAcked, hook.OnMessageAckedForQueue)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	err := d.MessageAcked(ctx, &hook.AckedEvent{ClientID: "c1", Message: &hook.Message{Topic: "t/1", QoS: 1}})
	if !errors.Is(err, hook.ErrInvalidEvent) {
		t.Fatalf("ack of a message without an ID: %v; want an error wrapping %v", err, hook.ErrInvalidEvent)
	}
	msg := err.Error()
	for _, name := range []string{"redis-backend", "rule-ack"} {
		if n := strings.Count(msg, name); n != 1 {
			t.Errorf("%q names %q %d times; want once", msg, name, n)
		}
	}
}

// TestAckPositionOnlyMovesForward acks m3 then m1 (in separate batches, then in one) and
// checks that the position stays at m3, for _for_pubsub and _keep_latest, on every
// deployment.
func TestAckPositionOnlyMovesForward(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := context.Background()
			pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
			ack := mustWriter(t, s, hook.MessageAcked, hook.OnMessageAckedForPubsub)
			fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForPubsub)
			latest := mustWriter(t, s, hook.MessagePublish, hook.OnMessageStoreKeepLatest)
			latestAck := mustWriter(t, s, hook.MessageAcked, hook.OnMessageAckedForKeepLatest)
			ids := hook.NewIDGenerator("t")
			var m [4]*hook.Message
			for i := range m {
				m[i] = &hook.Message{ID: ids.Next(), Topic: "fwd/a", QoS: 2, Payload: fmt.Appendf(nil, "m%d", i), Timestamp: time.Now()}
				mustWrite(t, pub, &hook.PublishEvent{Message: m[i]})
				mustWrite(t, latest, &hook.PublishEvent{Message: m[i]})
			}
			flushStore(t, s)
			position := func(client string) string {
				t.Helper()
				v, err := s.client.Get(ctx, s.k.acked(client, "fwd/a")).Result()
				if err != nil && !errors.Is(err, redis.Nil) {
					t.Fatal(err)
				}
				return v
			}
			for _, w := range []struct {
				name string
				ack  hook.WriteAction
			}{{"pubsub", ack}, {"keep_latest", latestAck}} {
				apart, together := w.name+"-apart", w.name+"-together"
				mustWrite(t, w.ack, &hook.AckedEvent{ClientID: apart, Message: m[2]})
				flushStore(t, s)
				mustWrite(t, w.ack, &hook.AckedEvent{ClientID: apart, Message: m[0]}) // a late QoS 2 ack
				mustWrite(t, w.ack, &hook.AckedEvent{ClientID: together, Message: m[2]}, &hook.AckedEvent{ClientID: together, Message: m[0]})
				flushStore(t, s)
				for _, c := range []string{apart, together} {
					if got := position(c); got != m[2].ID {
						t.Errorf("%s position after acking m2 then m0 = %q, want m2 %q", c, got, m[2].ID)
					}
				}
			}
			if got := fetchIDs(t, fetch, "pubsub-apart", "fwd/a"); !equalStrings(got, []string{m[3].ID}) {
				t.Errorf("fetch after acking m2 then m0 = %v, want [m3 %s]", got, m[3].ID)
			}
			mustWrite(t, ack, &hook.AckedEvent{ClientID: "pubsub-apart", Message: m[3]})
			flushStore(t, s)
			if got := position("pubsub-apart"); got != m[3].ID {
				t.Errorf("position after acking m3 = %q, want %q", got, m[3].ID)
			}
		})
	}
}

// openTwin opens a second store on s's keys: another broker on the same Redis.
func openTwin(t *testing.T, s *Store) *Store {
	t.Helper()
	b := openStore(t, s.cfg)
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// TestLateMessageOfAnotherBroker: broker B stores a message, a subscriber fetches and acks
// it; then broker A's message, whose ID was made before B's (it waited in A's queue), reaches
// Redis. The next fetch must return it: the order a fetch sees is the order writes reached
// Redis, not the order of the IDs.
func TestLateMessageOfAnotherBroker(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			a := newStore(t, d)
			b := openTwin(t, a)
			pubA := mustWriter(t, a, hook.MessagePublish, hook.OnMessagePublish)
			pubB := mustWriter(t, b, hook.MessagePublish, hook.OnMessagePublish)
			ackB := mustWriter(t, b, hook.MessageAcked, hook.OnMessageAckedForPubsub)
			fetchB := mustLookup(t, b, hook.SessionSubscribed, hook.OnMessageFetchForPubsub)
			queueB := mustLookup(t, b, hook.SessionSubscribed, hook.OnMessageFetchForQueue)
			older := &hook.Message{ID: hook.NewIDGenerator("node-a").Next(), Topic: "late/t", QoS: 1, Payload: []byte("from A"), Timestamp: time.Now()}
			newer := &hook.Message{ID: hook.NewIDGenerator("node-b").Next(), Topic: "late/t", QoS: 1, Payload: []byte("from B"), Timestamp: time.Now()}
			if older.ID >= newer.ID {
				t.Fatalf("IDs %s, %s: want the first made first", older.ID, newer.ID)
			}
			mustWrite(t, pubB, &hook.PublishEvent{Message: newer})
			flushStore(t, b)
			if got := fetchIDs(t, fetchB, "sub", "late/#"); !equalStrings(got, []string{newer.ID}) {
				t.Fatalf("first fetch = %v, want B's message %s", got, newer.ID)
			}
			mustWrite(t, ackB, &hook.AckedEvent{ClientID: "sub", Message: newer})
			flushStore(t, b)
			mustWrite(t, pubA, &hook.PublishEvent{Message: older})
			flushStore(t, a)
			if got := fetchIDs(t, fetchB, "sub", "late/#"); !equalStrings(got, []string{older.ID}) {
				t.Fatalf("fetch after A's late message = %v, want it, %s", got, older.ID)
			}
			mustWrite(t, ackB, &hook.AckedEvent{ClientID: "sub", Message: older})
			flushStore(t, b)
			if got := fetchIDs(t, fetchB, "sub", "late/#"); len(got) != 0 {
				t.Fatalf("fetch after acking both = %v, want none", got)
			}
			// The queue returns the messages in the order they reached Redis too.
			if got := fetchIDs(t, queueB, "q", "late/t"); !equalStrings(got, []string{newer.ID, older.ID}) {
				t.Fatalf("queue fetch = %v, want B's then A's message", got)
			}
		})
	}
}

// TestTwoWriters has two stores on one namespace (two brokers on one Redis), each with
// publishers whose messages wait a random while between getting their ID and being written,
// and a subscriber that fetches through either store and acks what it gets, meanwhile:
// every message must reach it exactly once.
func TestTwoWriters(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			testTwoWriters(t, d)
		})
	}
}

func testTwoWriters(t *testing.T, d deployment) {
	const perPublisher, topics = 150, 3
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	a := newStore(t, d)
	stores := []*Store{a, openTwin(t, a)}
	type broker struct {
		s     *Store
		pub   hook.WriteAction
		ack   hook.WriteAction
		fetch hook.LookupAction
		ids   *hook.IDGenerator
	}
	brokers := make([]broker, len(stores))
	for i, s := range stores {
		brokers[i] = broker{s: s,
			pub:   mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish),
			ack:   mustWriter(t, s, hook.MessageAcked, hook.OnMessageAckedForPubsub),
			fetch: mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForPubsub),
			ids:   hook.NewIDGenerator(fmt.Sprint("node", i)),
		}
	}
	var (
		mu        sync.Mutex
		published = make(map[string]bool)
		wg        sync.WaitGroup
	)
	for i := range brokers {
		for p := range 2 {
			wg.Go(func() {
				b := brokers[i]
				rng := rand.New(rand.NewPCG(seed, uint64(2*i+p)))
				for k := range perPublisher {
					m := &hook.Message{ID: b.ids.Next(), From: fmt.Sprintf("pub%d-%d", i, p), Topic: fmt.Sprint("tw/", rng.IntN(topics)),
						QoS: 1, Payload: fmt.Appendf(nil, "%d-%d-%d", i, p, k), Timestamp: time.Now()}
					// Held back between getting its ID and reaching the store's queue, as a
					// busy broker or a full queue would.
					time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					mu.Lock()
					published[m.ID] = true
					mu.Unlock()
					if err := b.pub.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()

	received := make(map[string]int)
	receive := func(round int) int {
		b := brokers[round%len(brokers)]
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		res, err := b.fetch.Lookup(ctx, &hook.SubscribedEvent{ClientID: "sub", Topic: "tw/#", QoS: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range res.Offline {
			received[m.ID]++
			mustWrite(t, b.ack, &hook.AckedEvent{ClientID: "sub", Message: m})
		}
		flushStore(t, b.s) // the acks are written before the next fetch
		return len(res.Offline)
	}
	round := 0
	for running := true; running; round++ {
		select {
		case <-done:
			running = false
		default:
		}
		receive(round)
	}
	for _, b := range brokers {
		flushStore(t, b.s)
	}
	for receive(round) > 0 {
		round++
	}
	if t.Failed() {
		return
	}
	for id := range published {
		if received[id] != 1 {
			t.Errorf("message %s received %d times, want once", id, received[id])
		}
	}
	for id, n := range received {
		if !published[id] {
			t.Errorf("message %s received %d times, never published", id, n)
		}
	}
	t.Logf("%d messages in %d fetches", len(published), round)
}

// TestConcurrentAcksOfOneClient acks one client's messages in random order through two
// stores at once (a client that reconnected to another broker while its acks were queued):
// the position ends at the newest message, however the swaps of the two raced.
func TestConcurrentAcksOfOneClient(t *testing.T) {
	for _, d := range []deployment{deployments[0], deployments[2]} {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			a := newStore(t, d)
			b := openTwin(t, a)
			pub := mustWriter(t, a, hook.MessagePublish, hook.OnMessagePublish)
			acks := []hook.WriteAction{
				mustWriter(t, a, hook.MessageAcked, hook.OnMessageAckedForPubsub),
				mustWriter(t, b, hook.MessageAcked, hook.OnMessageAckedForPubsub),
			}
			ids := hook.NewIDGenerator("t")
			msgs := make([]*hook.Message, 200)
			for i := range msgs {
				msgs[i] = &hook.Message{ID: ids.Next(), Topic: "race/t", QoS: 1, Payload: []byte("p"), Timestamp: time.Now()}
				mustWrite(t, pub, &hook.PublishEvent{Message: msgs[i]})
			}
			flushStore(t, a)
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			order := rng.Perm(len(msgs))
			var wg sync.WaitGroup
			for w := range acks {
				wg.Go(func() {
					for k, i := range order {
						if k%2 == w {
							if err := acks[w].Write(context.Background(), &hook.AckedEvent{ClientID: "c", Message: msgs[i]}); err != nil {
								t.Error(err)
							}
						}
					}
				})
			}
			wg.Wait()
			flushStore(t, a)
			flushStore(t, b)
			last := msgs[len(msgs)-1].ID
			if got, err := a.client.Get(context.Background(), a.k.acked("c", "race/t")).Result(); err != nil || got != last {
				t.Errorf("position = %q, %v; want the newest message %q", got, err, last)
			}
		})
	}
}

// TestPositionEdges: an ack of a message not in the topic's set moves nothing; a position
// whose message is no longer in the set is passed by the next ack, and a fetch from it
// returns every message the set holds.
func TestPositionEdges(t *testing.T) {
	t.Parallel()
	s := newStore(t, single)
	ctx := context.Background()
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	ack := mustWriter(t, s, hook.MessageAcked, hook.OnMessageAckedForPubsub)
	fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForPubsub)
	ids := hook.NewIDGenerator("t")
	msg := func() *hook.Message {
		return &hook.Message{ID: ids.Next(), Topic: "edge/t", QoS: 1, Payload: []byte("p"), Timestamp: time.Now()}
	}
	m1, m2, never, m3 := msg(), msg(), msg(), msg()
	mustWrite(t, pub, &hook.PublishEvent{Message: m1}, &hook.PublishEvent{Message: m2}, &hook.PublishEvent{Message: m3})
	mustWrite(t, ack, &hook.AckedEvent{ClientID: "c", Message: m1})
	flushStore(t, s)
	mustWrite(t, ack, &hook.AckedEvent{ClientID: "c", Message: never})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c", "edge/t"); !equalStrings(got, []string{m2.ID, m3.ID}) {
		t.Fatalf("fetch after acking a message never stored = %v, want [m2 m3]", got)
	}
	// m1 leaves the set (as an expired message does): the position names nothing there.
	if err := s.client.ZRem(ctx, s.k.topic("edge/t"), m1.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if got := fetchIDs(t, fetch, "c", "edge/t"); !equalStrings(got, []string{m2.ID, m3.ID}) {
		t.Fatalf("fetch from a position whose message is gone = %v, want all that is left, [m2 m3]", got)
	}
	mustWrite(t, ack, &hook.AckedEvent{ClientID: "c", Message: m2})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c", "edge/t"); !equalStrings(got, []string{m3.ID}) {
		t.Fatalf("fetch after acking m2 = %v, want [m3]", got)
	}
}

// TestScriptsReloaded flushes the server's scripts (as a restart or a failover does) under a
// store: its writes, acks and fetches load them again and go on.
func TestScriptsReloaded(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t, false)
	s := openStore(t, Config{Addrs: []string{srv.addr}, Options: testOptions})
	defer s.Close(context.Background())
	ctx := context.Background()
	pub := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	ack := mustWriter(t, s, hook.MessageAcked, hook.OnMessageAckedForPubsub)
	fetch := mustLookup(t, s, hook.SessionSubscribed, hook.OnMessageFetchForPubsub)
	ids := hook.NewIDGenerator("t")
	m1 := &hook.Message{ID: ids.Next(), Topic: "nos/t", QoS: 1, Payload: []byte("1"), Timestamp: time.Now()}
	m2 := &hook.Message{ID: ids.Next(), Topic: "nos/t", QoS: 1, Payload: []byte("2"), Timestamp: time.Now()}
	flushScripts := func() {
		t.Helper()
		if err := s.client.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	flushScripts()
	mustWrite(t, pub, &hook.PublishEvent{Message: m1}, &hook.PublishEvent{Message: m2})
	flushStore(t, s)
	flushScripts()
	if got := fetchIDs(t, fetch, "c", "nos/#"); !equalStrings(got, []string{m1.ID, m2.ID}) {
		t.Fatalf("fetch = %v, want [m1 m2]", got)
	}
	flushScripts()
	mustWrite(t, ack, &hook.AckedEvent{ClientID: "c", Message: m1})
	flushStore(t, s)
	if got := fetchIDs(t, fetch, "c", "nos/#"); !equalStrings(got, []string{m2.ID}) {
		t.Fatalf("fetch after acking m1 = %v, want [m2]", got)
	}
}
