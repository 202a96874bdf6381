package redisstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/hook"
)

func TestParseControl(t *testing.T) {
	good := []struct {
		in   string
		want Control
	}{
		// The spec's examples: qos as a string.
		{`{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "0"}`, Control{Subscribe, "test", "topic0", 0}},
		{`{"type": "unsubscribe", "topic": "test_topic0", "clientid": "test"}`, Control{Unsubscribe, "test", "test_topic0", 0}},
		{`{"type":"subscribe","topic":"a/+/#","clientid":"c 1","qos":2}`, Control{Subscribe, "c 1", "a/+/#", 2}},
		{`{"type":"subscribe","topic":"$share/g/a","clientid":"c","qos":null,"extra":[1]}`, Control{Subscribe, "c", "$share/g/a", 0}},
		{` {"type":"subscribe","topic":"a","clientid":"c"} `, Control{Subscribe, "c", "a", 0}},
		{`{"type":"unsubscribe","topic":"a","clientid":"c","qos":"bad"}`, Control{Unsubscribe, "c", "a", 0}}, // qos ignored
	}
	for _, g := range good {
		got, err := ParseControl([]byte(g.in))
		if err != nil || got != g.want {
			t.Errorf("ParseControl(%s) = %+v, %v; want %+v", g.in, got, err, g.want)
		}
	}
	bad := map[string]string{
		``:            "not a JSON object",
		`[]`:          "not a JSON object",
		`"subscribe"`: "not a JSON object",
		`{`:           "unexpected end",
		`{"type":"subscribe","topic":"a","clientid":"c"} x`:          "invalid character",
		`{"topic":"a","clientid":"c"}`:                               `no "type"`,
		`{"type":"SUB","topic":"a","clientid":"c"}`:                  `"type" "SUB"`,
		`{"type":"subscribe","topic":"a"}`:                           `no "clientid"`,
		`{"type":"subscribe","topic":"a","clientid":""}`:             `no "clientid"`,
		`{"type":"subscribe","clientid":"c"}`:                        `no "topic"`,
		`{"type":"subscribe","topic":"a/#/b","clientid":"c"}`:        `"topic"`,
		`{"type":"subscribe","topic":"","clientid":"c"}`:             `"topic"`,
		`{"type":"subscribe","topic":"a","clientid":"c","qos":3}`:    `"qos": 3 is not`,
		`{"type":"subscribe","topic":"a","clientid":"c","qos":"3"}`:  `"qos"`,
		`{"type":"subscribe","topic":"a","clientid":"c","qos":1.0}`:  `"qos"`,
		`{"type":"subscribe","topic":"a","clientid":"c","qos":-1}`:   `"qos"`,
		`{"type":"subscribe","topic":"a","clientid":"c","qos":true}`: `"qos"`,
		`{"type":1,"topic":"a","clientid":"c"}`:                      "cannot unmarshal",
	}
	for in, want := range bad {
		_, err := ParseControl([]byte(in))
		if !errors.Is(err, ErrControl) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseControl(%s) error %v; want one wrapping ErrControl, saying %q", in, err, want)
		}
	}
}

