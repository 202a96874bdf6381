package mochihook

// These tests check the adapter's mechanics (which events it dispatches, what it delivers to
// whom, how it tracks acknowledgements) against a real mochi broker and a real MQTT client,
// with a recording backend in place of a store. Persistence with real stores is tested end to
// end in examples/broker.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/hook"
)

// recorder is a hook.Backend that records every event it is given and answers lookups with
// the functions the test sets.
type recorder struct {
	mu     sync.Mutex
	events []hook.Event
	subs   func(clientID string) []hook.Subscription                                // on_subscribe_lookup
	fetch  func(e *hook.SubscribedEvent, published []*hook.Message) []*hook.Message // on_message_fetch
	// offline makes fetch's messages all offline ones; otherwise those with the retain flag
	// are answered as retained messages (on_retain_lookup).
	offline bool
}

type writeFunc func(hook.Event) error

func (f writeFunc) Write(_ context.Context, e hook.Event) error { return f(e) }

type lookupFunc func(context.Context, hook.Event) (hook.Result, error)

func (f lookupFunc) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) { return f(ctx, e) }

func (r *recorder) Prepare(rule *hook.Rule) (hook.Action, error) {
	if !rule.IsLookup() {
		return writeFunc(func(e hook.Event) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, e)
			return nil
		}), nil
	}
	return lookupFunc(func(_ context.Context, e hook.Event) (hook.Result, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		switch e := e.(type) {
		case *hook.SessionCreatedEvent:
			r.events = append(r.events, e)
			if r.subs != nil {
				return hook.Result{Subscriptions: r.subs(e.ClientID)}, nil
			}
		case *hook.SubscribedEvent:
			r.events = append(r.events, e)
			if r.fetch != nil {
				// What a retained lookup would answer goes in Retained, the rest in Offline.
				var res hook.Result
				for _, m := range r.fetch(e, r.publishedLocked()) {
					if m.Retain && !r.offline {
						res.Retained = append(res.Retained, m)
					} else {
						res.Offline = append(res.Offline, m)
					}
				}
				return res, nil
			}
		}
		return hook.Result{}, nil
	}), nil
}

func (r *recorder) Close(context.Context) error { return nil }

func (r *recorder) publishedLocked() []*hook.Message {
	var msgs []*hook.Message
	for _, e := range r.events {
		if p, ok := e.(*hook.PublishEvent); ok {
			msgs = append(msgs, p.Message)
		}
	}
	return msgs
}

// find returns the recorded events of type E that keep returns true for.
func find[E hook.Event](r *recorder, keep func(E) bool) []E {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []E
	for _, e := range r.events {
		if e, ok := e.(E); ok && (keep == nil || keep(e)) {
			out = append(out, e)
		}
	}
	return out
}

var recorderRules = []hook.Rule{
	{Point: hook.ClientConnected, Action: hook.RuleAction{Function: hook.OnClientConnected}},
	{Point: hook.SessionCreated, Action: hook.RuleAction{Function: hook.OnSubscribeLookup}},
	{Point: hook.ClientDisconnected, Action: hook.RuleAction{Function: hook.OnClientDisconnected}},
	{Point: hook.SessionSubscribed, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageFetch}},
	{Point: hook.SessionUnsubscribed, Topic: "#", Action: hook.RuleAction{Function: hook.OnAckedDelete}},
	{Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageStore}},
	{Point: hook.MessageDeliver, Topic: "#", Action: hook.RuleAction{SQL: []string{"record"}}},
	{Point: hook.MessageAcked, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageAcked}},
}

type broker struct {
	addr   string
	server *mqtt.Server
	hook   *Hook
	rec    *recorder
}

func startBroker(t *testing.T, rec *recorder) *broker {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := hook.NewDispatcher(hook.DispatcherOptions{Logger: log, Node: "test"})
	if err := d.Register(context.Background(), "rec", rec, recorderRules...); err != nil {
		t.Fatal(err)
	}
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: log})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	h := New(server, d, Options{})
	if err := server.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		server.Close()
		d.Close(context.Background())
	})
	return &broker{addr: ln.Addr().String(), server: server, hook: h, rec: rec}
}

