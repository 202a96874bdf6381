package backendtest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

func (s *suite) testClientState(t *testing.T) {
	// open skips unless the store records client state, and returns its reader.
	open := func(t *testing.T) (*env, backend.ClientStateReader) {
		s.require(t, hook.OnClientConnected, hook.OnClientDisconnected)
		e := s.open(t)
		r, ok := e.b.(backend.ClientStateReader)
		if !ok {
			t.Fatalf("the backend (%T) lists on_client_connected but does not implement backend.ClientStateReader", e.b)
		}
		return e, r
	}
	read := func(e *env, r backend.ClientStateReader, client string) backend.ClientState {
		e.t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		st, err := r.ClientState(ctx, client)
		if err != nil {
			e.t.Fatalf("ClientState(%q): %v", client, err)
		}
		return st
	}
	// check compares got with want; times must lie within [from-timeSlack, to+timeSlack]
	// of when the event was written (stores may record the event's time or their own now).
	type window struct{ from, to time.Time }
	check := func(t *testing.T, step string, got backend.ClientState, client string, online bool, node string, onlineAt, offlineAt *window) {
		t.Helper()
		var bad []string
		if got.ClientID != client {
			bad = append(bad, "ClientID "+strconv.Quote(got.ClientID)+", want "+strconv.Quote(client))
		}
		if got.Online != online {
			bad = append(bad, "Online "+strconv.FormatBool(got.Online)+", want "+strconv.FormatBool(online))
		}
		if got.Node != node {
			bad = append(bad, "Node "+strconv.Quote(got.Node)+", want "+strconv.Quote(node))
		}
		inWindow := func(name string, v time.Time, w *window) {
			switch {
			case w == nil && !v.IsZero():
				bad = append(bad, name+" "+v.String()+", want zero")
			case w != nil && (v.Before(w.from.Add(-timeSlack)) || v.After(w.to.Add(timeSlack))):
				bad = append(bad, name+" "+v.String()+", want between "+w.from.String()+" and "+w.to.String()+" (±1s)")
			}
		}
		inWindow("OnlineAt", got.OnlineAt, onlineAt)
		inWindow("OfflineAt", got.OfflineAt, offlineAt)
		if len(bad) > 0 {
			t.Errorf("ClientState(%q) after %s: %s", client, step, strings.Join(bad, "; "))
		}
	}
	connect := func(e *env, w hook.WriteAction, client, node string) *window {
		e.t.Helper()
		from := time.Now()
		e.write(w, &hook.ConnectedEvent{ClientID: client, Username: "user-" + client, Peerhost: "192.0.2.9",
			Node: node, ProtoVer: 4, Keepalive: 60, CleanStart: false, ConnectedAt: from})
		e.flush()
		return &window{from, time.Now()}
	}
	disconnect := func(e *env, w hook.WriteAction, client, node string) *window {
		e.t.Helper()
		from := time.Now()
		e.write(w, &hook.DisconnectedEvent{ClientID: client, Username: "user-" + client, Node: node,
			Reason: "normal", DisconnectedAt: from})
		e.flush()
		return &window{from, time.Now()}
	}

	t.Run("OnlineOfflineWithTimesAndNode", func(t *testing.T) {
		e, r := open(t)
		conn := e.writer(hook.ClientConnected, hook.OnClientConnected)
		disc := e.writer(hook.ClientDisconnected, hook.OnClientDisconnected)

		on1 := connect(e, conn, "c1", "node1@127.0.0.1")
		check(t, "connecting", read(e, r, "c1"), "c1", true, "node1@127.0.0.1", on1, nil)

		off := disconnect(e, disc, "c1", "node1@127.0.0.1")
		check(t, "disconnecting", read(e, r, "c1"), "c1", false, "node1@127.0.0.1", on1, off)

		// Reconnecting elsewhere moves the client, and it is no longer "seen offline since".
		time.Sleep(10 * time.Millisecond)
		on2 := connect(e, conn, "c1", "node2@127.0.0.1")
		check(t, "reconnecting to another node", read(e, r, "c1"), "c1", true, "node2@127.0.0.1", on2, nil)
	})
	t.Run("ClientsAreIndependent", func(t *testing.T) {
		e, r := open(t)
		conn := e.writer(hook.ClientConnected, hook.OnClientConnected)
		disc := e.writer(hook.ClientDisconnected, hook.OnClientDisconnected)
		onA := connect(e, conn, "a", "node1@127.0.0.1")
		onB := connect(e, conn, "b", "node2@127.0.0.1")
		offA := disconnect(e, disc, "a", "node1@127.0.0.1")
		check(t, "a disconnected", read(e, r, "a"), "a", false, "node1@127.0.0.1", onA, offA)
		check(t, "a disconnected", read(e, r, "b"), "b", true, "node2@127.0.0.1", onB, nil)
	})
	t.Run("UnknownClientNotFound", func(t *testing.T) {
		e, r := open(t)
		conn := e.writer(hook.ClientConnected, hook.OnClientConnected)
		connect(e, conn, "known", "node1@127.0.0.1")
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if st, err := r.ClientState(ctx, "unknown"); !errors.Is(err, hook.ErrNotFound) {
			t.Errorf("ClientState(%q) of a client never seen = %+v, %v; want an error wrapping hook.ErrNotFound", "unknown", st, err)
		}
	})
}

