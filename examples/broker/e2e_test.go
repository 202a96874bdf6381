package main

// End-to-end tests: the broker of this command, in-process on a random port, with a real
// store (SQLite, PostgreSQL, MariaDB), driven by a real MQTT client (paho.mqtt.golang), with
// the results checked in the EMQX tables. The behaviours that need no database run the same
// client code against Mosquitto too, which proves the test code itself.
//
// mochi keeps the session of a client that connects with clean session false, and the
// messages published for it while it is away, in memory. A test of the persistence path
// must not let mochi answer from memory: the offline-message tests either use clean sessions
// (mochi forgets the client when it disconnects; the spec's model: the client gets what it
// has not acknowledged, by its positions in mqtt_acked, when it subscribes) or restart the
// broker between the publishes and the reconnect (a new server on the same database) and
// check that the CONNACK says no session was present.

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the test's own queries
	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// target is a database the broker stores into, and the test's own connection to it.
type target struct {
	kind string // -store: sqlite, postgres, mysql or redis
	dsn  string
	// offline is the first topic level whose messages the rules store and fetch for a
	// subscriber: every topic with the SQL rules; pubsub/ (one-to-many) with Redis's.
	offline string

	db *sql.DB // SQL

	redis      redis.UniversalClient // Redis
	prefix     string                // before every key of the test's
	configFile string                // the Redis rules, with the test's server, prefix and channel

	configure func(*config) // if set, changes the configuration of every broker start starts
}

// forEachStore runs f against each database.
func forEachStore(t *testing.T, f func(t *testing.T, tg *target)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		tg := &target{kind: "sqlite", dsn: filepath.Join(t.TempDir(), "data", "mqttstore.db"), offline: "off"}
		tg.openSQL(t, "sqlite")
		f(t, tg)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		tg := &target{kind: "postgres", dsn: testenv.Postgres(t), offline: "off"}
		tg.openSQL(t, "pgx")
		f(t, tg)
	})
	t.Run("mysql", func(t *testing.T) {
		t.Parallel()
		tg := &target{kind: "mysql", dsn: testenv.MySQL(t), offline: "off"}
		tg.openSQL(t, "mysql")
		f(t, tg)
	})
	t.Run("redis", func(t *testing.T) {
		t.Parallel()
		f(t, redisTarget(t))
	})
}

// redisTarget is a Redis server with the EMQX Redis rules, and a key prefix and control
// channel of the test's own.
func redisTarget(t *testing.T) *target {
	rc := testenv.Redis(t)
	tg := &target{kind: "redis", offline: "pubsub", redis: rc.NewClient(), prefix: rc.Prefix}
	t.Cleanup(func() { tg.redis.Close() })
	conf := strings.NewReplacer(
		"pool1.server = 127.0.0.1:6379", "pool1.server = "+rc.Addrs[0],
		"pool1.channel = mqtt_channel", "pool1.channel = "+tg.channel(),
	).Replace(string(config{Store: "redis"}.defaultText()))
	conf += "\nbackend.redis.pool1.prefix = " + rc.Prefix + "\n"
	tg.configFile = writeConfig(t, conf)
	return tg
}

// channel is the Redis SUB/UNSUB control channel of the test.
func (tg *target) channel() string { return tg.prefix + "mqtt_channel" }

func (tg *target) openSQL(t *testing.T, driver string) {
	t.Helper()
	var err error
	if tg.db, err = sql.Open(driver, tg.dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.db.Close() })
}

// start starts a broker on the target's database; the test closes it (Close may be called
// before, to restart).
func (tg *target) start(t *testing.T) *broker {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg := config{Listen: "127.0.0.1:0", Node: "node1", EnsureSchema: true, Logger: log}
	if tg.configFile != "" {
		cfg.ConfigFile = tg.configFile
	} else {
		cfg.Store, cfg.DSN = tg.kind, tg.dsn
	}
	if tg.configure != nil {
		tg.configure(&cfg)
	}
	b, err := start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Logf("closing the broker: %v", err)
		}
	})
	return b
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// restart closes b, writing out its queue, and starts a new broker on the same database.
func (tg *target) restart(t *testing.T, b *broker) *broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	return tg.start(t)
}

// flush waits until everything the broker has queued is written.
func (b *broker) flush(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// exec runs a statement written with ? placeholders.
func (tg *target) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if tg.kind == "postgres" {
		var sb strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				sb.WriteString("$" + strconv.Itoa(n))
				continue
			}
			sb.WriteRune(r)
		}
		q = sb.String()
	}
	if _, err := tg.db.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// clientRow is what the store recorded for a client: mqtt_client, or mqtt:client:<id>.