func FuzzParseControl(f *testing.F) {
	f.Add([]byte(`{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "0"}`))
	f.Add([]byte(`{"type": "unsubscribe", "topic": "test_topic0", "clientid": "test"}`))
	f.Add([]byte(`{"type":"subscribe","topic":"a/+/#","clientid":"c","qos":2}`))
	f.Add([]byte(`{"type":"subscribe","topic":"a/#/b","clientid":"c","qos":"x"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseControl(data)
		if err != nil {
			if !errors.Is(err, ErrControl) {
				t.Fatalf("error %v does not wrap ErrControl", err)
			}
			return
		}
		if c.Type != Subscribe && c.Type != Unsubscribe || c.ClientID == "" || c.QoS > 2 || c.Type == Unsubscribe && c.QoS != 0 {
			t.Fatalf("ParseControl(%q) = %+v", data, c)
		}
	})
}

// controlRecorder is an OnControl that hands the requests to the test.
type controlRecorder chan Control

func (r controlRecorder) handle(ctx context.Context, c Control) error {
	if c.ClientID == "fail" {
		return errors.New("the broker refused")
	}
	if c.ClientID == "panic" {
		panic("the broker panicked")
	}
	r <- c
	return nil
}

func (r controlRecorder) next(t *testing.T) Control {
	t.Helper()
	select {
	case c := <-r:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no control request reached OnControl")
		return Control{}
	}
}

// waitControl waits until the store's control counters satisfy ok.
func waitControl(t *testing.T, s *Store, what string, ok func(ControlStats) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok(s.ControlStats()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: control stats %+v", what, s.ControlStats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestControlChannel(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			cfg := configFor(t, d)
			rec := make(controlRecorder, 10)
			cfg.OnControl = rec.handle
			cfg.Channel = cfg.Prefix + "mqtt_channel" // the test's own
			s := openStore(t, cfg)
			defer s.Close(context.Background())
			waitControl(t, s, "the subscription", func(c ControlStats) bool { return c.Subscribed == 1 })
			ctx := context.Background()
			// A business server publishes on one connection. (A cluster client would send each
			// PUBLISH to a random node, and Redis Cluster keeps no order across nodes.)
			var publisher redis.UniversalClient = s.client
			if cfg.Mode == Cluster {
				publisher = redis.NewClient(&redis.Options{Addr: cfg.Addrs[0]})
				defer publisher.Close()
			}
			pub := func(msg string) {
				t.Helper()
				if err := publisher.Publish(ctx, cfg.Channel, msg).Err(); err != nil {
					t.Fatal(err)
				}
			}
			pub(`{"type": "subscribe", "topic": "topic0", "clientid": "test", "qos": "1"}`)
			pub(`{"type": "subscribe", "topic": "a/+", "clientid": "test", "qos": 2}`)
			pub(`not json`)
			pub(`{"type": "subscribe", "topic": "a/#/b", "clientid": "test"}`)
			pub(`{"type": "subscribe", "topic": "x", "clientid": "fail"}`)
			pub(`{"type": "subscribe", "topic": "x", "clientid": "panic"}`)
			pub(`{"type": "unsubscribe", "topic": "topic0", "clientid": "test"}`)
			want := []Control{{Subscribe, "test", "topic0", 1}, {Subscribe, "test", "a/+", 2}, {Unsubscribe, "test", "topic0", 0}}
			for _, w := range want {
				if got := rec.next(t); got != w {
					t.Errorf("OnControl got %+v, want %+v", got, w)
				}
			}
			waitControl(t, s, "every message handled", func(c ControlStats) bool { return c.Applied+c.Malformed+c.Failed == 7 })
			if got, want := s.ControlStats(), (ControlStats{Subscribed: 1, Received: 7, Applied: 3, Malformed: 2, Failed: 2}); got != want {
				t.Errorf("ControlStats = %+v, want %+v", got, want)
			}
			// mqtt:sub holds what the requests left, for on_subscribe_lookup.
			res, err := mustLookup(t, s, hook.SessionCreated, hook.OnSubscribeLookup, noTopic).Lookup(ctx, &hook.SessionCreatedEvent{ClientID: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if want := []hook.Subscription{{Topic: "a/+", QoS: 2}}; !equalSubs(res.Subscriptions, want) {
				t.Errorf("subscriptions of test = %v, want %v", res.Subscriptions, want)
			}
		})
	}
}

// TestControlChannelReconnects restarts the server under the listener: it subscribes again
// by itself and goes on handing requests over.
func TestControlChannelReconnects(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t, true)
	rec := make(controlRecorder, 10)
	s := openStore(t, Config{Addrs: []string{srv.addr}, OnControl: rec.handle, Options: testOptions})
	defer s.Close(context.Background())
	waitControl(t, s, "the subscription", func(c ControlStats) bool { return c.Subscribed == 1 })
	pub := func(msg string) {
		t.Helper()
		c := redis.NewClient(&redis.Options{Addr: srv.addr})
		defer c.Close()
		if err := c.Publish(context.Background(), DefaultChannel, msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	pub(`{"type": "subscribe", "topic": "before", "clientid": "c1", "qos": "0"}`)
	if got := rec.next(t); got.Topic != "before" {
		t.Fatalf("got %+v", got)
	}
	srv.restart(500 * time.Millisecond)
	waitControl(t, s, "the subscription after the restart", func(c ControlStats) bool { return c.Subscribed >= 2 })
	pub(`{"type": "subscribe", "topic": "after", "clientid": "c1", "qos": "1"}`)
	if got := rec.next(t); got != (Control{Subscribe, "c1", "after", 1}) {
		t.Fatalf("got %+v after the restart", got)
	}
	subs, err := s.client.HGetAll(context.Background(), "mqtt:sub:c1").Result()
	if err != nil {
		t.Fatal(err)
	}
	if subs["before"] != "0" || subs["after"] != "1" || len(subs) != 2 {
		t.Errorf("mqtt:sub:c1 = %v, want before 0 and after 1", subs)
	}
}

func noTopic(r *hook.Rule) { r.Topic = "" }

func equalSubs(a, b []hook.Subscription) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