func TestPublishDeliverAck(t *testing.T) {
	b := startBroker(t, &recorder{})
	sub := mqtttest.Connect(t, b.addr, "sub", true)
	sub.MustSubscribe(t, "a/#", 2)
	pub := mqtttest.Connect(t, b.addr, "pub", true)
	for qos := range byte(3) {
		pub.MustPublish(t, fmt.Sprintf("a/%d", qos), qos, false, fmt.Sprintf("m%d", qos))
	}
	mqtttest.Eventually(t, "three messages", func() bool { return len(sub.Received()) == 3 })
	mqtttest.Eventually(t, "two acks", func() bool { return len(find[*hook.AckedEvent](b.rec, nil)) == 2 })

	published := find[*hook.PublishEvent](b.rec, nil)
	if len(published) != 3 {
		t.Fatalf("%d publish events, want 3", len(published))
	}
	ids := map[string]string{} // topic -> ID
	for _, p := range published {
		m := p.Message
		if len(m.ID) != hook.IDLen || m.From != "pub" || m.Peerhost != "127.0.0.1" || m.Node != "test" {
			t.Errorf("publish event %+v: want an ID, from pub, peerhost 127.0.0.1, node test", m)
		}
		ids[m.Topic] = m.ID
	}
	for _, e := range find[*hook.DeliverEvent](b.rec, nil) {
		if e.ClientID != "sub" || e.Message.ID != ids[e.Message.Topic] {
			t.Errorf("deliver event to %q of %s %q, want to sub with ID %q", e.ClientID, e.Message.Topic, e.Message.ID, ids[e.Message.Topic])
		}
	}
	if n := len(find[*hook.DeliverEvent](b.rec, nil)); n != 3 {
		t.Errorf("%d deliver events, want 3", n)
	}
	acked := find[*hook.AckedEvent](b.rec, nil)
	var ackedTopics []string
	for _, e := range acked {
		// The publisher's own QoS 1 and 2 publishes complete too: they must not count.
		if e.ClientID != "sub" || e.Message.ID != ids[e.Message.Topic] {
			t.Errorf("acked event by %q of %s %q, want by sub with ID %q", e.ClientID, e.Message.Topic, e.Message.ID, ids[e.Message.Topic])
		}
		ackedTopics = append(ackedTopics, e.Message.Topic)
	}
	slices.Sort(ackedTopics)
	if !slices.Equal(ackedTopics, []string{"a/1", "a/2"}) {
		t.Errorf("acked %v, want a/1 and a/2 (QoS 0 is not acknowledged)", ackedTopics)
	}
	if c := b.hook.conn(clientOf(t, b, "sub")); c == nil || c.tracked() != 0 {
		t.Errorf("connection state %v, want one tracking nothing", c)
	}
}

func clientOf(t *testing.T, b *broker, id string) *mqtt.Client {
	t.Helper()
	cl, ok := b.server.Clients.Get(id)
	if !ok {
		t.Fatalf("mochi has no client %q", id)
	}
	return cl
}

func TestStoredSubscriptionsApplied(t *testing.T) {
	rec := &recorder{subs: func(id string) []hook.Subscription {
		if id == "dev1" {
			return []hook.Subscription{{Topic: "cmd/dev1", QoS: 1}, {Topic: "bad/#/filter", QoS: 1}}
		}
		return nil
	}}
	b := startBroker(t, rec)
	dev := mqtttest.Connect(t, b.addr, "dev1", true)
	other := mqtttest.Connect(t, b.addr, "dev2", true)
	// The hook runs after the CONNACK, which ends Connect.
	mqtttest.Eventually(t, "the stored subscription in the client's state", func() bool {
		_, ok := clientOf(t, b, "dev1").State.Subscriptions.Get("cmd/dev1")
		return ok
	})
	other.MustPublish(t, "cmd/dev1", 1, false, "reboot")
	mqtttest.Eventually(t, "the command", func() bool { return len(dev.Received()) == 1 })
	if got := dev.Received()[0]; got != (mqtttest.Received{Topic: "cmd/dev1", Payload: "reboot", QoS: 1}) {
		t.Errorf("received %+v", got)
	}
	subscribed := find(rec, func(e *hook.SubscribedEvent) bool { return e.ClientID == "dev1" })
	if len(subscribed) != 1 || subscribed[0].Topic != "cmd/dev1" {
		t.Errorf("session.subscribed events %+v, want one for cmd/dev1", subscribed)
	}
	if len(other.Received()) != 0 {
		t.Errorf("dev2 received %v", other.Received())
	}
}