type clientRow struct {
	State           string // "1" online, "0" offline
	Node            string
	Online, Offline bool // online_at and offline_at are set
}

// client returns what the store recorded for the client; ok is false if nothing.
func (tg *target) client(t *testing.T, id string) (row clientRow, ok bool) {
	t.Helper()
	if tg.redis != nil {
		h, err := tg.redis.HGetAll(context.Background(), tg.prefix+"mqtt:client:"+id).Result()
		if err != nil {
			t.Fatal(err)
		}
		off := h["offline_at"]
		return clientRow{h["state"], h["node"], h["online_at"] != "", off != "" && off != "undefined"}, len(h) > 0
	}
	q := "SELECT state, node, online_at, offline_at FROM mqtt_client WHERE clientid = ?"
	if tg.kind == "postgres" {
		q = strings.Replace(q, "?", "$1", 1)
	}
	var online, offline any
	err := tg.db.QueryRow(q, id).Scan(&row.State, &row.Node, &online, &offline)
	if err == sql.ErrNoRows {
		return row, false
	}
	if err != nil {
		t.Fatal(err)
	}
	row.Online, row.Offline = online != nil, offline != nil
	return row, true
}

// addSubscription stores a subscription for the client: mqtt_sub, or mqtt:sub:<id>.
func (tg *target) addSubscription(t *testing.T, id, topic string, qos byte) {
	t.Helper()
	if tg.redis != nil {
		if err := tg.redis.HSet(context.Background(), tg.prefix+"mqtt:sub:"+id, topic, qos).Err(); err != nil {
			t.Fatal(err)
		}
		return
	}
	tg.exec(t, "INSERT INTO mqtt_sub (clientid, topic, qos) VALUES (?, ?, ?)", id, topic, qos)
}

// waitState waits until the client's recorded state is state ("1" online, "0" offline).
func (tg *target) waitState(t *testing.T, id, state string) {
	t.Helper()
	mqtttest.Eventually(t, id+" state "+state, func() bool {
		row, ok := tg.client(t, id)
		return ok && row.State == state
	})
}

func TestClientState(t *testing.T) {
	forEachStore(t, func(t *testing.T, tg *target) {
		b := tg.start(t)
		c := mqtttest.Connect(t, b.addr, "dev-1", true)
		tg.waitState(t, "dev-1", "1")
		if row, _ := tg.client(t, "dev-1"); row != (clientRow{"1", "node1", true, false}) {
			t.Errorf("online: %+v; want state 1, node node1, online_at set, no offline_at", row)
		}
		c.Disconnect(100)
		tg.waitState(t, "dev-1", "0")
		if row, _ := tg.client(t, "dev-1"); !row.Online || !row.Offline {
			t.Errorf("offline: %+v; want online_at and offline_at set", row)
		}
		mqtttest.Connect(t, b.addr, "dev-1", true)
		tg.waitState(t, "dev-1", "1")
	})
}

func TestOfflineMessages(t *testing.T) {
	// Clean sessions: mochi forgets the subscriber when it disconnects; what it gets when it
	// subscribes again comes from the store, after its acknowledged position.
	forEachStore(t, func(t *testing.T, tg *target) {
		tp := func(s string) string { return tg.offline + "/" + s }
		b := tg.start(t)
		sub := mqtttest.Connect(t, b.addr, "sub-1", true)
		sub.MustSubscribe(t, tp("#"), 1)
		pub := mqtttest.Connect(t, b.addr, "pub-1", true)
		pub.MustPublish(t, tp("a"), 1, false, "live")
		mqtttest.Eventually(t, "the live message", func() bool { return len(sub.Received()) == 1 })
		sub.Disconnect(100)
		tg.waitState(t, "sub-1", "0")

		var want []string
		for i := range 5 {
			want = append(want, fmt.Sprintf("m%d", i))
			pub.MustPublish(t, tp("a"), 1, false, want[i])
		}
		pub.MustPublish(t, tp("b"), 0, false, "qos 0 is not stored")
		pub.Settle(t)
		b.flush(t)

		sub = mqtttest.Connect(t, b.addr, "sub-1", true)
		sub.MustSubscribe(t, tp("#"), 1)
		if got := payloads(sub.Barrier(t, tp("barrier"))); !slices.Equal(got, want) {
			t.Errorf("after reconnecting: received %q, want %q", got, want)
		}
		b.flush(t) // the acknowledgements
		sub.Disconnect(100)
		tg.waitState(t, "sub-1", "0")

		sub = mqtttest.Connect(t, b.addr, "sub-1", true)
		sub.MustSubscribe(t, tp("#"), 1)
		if got := sub.Barrier(t, tp("barrier")); len(got) != 0 {
			t.Errorf("after reconnecting again: received %v, want nothing", got)
		}
	})
}

