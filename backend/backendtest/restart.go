package backendtest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// testRestart checks that closing a backend and opening its namespace again (a broker
// restart) keeps everything the store records: client state, subscriptions, stored
// messages, ack positions, queues, latest and retained messages; and that the store goes
// on from there (new messages come after the old ones).
func (s *suite) testRestart(t *testing.T) {
	t.Run("KeepsEverything", func(t *testing.T) {
		if s.h.Reopen == nil {
			t.Skip("Harness.Reopen is nil: the suite cannot reopen the store's namespace")
		}
		if s.h.Features.Sink {
			t.Skip("Features.Sink: Sink/CloseDrains checks what a sink keeps across Close and Reopen")
		}
		x := s.open(t)
		// Each part writes through x, and returns the check to run on the reopened backend.
		var checks []func(y *env)

		if s.fns[hook.OnClientConnected] && s.fns[hook.OnClientDisconnected] {
			conn := x.writer(hook.ClientConnected, hook.OnClientConnected)
			disc := x.writer(hook.ClientDisconnected, hook.OnClientDisconnected)
			now := time.Now()
			x.write(conn, &hook.ConnectedEvent{ClientID: "rs-on", Username: "u", Node: "node1@127.0.0.1", ProtoVer: 5, ConnectedAt: now})
			x.write(conn, &hook.ConnectedEvent{ClientID: "rs-off", Username: "u", Node: "node2@127.0.0.1", ProtoVer: 4, ConnectedAt: now})
			x.write(disc, &hook.DisconnectedEvent{ClientID: "rs-off", Username: "u", Node: "node2@127.0.0.1", Reason: "normal", DisconnectedAt: now})
			checks = append(checks, func(y *env) {
				r, ok := y.b.(backend.ClientStateReader)
				if !ok {
					t.Fatalf("the reopened backend (%T) does not implement backend.ClientStateReader", y.b)
				}
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				defer cancel()
				for _, want := range []backend.ClientState{
					{ClientID: "rs-on", Online: true, Node: "node1@127.0.0.1"},
					{ClientID: "rs-off", Online: false, Node: "node2@127.0.0.1"},
				} {
					st, err := r.ClientState(ctx, want.ClientID)
					switch {
					case err != nil:
						t.Errorf("ClientState(%q) after restart: %v", want.ClientID, err)
					case st.Online != want.Online || st.Node != want.Node || st.OnlineAt.IsZero() || st.OfflineAt.IsZero() == !want.Online:
						t.Errorf("ClientState(%q) after restart = %+v, want Online %v on %s with its times", want.ClientID, st, want.Online, want.Node)
					}
				}
			})
		}

		if fn := s.subscribeLookup(); s.fns[fn] {
			ss, ok := x.b.(backend.SubscriptionStore)
			if !ok {
				t.Fatalf("the backend (%T) lists %s but does not implement backend.SubscriptionStore", x.b, fn)
			}
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			defer cancel()
			want := []hook.Subscription{{Topic: "rs/#", QoS: 2}, {Topic: "rs/a", QoS: 1}}
			for _, sub := range want {
				if err := ss.AddSubscription(ctx, "rs-c", sub); err != nil {
					t.Fatalf("AddSubscription: %v", err)
				}
			}
			checks = append(checks, func(y *env) {
				res := y.lookup(y.looker(hook.SessionCreated, fn), &hook.SessionCreatedEvent{ClientID: "rs-c", Username: "u", Node: testNode})
				got := slices.SortedFunc(slices.Values(res.Subscriptions), func(a, b hook.Subscription) int { return strings.Compare(a.Topic, b.Topic) })
				if !slices.Equal(got, want) {
					t.Errorf("subscriptions of rs-c after restart: %v, want %v", got, want)
				}
			})
		}

		for _, f := range families {
			if !s.fns[f.fetch] || !s.fns[f.acked] {
				continue
			}
			store := x.writer(hook.MessagePublish, s.storeFunction())
			tp := "rs/" + f.fetch
			m1, m2, m3 := x.msg(tp, 1, "m1"), x.msg(tp, 2, "m2"), x.msg(tp, 1, "m3")
			x.publish(store, m1, m2, m3)
			x.flush()
			x.ack(x.writer(hook.MessageAcked, f.acked), "rs-c", m2)
			checks = append(checks, func(y *env) {
				fetch := y.looker(hook.SessionSubscribed, f.fetch)
				checkMessages(t, f.fetch+" by rs-c (acked m2) after restart", y.fetch(fetch, "rs-c", tp), m3)
				checkMessages(t, f.fetch+" by a fresh client after restart", y.fetch(fetch, "rs-fresh", tp), m1, m2, m3)
				m4 := y.msg(tp, 1, "m4")
				y.publish(y.writer(hook.MessagePublish, s.storeFunction()), m4)
				y.flush()
				checkMessages(t, f.fetch+" by rs-c after publishing m4 after restart", y.fetch(fetch, "rs-c", tp), m3, m4)
			})
		}

		if s.fns[hook.OnMessageFetchForQueue] && s.fns[hook.OnMessageAckedForQueue] {
			store := x.writer(hook.MessagePublish, s.storeFunction())
			q1, q2 := x.msg("rs/queue", 1, "q1"), x.msg("rs/queue", 1, "q2")
			x.publish(store, q1, q2)
			x.flush()
			x.ack(x.writer(hook.MessageAcked, hook.OnMessageAckedForQueue), "rs-c", q1)
			checks = append(checks, func(y *env) {
				fetch := y.looker(hook.SessionSubscribed, hook.OnMessageFetchForQueue)
				checkMessages(t, "queue fetch after restart (q1 was acked)", y.fetch(fetch, "rs-other", "rs/queue"), q2)
			})
		}

		if s.fns[hook.OnMessageStoreKeepLatest] && s.fns[hook.OnMessageFetchForKeepLatest] && s.fns[hook.OnMessageAckedForKeepLatest] {
			store := x.writer(hook.MessagePublish, hook.OnMessageStoreKeepLatest)
			k1, k2 := x.msg("rs/latest", 1, "k1"), x.msg("rs/latest", 1, "k2")
			x.publish(store, k1, k2)
			x.flush()
			x.ack(x.writer(hook.MessageAcked, hook.OnMessageAckedForKeepLatest), "rs-c", k2)
			checks = append(checks, func(y *env) {
				fetch := y.looker(hook.SessionSubscribed, hook.OnMessageFetchForKeepLatest)
				checkMessages(t, "keep_latest fetch by rs-c (acked k2) after restart", y.fetch(fetch, "rs-c", "rs/latest"))
				checkMessages(t, "keep_latest fetch by a fresh client after restart", y.fetch(fetch, "rs-fresh", "rs/latest"), k2)
			})
		}

		if s.fns[hook.OnMessageRetain] && s.fns[hook.OnRetainLookup] {
			r1 := x.msg("rs/retained", 1, "r1")
			r1.Retain = true
			x.publish(x.writer(hook.MessagePublish, hook.OnMessageRetain), r1)
			checks = append(checks, func(y *env) {
				lookup := y.looker(hook.SessionSubscribed, hook.OnRetainLookup)
				checkMessageSet(t, "retained lookup after restart", y.retained(lookup, "rs-c", "rs/retained"), r1)
			})
		}

		if len(checks) == 0 {
			t.Skip("the store lists no function whose data the suite reads back")
		}
		x.flush()
		x.close()
		y := x.sibling(s.h.Reopen(t, x.b), "Harness.Reopen")
		for _, check := range checks {
			check(y)
		}
	})
}

// subscribeLookup is the name of on_subscribe_lookup the store lists (it has two).
func (s *suite) subscribeLookup() string {
	if !s.fns[hook.OnSubscribeLookup] && s.fns[hook.OnSubscriptionLookup] {
		return hook.OnSubscriptionLookup
	}
	return hook.OnSubscribeLookup
}