func TestStoredMessagesDelivered(t *testing.T) {
	stored := []*hook.Message{
		{ID: "id1", Topic: "x/1", QoS: 1, Payload: []byte("one"), UserProperties: []hook.UserProperty{{Key: "k", Value: "v"}, {Key: "k", Value: "w"}, {Key: "a", Value: "b"}}},
		{ID: "id2", Topic: "x/2", QoS: 2, Payload: []byte("two")},
		{ID: "id3", Topic: "x/1", QoS: 0, Payload: []byte("three")},
		{ID: "id4", Topic: "x/3", QoS: 1, Retain: true, Payload: []byte("four")},
	}
	rec := &recorder{fetch: func(e *hook.SubscribedEvent, _ []*hook.Message) []*hook.Message {
		if e.ClientID == "sub" {
			return stored
		}
		return nil
	}}
	b := startBroker(t, rec)
	other := mqtttest.Connect(t, b.addr, "other", true)
	other.MustSubscribe(t, "x/#", 1)
	sub := mqtttest.Connect(t, b.addr, "sub", true)
	sub.MustSubscribe(t, "x/#", 1)
	want := []mqtttest.Received{{Topic: "x/1", Payload: "one", QoS: 1}, {Topic: "x/2", Payload: "two", QoS: 1}, {Topic: "x/1", Payload: "three"}, {Topic: "x/3", Payload: "four", QoS: 1, Retain: true}}
	if got := sub.Barrier(t, "x/barrier"); !slices.Equal(got, want) {
		t.Errorf("received\n%v\nwant\n%v", got, want)
	}
	// QoS 0 (id3): its position is recorded when it is sent.
	mqtttest.Eventually(t, "four acks", func() bool { return len(find[*hook.AckedEvent](rec, nil)) == 4 })
	var acked []string
	for _, e := range find[*hook.AckedEvent](rec, nil) {
		acked = append(acked, e.ClientID+":"+e.Message.ID)
	}
	slices.Sort(acked)
	if want := []string{"sub:id1", "sub:id2", "sub:id3", "sub:id4"}; !slices.Equal(acked, want) {
		t.Errorf("acked %v, want %v", acked, want)
	}
	if got := other.Barrier(t, "x/barrier"); len(got) != 0 {
		t.Errorf("another subscriber received %v", got)
	}
}

// A stored message that was published with the retain flag is an offline message all the
// same: it goes to the established subscription with RETAIN 0 (MQTT-3.3.1-9), and a
// subscription with Retain Handling 2 (no retained messages) still gets it.
func TestOfflineMessagesCarryNoRetainFlag(t *testing.T) {
	rec := &recorder{offline: true, fetch: func(e *hook.SubscribedEvent, _ []*hook.Message) []*hook.Message {
		return []*hook.Message{{ID: "id1", Topic: "o/1", QoS: 1, Retain: true, Payload: []byte("stored while offline")}}
	}}
	b := startBroker(t, rec)
	sub := mqtttest.Connect(t, b.addr, "sub", true)
	sub.MustSubscribe(t, "o/#", 1)
	want := []mqtttest.Received{{Topic: "o/1", Payload: "stored while offline", QoS: 1}}
	if got := sub.Barrier(t, "o/barrier"); !slices.Equal(got, want) {
		t.Errorf("received %v, want %v (RETAIN 0)", got, want)
	}
}

func TestRetainedNotDuplicated(t *testing.T) {
	// The store returns the retained message that mochi also holds (same ID): the client gets
	// it once, from mochi; a retained message mochi does not hold (lost in a restart) comes
	// from the store.
	rec := &recorder{fetch: func(e *hook.SubscribedEvent, published []*hook.Message) []*hook.Message {
		return append(published, &hook.Message{ID: "old", Topic: "r/old", QoS: 1, Retain: true, Payload: []byte("from store")})
	}}
	b := startBroker(t, rec)
	if err := b.server.Publish("r/1", []byte("retained"), true, 1); err != nil {
		t.Fatal(err)
	}
	sub := mqtttest.Connect(t, b.addr, "sub", true)
	sub.MustSubscribe(t, "r/#", 1)
	got := sub.Barrier(t, "r/barrier")
	want := []mqtttest.Received{{Topic: "r/old", Payload: "from store", QoS: 1, Retain: true}, {Topic: "r/1", Payload: "retained", QoS: 1, Retain: true}}
	if !slices.Equal(got, want) {
		t.Errorf("received %v, want %v", got, want)
	}
}