func TestOfflineMessagesAcrossRestart(t *testing.T) {
	// A persistent session (clean session false) whose broker restarts between the publishes
	// and the reconnect: mochi has lost the session, the messages come from the database.
	forEachStore(t, func(t *testing.T, tg *target) {
		tp := func(s string) string { return tg.offline + "/rs/" + s }
		b := tg.start(t)
		sub := mqtttest.Connect(t, b.addr, "sub-2", false)
		sub.MustSubscribe(t, tp("#"), 1)
		sub.Disconnect(100)
		tg.waitState(t, "sub-2", "0")
		pub := mqtttest.Connect(t, b.addr, "pub-2", true)
		var want []string
		for i := range 5 {
			want = append(want, fmt.Sprintf("m%d", i))
			pub.MustPublish(t, tp("t"), 1, false, want[i])
		}
		pub.Disconnect(100)
		tg.waitState(t, "pub-2", "0")

		b = tg.restart(t, b)
		sub = mqtttest.Connect(t, b.addr, "sub-2", false)
		if sub.SessionPresent {
			t.Fatal("the restarted broker resumed the session: the test would not test the database")
		}
		sub.MustSubscribe(t, tp("#"), 1)
		if got := payloads(sub.Barrier(t, tp("barrier"))); !slices.Equal(got, want) {
			t.Errorf("after the restart: received %q, want %q", got, want)
		}
		b.flush(t)
		sub.Disconnect(100)
		tg.waitState(t, "sub-2", "0")

		sub = mqtttest.Connect(t, b.addr, "sub-2", false)
		sub.MustSubscribe(t, tp("#"), 1)
		if got := sub.Barrier(t, tp("barrier")); len(got) != 0 {
			t.Errorf("after reconnecting again: received %v, want nothing", got)
		}
	})
}

func TestRetainedSurviveRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, tg *target) {
		b := tg.start(t)
		pub := mqtttest.Connect(t, b.addr, "pub-3", true)
		// QoS 0: on_message_publish stores QoS 1 and 2 only, so the subscriber's history
		// (on_message_fetch) stays out of this test; on_message_retain stores any QoS.
		pub.MustPublish(t, "ret/a/1", 0, true, "one")
		pub.MustPublish(t, "ret/b/2", 0, true, "two")
		pub.MustPublish(t, "ret/c", 0, true, "gone")
		pub.MustPublish(t, "ret/c", 0, true, "") // deletes the retained message of ret/c
		pub.MustPublish(t, "ret/a/1", 0, false, "not retained")
		pub.Disconnect(100)
		tg.waitState(t, "pub-3", "0") // the broker has handled pub-3's packets

		b = tg.restart(t, b)
		all := mqtttest.Connect(t, b.addr, "sub-3a", true)
		all.MustSubscribe(t, "ret/#", 1)
		want := []mqtttest.Received{{Topic: "ret/a/1", Payload: "one", Retain: true}, {Topic: "ret/b/2", Payload: "two", Retain: true}}
		if got := all.Barrier(t, "ret/barrier"); !slices.Equal(got, want) {
			t.Errorf("ret/#: received %v, want %v", got, want)
		}
		one := mqtttest.Connect(t, b.addr, "sub-3b", true)
		one.MustSubscribe(t, "ret/+/1", 1)
		if got := one.Barrier(t, "ret/x/1"); !slices.Equal(got, want[:1]) {
			t.Errorf("ret/+/1: received %v, want %v", got, want[:1])
		}
	})
}

func TestStoredSubscriptions(t *testing.T) {
	forEachStore(t, func(t *testing.T, tg *target) {
		b := tg.start(t) // creates the tables
		tg.addSubscription(t, "dev-7", "cmd/dev-7", 1)
		dev := mqtttest.Connect(t, b.addr, "dev-7", true)
		// The barrier reaches dev-7 only through the stored subscription.
		if got := dev.Barrier(t, "cmd/dev-7"); len(got) != 0 {
			t.Errorf("received %v before the barrier", got)
		}
		pub := mqtttest.Connect(t, b.addr, "pub-7", true)
		pub.MustPublish(t, "cmd/dev-7", 1, false, "reboot")
		pub.Settle(t)
		mqtttest.Eventually(t, "the command", func() bool { return len(dev.Received()) == 2 })
		if got := dev.Received()[1]; got != (mqtttest.Received{Topic: "cmd/dev-7", Payload: "reboot", QoS: 1}) {
			t.Errorf("received %v", got)
		}
	})
}