func (s *suite) testSubscriptions(t *testing.T) {
	fn := s.subscribeLookup()
	open := func(t *testing.T) (*env, backend.SubscriptionStore, hook.LookupAction) {
		s.require(t, fn)
		e := s.open(t)
		ss, ok := e.b.(backend.SubscriptionStore)
		if !ok {
			t.Fatalf("the backend (%T) lists %s but does not implement backend.SubscriptionStore", e.b, fn)
		}
		return e, ss, e.looker(hook.SessionCreated, fn)
	}
	add := func(e *env, ss backend.SubscriptionStore, client, topic string, qos byte) {
		e.t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := ss.AddSubscription(ctx, client, hook.Subscription{Topic: topic, QoS: qos}); err != nil {
			e.t.Fatalf("AddSubscription(%q, %q, %d): %v", client, topic, qos, err)
		}
	}
	del := func(e *env, ss backend.SubscriptionStore, client, topic string) {
		e.t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := ss.DeleteSubscription(ctx, client, topic); err != nil {
			e.t.Fatalf("DeleteSubscription(%q, %q): %v", client, topic, err)
		}
	}
	created := func(client string) hook.Event {
		return &hook.SessionCreatedEvent{ClientID: client, Username: "user-" + client, Node: testNode}
	}
	check := func(e *env, what string, res hook.Result, want ...hook.Subscription) {
		e.t.Helper()
		got := slices.SortedFunc(slices.Values(res.Subscriptions), func(a, b hook.Subscription) int { return strings.Compare(a.Topic, b.Topic) })
		want = slices.SortedFunc(slices.Values(want), func(a, b hook.Subscription) int { return strings.Compare(a.Topic, b.Topic) })
		if !slices.Equal(got, want) {
			e.t.Errorf("%s: subscriptions (in any order)\n got: %v\nwant: %v", what, got, want)
		}
		if len(res.Offline)+len(res.Retained) != 0 {
			e.t.Errorf("%s: a subscription lookup returned messages %s", what, formatMessages(append(res.Offline, res.Retained...)))
		}
	}
	hostile := `sub/'; DROP TABLE mqtt_sub; --/"q"/#`

	t.Run("LookupReturnsStoredSubscriptionsWithQoS", func(t *testing.T) {
		e, ss, l := open(t)
		add(e, ss, "c1", "a/b", 0)
		add(e, ss, "c1", "c/+/d", 1)
		add(e, ss, "c1", hostile, 2)
		add(e, ss, "c2", "x/#", 1)
		check(e, "lookup for c1", e.lookup(l, created("c1")),
			hook.Subscription{Topic: "a/b", QoS: 0}, hook.Subscription{Topic: "c/+/d", QoS: 1}, hook.Subscription{Topic: hostile, QoS: 2})
		check(e, "lookup for c2", e.lookup(l, created("c2")), hook.Subscription{Topic: "x/#", QoS: 1})
		check(e, "lookup for a client without subscriptions", e.lookup(l, created("c3")))
	})
	t.Run("LookupAtClientConnected", func(t *testing.T) {
		e, ss, _ := open(t)
		l := e.looker(hook.ClientConnected, fn)
		add(e, ss, "c1", "a/b", 2)
		check(e, "lookup at client.connected", e.lookup(l, &hook.ConnectedEvent{ClientID: "c1", Username: "user-c1",
			Node: testNode, ProtoVer: 5, ConnectedAt: time.Now()}), hook.Subscription{Topic: "a/b", QoS: 2})
	})
	t.Run("AddAgainReplacesQoS", func(t *testing.T) {
		e, ss, l := open(t)
		add(e, ss, "c1", "a/b", 2)
		add(e, ss, "c1", "a/b", 0)
		check(e, "lookup after subscribing to a/b twice", e.lookup(l, created("c1")), hook.Subscription{Topic: "a/b", QoS: 0})
	})
	t.Run("DeleteRemovesOnlyThatSubscription", func(t *testing.T) {
		e, ss, l := open(t)
		add(e, ss, "c1", "a/b", 1)
		add(e, ss, "c1", "a/#", 1)
		add(e, ss, "c1", hostile, 1)
		add(e, ss, "c2", "a/b", 2)
		del(e, ss, "c1", "a/b")
		del(e, ss, "c1", hostile)
		del(e, ss, "c1", "never/subscribed") // not an error
		check(e, "lookup for c1 after deleting a/b", e.lookup(l, created("c1")), hook.Subscription{Topic: "a/#", QoS: 1})
		check(e, "lookup for c2 after c1 deleted a/b", e.lookup(l, created("c2")), hook.Subscription{Topic: "a/b", QoS: 2})
	})
}