func TestPersistentSessionNoDuplicates(t *testing.T) {
	// mochi keeps the session of a client with clean session false and queues its messages;
	// when the client reconnects mochi resends them, and when it subscribes again the store
	// returns the same messages: they are not sent a second time.
	rec := &recorder{fetch: func(e *hook.SubscribedEvent, published []*hook.Message) []*hook.Message {
		return published
	}}
	b := startBroker(t, rec)
	sub := mqtttest.Connect(t, b.addr, "sub", false)
	sub.MustSubscribe(t, "p/#", 1)
	sub.Disconnect(100)
	mqtttest.Eventually(t, "the disconnect", func() bool { return len(find[*hook.DisconnectedEvent](rec, nil)) == 1 })
	offline := clientOf(t, b, "sub")
	pub := mqtttest.Connect(t, b.addr, "pub", true)
	for i := range 5 {
		pub.MustPublish(t, "p/t", 1, false, fmt.Sprint(i))
	}
	// mochi acknowledges a publish before it queues it for subscribers.
	mqtttest.Eventually(t, "mochi to queue the messages", func() bool { return offline.State.Inflight.Len() == 5 })

	sub = mqtttest.Connect(t, b.addr, "sub", false)
	acks := func() int { return len(find(rec, func(e *hook.AckedEvent) bool { return e.ClientID == "sub" })) }
	mqtttest.Eventually(t, "the resent messages to be acknowledged", func() bool { return acks() == 5 })
	// Subscribing before the acknowledgements would make mochi refuse the SUBSCRIBE: it
	// checks the client's packet ID against the IDs of its own deliveries in flight.
	sub.MustSubscribe(t, "p/#", 1)
	var payloads []string
	for _, m := range sub.Barrier(t, "p/barrier") {
		payloads = append(payloads, m.Payload)
	}
	// After the barrier: session.subscribed is dispatched once the SUBACK is written.
	if n := len(find(rec, func(e *hook.SubscribedEvent) bool { return e.ClientID == "sub" })); n != 2 {
		t.Fatalf("%d session.subscribed events, want 2", n)
	}
	slices.Sort(payloads) // mochi resends a session's messages in no particular order
	if want := []string{"0", "1", "2", "3", "4"}; !slices.Equal(payloads, want) {
		t.Errorf("received %v, want each of %v once", payloads, want)
	}
	if n := len(find(rec, func(e *hook.SessionCreatedEvent) bool { return e.ClientID == "sub" })); n != 1 {
		t.Errorf("%d session.created events, want 1 (the second connection resumed the session)", n)
	}
}

func TestDuplicates(t *testing.T) {
	b := startBroker(t, &recorder{})
	cl := b.server.NewClient(nil, "t", "c", false)
	inflight := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 7}
	stamp(&inflight, &hook.Message{ID: "b-inflight", Topic: "t"})
	cl.State.Inflight.Set(inflight)
	c := newConn(cl, false)
	c.track(8, &hook.Message{ID: "b-tracked", Topic: "t"}, 10)
	c.track(9, &hook.Message{ID: "b-acked", Topic: "u"}, 10)
	if m := c.acked(9, 10); m == nil || m.ID != "b-acked" {
		t.Fatalf("acked(9) = %v", m)
	}
	retained := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true}, TopicName: "r", Payload: []byte("x")}
	stamp(&retained, &hook.Message{ID: "b-retained", Topic: "r"})
	b.server.Topics.RetainMessage(retained)

	for _, tc := range []struct {
		m              hook.Message
		mochiRetained  bool
		wantDuplicated bool
	}{
		{hook.Message{ID: "b-inflight", Topic: "t"}, true, true},
		{hook.Message{ID: "b-tracked", Topic: "t"}, true, true},
		{hook.Message{ID: "b-other", Topic: "t"}, true, false},
		{hook.Message{ID: "a-before", Topic: "u"}, true, true}, // at or before the acked position
		{hook.Message{ID: "b-acked", Topic: "u"}, true, true},
		{hook.Message{ID: "c-after", Topic: "u"}, true, false},
		{hook.Message{ID: "a-before", Topic: "v"}, true, false}, // another topic
		{hook.Message{ID: "b-retained", Topic: "r", Retain: true}, true, true},
		{hook.Message{ID: "b-retained", Topic: "r", Retain: true}, false, false}, // mochi will not send it
		{hook.Message{ID: "b-older", Topic: "r", Retain: true}, true, false},
		{hook.Message{Topic: "t"}, true, false}, // no ID: cannot tell
	} {
		if got := b.hook.duplicates(cl, c, tc.mochiRetained)(&tc.m); got != tc.wantDuplicated {
			t.Errorf("duplicates(%+v, mochi sends retained: %v) = %v, want %v", tc.m, tc.mochiRetained, got, tc.wantDuplicated)
		}
	}
}