func TestRedisQueue(t *testing.T) {
	// on_message_fetch_for_queue: each stored message goes to one subscriber, and is gone
	// once acknowledged.
	tg := redisTarget(t)
	b := tg.start(t)
	pub := mqtttest.Connect(t, b.addr, "pub-q", true)
	want := []string{"j0", "j1", "j2"}
	for _, j := range want {
		pub.MustPublish(t, "queue/jobs", 1, false, j)
	}
	pub.Settle(t)
	b.flush(t)
	w1 := mqtttest.Connect(t, b.addr, "worker-1", true)
	w1.MustSubscribe(t, "queue/jobs", 1)
	if got := payloads(w1.Barrier(t, "queue/jobs")); !slices.Equal(got, want) {
		t.Errorf("first worker: received %q, want %q", got, want)
	}
	b.flush(t)
	w2 := mqtttest.Connect(t, b.addr, "worker-2", true)
	w2.MustSubscribe(t, "queue/jobs", 1)
	if got := w2.Barrier(t, "queue/jobs"); len(got) != 0 {
		t.Errorf("second worker: received %v, want nothing", got)
	}
}

func TestRedisControlChannel(t *testing.T) {
	// The spec's SUB/UNSUB requests on the Redis channel subscribe and unsubscribe a connected
	// client at once, and a client that is not connected when it connects.
	tg := redisTarget(t)
	b := tg.start(t)
	ctx := context.Background()
	control := func(typ, id, topic string) {
		t.Helper()
		msg := fmt.Sprintf(`{"type": %q, "clientid": %q, "topic": %q, "qos": 1}`, typ, id, topic)
		if err := tg.redis.Publish(ctx, tg.channel(), msg).Err(); err != nil {
			t.Fatal(err)
		}
	}
	dev := mqtttest.Connect(t, b.addr, "dev-8", true)
	pub := mqtttest.Connect(t, b.addr, "pub-8", true)
	control("subscribe", "dev-8", "ctl/dev-8")
	mqtttest.Eventually(t, "the subscription", func() bool {
		pub.MustPublish(t, "ctl/dev-8", 0, false, "ping")
		return slices.Contains(payloads(dev.Received()), "ping")
	})
	if qos, err := tg.redis.HGet(ctx, tg.prefix+"mqtt:sub:dev-8", "ctl/dev-8").Result(); err != nil || qos != "1" {
		t.Errorf("mqtt:sub:dev-8 ctl/dev-8 = %q, %v; want 1", qos, err)
	}

	control("unsubscribe", "dev-8", "ctl/dev-8")
	mqtttest.Eventually(t, "the unsubscription", func() bool {
		before := len(dev.Received())
		pub.MustPublish(t, "ctl/dev-8", 0, false, "after")
		pub.Settle(t)
		dev.Settle(t)
		return !slices.Contains(payloads(dev.Received()[before:]), "after")
	})
	if n, err := tg.redis.HLen(ctx, tg.prefix+"mqtt:sub:dev-8").Result(); err != nil || n != 0 {
		t.Errorf("mqtt:sub:dev-8 has %d fields (%v), want none", n, err)
	}

	control("subscribe", "dev-9", "ctl/dev-9")
	mqtttest.Eventually(t, "the request to be recorded", func() bool {
		ok, err := tg.redis.HExists(ctx, tg.prefix+"mqtt:sub:dev-9", "ctl/dev-9").Result()
		return err == nil && ok
	})
	dev9 := mqtttest.Connect(t, b.addr, "dev-9", true)
	dev9.Barrier(t, "ctl/dev-9") // reaches dev-9 only through the recorded subscription
}

// TestBehaviours runs the client-side behaviours that need no database against the broker
// (on each store) and against Mosquitto.
func TestBehaviours(t *testing.T) {
	t.Run("mosquitto", func(t *testing.T) {
		t.Parallel()
		behaviours(t, testenv.Mosquitto(t), testenv.Name(t, 20), func(*testing.T, string) {})
	})
	forEachStore(t, func(t *testing.T, tg *target) {
		behaviours(t, tg.start(t).addr, "b", func(t *testing.T, id string) { tg.waitState(t, id, "0") })
	})
}

// behaviours runs the tests on the broker at addr, with topics and client IDs under prefix;
// gone waits, where the test can tell, until the broker has seen a client disconnect.
func behaviours(t *testing.T, addr, prefix string, gone func(t *testing.T, clientID string)) {
	topic := func(s string) string { return prefix + "/" + s }
	id := func(s string) string { return prefix + "-" + s }

	t.Run("order and QoS", func(t *testing.T) {
		sub := mqtttest.Connect(t, addr, id("q-sub"), true)
		sub.MustSubscribe(t, topic("q/#"), 2)
		pub := mqtttest.Connect(t, addr, id("q-pub"), true)
		var want []mqtttest.Received
		for i := range 12 {
			qos := byte(i % 3)
			payload := fmt.Sprintf("m%d", i)
			pub.MustPublish(t, topic("q/x"), qos, false, payload)
			want = append(want, mqtttest.Received{Topic: topic("q/x"), Payload: payload, QoS: qos})
		}
		pub.Settle(t)
		if got := sub.Barrier(t, topic("q/barrier")); !slices.Equal(got, want) {
			t.Errorf("received\n%v\nwant\n%v", got, want)
		}
	})

	t.Run("retained to a wildcard subscriber", func(t *testing.T) {
		pub := mqtttest.Connect(t, addr, id("r-pub"), true)
		// QoS 0: a store's history of QoS 1 messages (on_message_fetch) is not Mosquitto's.
		pub.MustPublish(t, topic("r/a/1"), 0, true, "one")
		pub.MustPublish(t, topic("r/b/2"), 0, true, "two")
		pub.MustPublish(t, topic("r/c"), 0, true, "gone")
		pub.MustPublish(t, topic("r/c"), 0, true, "")
		pub.Settle(t)
		sub := mqtttest.Connect(t, addr, id("r-sub"), true)
		sub.MustSubscribe(t, topic("r/#"), 1) // mochi 2.7.9: r/+/# does not match r/barrier
		got := sub.Barrier(t, topic("r/barrier"))
		slices.SortFunc(got, func(a, b mqtttest.Received) int { return strings.Compare(a.Topic, b.Topic) })
		want := []mqtttest.Received{{Topic: topic("r/a/1"), Payload: "one", Retain: true}, {Topic: topic("r/b/2"), Payload: "two", Retain: true}}
		if !slices.Equal(got, want) {
			t.Errorf("received %v, want %v", got, want)
		}
		for _, tp := range []string{"r/a/1", "r/b/2"} { // leave nothing retained behind
			pub.MustPublish(t, topic(tp), 0, true, "")
		}
	})

	t.Run("unsubscribe", func(t *testing.T) {
		sub := mqtttest.Connect(t, addr, id("u-sub"), true)
		sub.MustSubscribe(t, topic("u/keep"), 1)
		sub.MustSubscribe(t, topic("u/drop"), 1)
		mqtttest.Wait(t, sub.Unsubscribe(topic("u/drop")))
		pub := mqtttest.Connect(t, addr, id("u-pub"), true)
		pub.MustPublish(t, topic("u/drop"), 1, false, "dropped")
		pub.MustPublish(t, topic("u/keep"), 1, false, "kept")
		pub.Settle(t)
		mqtttest.Eventually(t, "the kept message", func() bool { return len(sub.Received()) == 1 })
		if got := sub.Received(); got[0].Payload != "kept" {
			t.Errorf("received %v", got)
		}
	})

	t.Run("persistent session", func(t *testing.T) {
		sub := mqtttest.Connect(t, addr, id("p-sub"), false)
		sub.MustSubscribe(t, topic("p/#"), 1)
		sub.Disconnect(100)
		gone(t, id("p-sub"))
		pub := mqtttest.Connect(t, addr, id("p-pub"), true)
		for i := range 3 {
			pub.MustPublish(t, topic("p/x"), 1, false, fmt.Sprint(i))
		}
		pub.Settle(t)
		sub = mqtttest.Connect(t, addr, id("p-sub"), false)
		if !sub.SessionPresent {
			t.Error("CONNACK: no session present")
		}
		mqtttest.Eventually(t, "the queued messages", func() bool { return len(sub.Received()) == 3 })
		got := payloads(sub.Received())
		slices.Sort(got) // mochi resends a session's messages in no particular order
		if !slices.Equal(got, []string{"0", "1", "2"}) {
			t.Errorf("received %q", got)
		}
		sub.Disconnect(100)
		mqtttest.Connect(t, addr, id("p-sub"), true) // ends the session
	})
}

func payloads(rs []mqtttest.Received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Payload)
	}
	return out
}