func TestUnsubscribeAndDisconnect(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, rec)
	c := mqtttest.Connect(t, b.addr, "c", true)
	c.MustSubscribe(t, "a", 0)
	c.MustSubscribe(t, "b", 0)
	mqtttest.Wait(t, c.Unsubscribe("a"))
	c.Disconnect(100)
	mqtttest.Eventually(t, "the disconnect", func() bool { return len(find[*hook.DisconnectedEvent](rec, nil)) == 1 })
	// Ending the clean session drops "b" in mochi, which is not the client unsubscribing.
	unsub := find[*hook.UnsubscribedEvent](rec, nil)
	if len(unsub) != 1 || unsub[0].Topic != "a" || unsub[0].ClientID != "c" {
		t.Errorf("session.unsubscribed events %+v, want one for a", unsub)
	}
	if e := find[*hook.DisconnectedEvent](rec, nil)[0]; e.ClientID != "c" || e.Reason != "normal" || e.Node != "test" {
		t.Errorf("disconnected event %+v", e)
	}
	conn := find[*hook.ConnectedEvent](rec, nil)
	if len(conn) != 1 || conn[0].ClientID != "c" || conn[0].ProtoVer != 4 || !conn[0].CleanStart || conn[0].Peerhost != "127.0.0.1" {
		t.Errorf("connected events %+v", conn)
	}
	if _, ok := b.hook.conns.Load("c"); ok {
		t.Error("the connection's state outlived it")
	}
}

func TestTakeoverIsNotADisconnect(t *testing.T) {
	rec := &recorder{}
	b := startBroker(t, rec)
	first := mqtttest.Connect(t, b.addr, "c", false)
	second := mqtttest.Connect(t, b.addr, "c", false)
	mqtttest.Eventually(t, "the first connection to end", func() bool { return !first.IsConnectionOpen() })
	mqtttest.Eventually(t, "two connected events", func() bool { return len(find[*hook.ConnectedEvent](rec, nil)) == 2 })
	// mochi counts a connection out after its OnDisconnect.
	mqtttest.Eventually(t, "one connection left", func() bool { return atomic.LoadInt64(&b.server.Info.ClientsConnected) == 1 })
	if n := len(find[*hook.DisconnectedEvent](rec, nil)); n != 0 {
		t.Fatalf("%d disconnected events while the client is connected", n)
	}
	second.Disconnect(100)
	mqtttest.Eventually(t, "the disconnect", func() bool { return len(find[*hook.DisconnectedEvent](rec, nil)) == 1 })
}

func TestSubscribeUnsubscribe(t *testing.T) {
	rec := &recorder{fetch: func(e *hook.SubscribedEvent, _ []*hook.Message) []*hook.Message {
		// Returned for every subscription: the hook delivers what the filter matches only.
		return []*hook.Message{{ID: "s1", Topic: "ctl/x", QoS: 1, Payload: []byte("stored")}}
	}}
	b := startBroker(t, rec)
	c := mqtttest.Connect(t, b.addr, "c", true)
	c.MustSubscribe(t, "own", 0)
	if err := b.hook.Subscribe("c", hook.Subscription{Topic: "ctl/x", QoS: 1}); err != nil {
		t.Fatal(err)
	}
	want := []mqtttest.Received{{Topic: "ctl/x", Payload: "stored", QoS: 1}}
	if got := c.Barrier(t, "ctl/x"); !slices.Equal(got, want) {
		t.Errorf("after Subscribe: received %v, want %v", got, want)
	}
	if err := b.hook.Unsubscribe("c", "ctl/x"); err != nil {
		t.Fatal(err)
	}
	unsub := find[*hook.UnsubscribedEvent](rec, nil)
	if len(unsub) != 1 || unsub[0].ClientID != "c" || unsub[0].Topic != "ctl/x" {
		t.Errorf("session.unsubscribed events %+v", unsub)
	}
	c.MustPublish(t, "ctl/x", 0, false, "after unsubscribe")
	if got := c.Barrier(t, "own"); !slices.Equal(got, want) {
		t.Errorf("received %v, want nothing after unsubscribing", got)
	}
	for _, err := range []error{
		b.hook.Subscribe("nobody", hook.Subscription{Topic: "a"}),
		b.hook.Unsubscribe("nobody", "a"),
	} {
		if !errors.Is(err, ErrNotConnected) {
			t.Errorf("error %v, want ErrNotConnected", err)
		}
	}
	if err := b.hook.Subscribe("c", hook.Subscription{Topic: "a/#/b"}); err == nil {
		t.Error("Subscribe to an invalid filter: no error")
	}
}
