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
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for the test's own queries
	"github.com/redis/go-redis/v9"

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
	).Replace(string(defaultRedisConfig))
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
	b, err := start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
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
	eventually(t, id+" state "+state, func() bool {
		row, ok := tg.client(t, id)
		return ok && row.State == state
	})
}

func TestClientState(t *testing.T) {
	forEachStore(t, func(t *testing.T, tg *target) {
		b := tg.start(t)
		c := connect(t, b.addr, "dev-1", true)
		tg.waitState(t, "dev-1", "1")
		if row, _ := tg.client(t, "dev-1"); row != (clientRow{"1", "node1", true, false}) {
			t.Errorf("online: %+v; want state 1, node node1, online_at set, no offline_at", row)
		}
		c.Disconnect(100)
		tg.waitState(t, "dev-1", "0")
		if row, _ := tg.client(t, "dev-1"); !row.Online || !row.Offline {
			t.Errorf("offline: %+v; want online_at and offline_at set", row)
		}
		connect(t, b.addr, "dev-1", true)
		tg.waitState(t, "dev-1", "1")
	})
}

func TestOfflineMessages(t *testing.T) {
	// Clean sessions: mochi forgets the subscriber when it disconnects; what it gets when it
	// subscribes again comes from the store, after its acknowledged position.
	forEachStore(t, func(t *testing.T, tg *target) {
		tp := func(s string) string { return tg.offline + "/" + s }
		b := tg.start(t)
		sub := connect(t, b.addr, "sub-1", true)
		sub.subscribe(t, tp("#"), 1)
		pub := connect(t, b.addr, "pub-1", true)
		pub.publish(t, tp("a"), 1, false, "live")
		eventually(t, "the live message", func() bool { return len(sub.received()) == 1 })
		sub.Disconnect(100)
		tg.waitState(t, "sub-1", "0")

		var want []string
		for i := range 5 {
			want = append(want, fmt.Sprintf("m%d", i))
			pub.publish(t, tp("a"), 1, false, want[i])
		}
		pub.publish(t, tp("b"), 0, false, "qos 0 is not stored")
		pub.settle(t)
		b.flush(t)

		sub = connect(t, b.addr, "sub-1", true)
		sub.subscribe(t, tp("#"), 1)
		if got := payloads(sub.barrier(t, tp("barrier"))); !slices.Equal(got, want) {
			t.Errorf("after reconnecting: received %q, want %q", got, want)
		}
		b.flush(t) // the acknowledgements
		sub.Disconnect(100)
		tg.waitState(t, "sub-1", "0")

		sub = connect(t, b.addr, "sub-1", true)
		sub.subscribe(t, tp("#"), 1)
		if got := sub.barrier(t, tp("barrier")); len(got) != 0 {
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
		sub := connect(t, b.addr, "sub-2", false)
		sub.subscribe(t, tp("#"), 1)
		sub.Disconnect(100)
		tg.waitState(t, "sub-2", "0")
		pub := connect(t, b.addr, "pub-2", true)
		var want []string
		for i := range 5 {
			want = append(want, fmt.Sprintf("m%d", i))
			pub.publish(t, tp("t"), 1, false, want[i])
		}
		pub.Disconnect(100)
		tg.waitState(t, "pub-2", "0")

		b = tg.restart(t, b)
		sub = connect(t, b.addr, "sub-2", false)
		if sub.sessionPresent {
			t.Fatal("the restarted broker resumed the session: the test would not test the database")
		}
		sub.subscribe(t, tp("#"), 1)
		if got := payloads(sub.barrier(t, tp("barrier"))); !slices.Equal(got, want) {
			t.Errorf("after the restart: received %q, want %q", got, want)
		}
		b.flush(t)
		sub.Disconnect(100)
		tg.waitState(t, "sub-2", "0")

		sub = connect(t, b.addr, "sub-2", false)
		sub.subscribe(t, tp("#"), 1)
		if got := sub.barrier(t, tp("barrier")); len(got) != 0 {
			t.Errorf("after reconnecting again: received %v, want nothing", got)
		}
	})
}

func TestRetainedSurviveRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, tg *target) {
		b := tg.start(t)
		pub := connect(t, b.addr, "pub-3", true)
		// QoS 0: on_message_publish stores QoS 1 and 2 only, so the subscriber's history
		// (on_message_fetch) stays out of this test; on_message_retain stores any QoS.
		pub.publish(t, "ret/a/1", 0, true, "one")
		pub.publish(t, "ret/b/2", 0, true, "two")
		pub.publish(t, "ret/c", 0, true, "gone")
		pub.publish(t, "ret/c", 0, true, "") // deletes the retained message of ret/c
		pub.publish(t, "ret/a/1", 0, false, "not retained")
		pub.Disconnect(100)
		tg.waitState(t, "pub-3", "0") // the broker has handled pub-3's packets

		b = tg.restart(t, b)
		all := connect(t, b.addr, "sub-3a", true)
		all.subscribe(t, "ret/#", 1)
		want := []received{{"ret/a/1", "one", 0, true}, {"ret/b/2", "two", 0, true}}
		if got := all.barrier(t, "ret/barrier"); !slices.Equal(got, want) {
			t.Errorf("ret/#: received %v, want %v", got, want)
		}
		one := connect(t, b.addr, "sub-3b", true)
		one.subscribe(t, "ret/+/1", 1)
		if got := one.barrier(t, "ret/x/1"); !slices.Equal(got, want[:1]) {
			t.Errorf("ret/+/1: received %v, want %v", got, want[:1])
		}
	})
}

func TestStoredSubscriptions(t *testing.T) {
	forEachStore(t, func(t *testing.T, tg *target) {
		b := tg.start(t) // creates the tables
		tg.addSubscription(t, "dev-7", "cmd/dev-7", 1)
		dev := connect(t, b.addr, "dev-7", true)
		// The barrier reaches dev-7 only through the stored subscription.
		if got := dev.barrier(t, "cmd/dev-7"); len(got) != 0 {
			t.Errorf("received %v before the barrier", got)
		}
		pub := connect(t, b.addr, "pub-7", true)
		pub.publish(t, "cmd/dev-7", 1, false, "reboot")
		pub.settle(t)
		eventually(t, "the command", func() bool { return len(dev.received()) == 2 })
		if got := dev.received()[1]; got != (received{"cmd/dev-7", "reboot", 1, false}) {
			t.Errorf("received %v", got)
		}
	})
}

func TestRedisQueue(t *testing.T) {
	// on_message_fetch_for_queue: each stored message goes to one subscriber, and is gone
	// once acknowledged.
	tg := redisTarget(t)
	b := tg.start(t)
	pub := connect(t, b.addr, "pub-q", true)
	want := []string{"j0", "j1", "j2"}
	for _, j := range want {
		pub.publish(t, "queue/jobs", 1, false, j)
	}
	pub.settle(t)
	b.flush(t)
	w1 := connect(t, b.addr, "worker-1", true)
	w1.subscribe(t, "queue/jobs", 1)
	if got := payloads(w1.barrier(t, "queue/jobs")); !slices.Equal(got, want) {
		t.Errorf("first worker: received %q, want %q", got, want)
	}
	b.flush(t)
	w2 := connect(t, b.addr, "worker-2", true)
	w2.subscribe(t, "queue/jobs", 1)
	if got := w2.barrier(t, "queue/jobs"); len(got) != 0 {
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
	dev := connect(t, b.addr, "dev-8", true)
	pub := connect(t, b.addr, "pub-8", true)
	control("subscribe", "dev-8", "ctl/dev-8")
	eventually(t, "the subscription", func() bool {
		pub.publish(t, "ctl/dev-8", 0, false, "ping")
		return slices.Contains(payloads(dev.received()), "ping")
	})
	if qos, err := tg.redis.HGet(ctx, tg.prefix+"mqtt:sub:dev-8", "ctl/dev-8").Result(); err != nil || qos != "1" {
		t.Errorf("mqtt:sub:dev-8 ctl/dev-8 = %q, %v; want 1", qos, err)
	}

	control("unsubscribe", "dev-8", "ctl/dev-8")
	eventually(t, "the unsubscription", func() bool {
		before := len(dev.received())
		pub.publish(t, "ctl/dev-8", 0, false, "after")
		pub.settle(t)
		dev.settle(t)
		return !slices.Contains(payloads(dev.received()[before:]), "after")
	})
	if n, err := tg.redis.HLen(ctx, tg.prefix+"mqtt:sub:dev-8").Result(); err != nil || n != 0 {
		t.Errorf("mqtt:sub:dev-8 has %d fields (%v), want none", n, err)
	}

	control("subscribe", "dev-9", "ctl/dev-9")
	eventually(t, "the request to be recorded", func() bool {
		ok, err := tg.redis.HExists(ctx, tg.prefix+"mqtt:sub:dev-9", "ctl/dev-9").Result()
		return err == nil && ok
	})
	dev9 := connect(t, b.addr, "dev-9", true)
	dev9.barrier(t, "ctl/dev-9") // reaches dev-9 only through the recorded subscription
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
		sub := connect(t, addr, id("q-sub"), true)
		sub.subscribe(t, topic("q/#"), 2)
		pub := connect(t, addr, id("q-pub"), true)
		var want []received
		for i := range 12 {
			qos := byte(i % 3)
			payload := fmt.Sprintf("m%d", i)
			pub.publish(t, topic("q/x"), qos, false, payload)
			want = append(want, received{topic("q/x"), payload, qos, false})
		}
		pub.settle(t)
		if got := sub.barrier(t, topic("q/barrier")); !slices.Equal(got, want) {
			t.Errorf("received\n%v\nwant\n%v", got, want)
		}
	})

	t.Run("retained to a wildcard subscriber", func(t *testing.T) {
		pub := connect(t, addr, id("r-pub"), true)
		// QoS 0: a store's history of QoS 1 messages (on_message_fetch) is not Mosquitto's.
		pub.publish(t, topic("r/a/1"), 0, true, "one")
		pub.publish(t, topic("r/b/2"), 0, true, "two")
		pub.publish(t, topic("r/c"), 0, true, "gone")
		pub.publish(t, topic("r/c"), 0, true, "")
		pub.settle(t)
		sub := connect(t, addr, id("r-sub"), true)
		sub.subscribe(t, topic("r/#"), 1) // mochi 2.7.9: r/+/# does not match r/barrier
		got := sub.barrier(t, topic("r/barrier"))
		slices.SortFunc(got, func(a, b received) int { return strings.Compare(a.Topic, b.Topic) })
		want := []received{{topic("r/a/1"), "one", 0, true}, {topic("r/b/2"), "two", 0, true}}
		if !slices.Equal(got, want) {
			t.Errorf("received %v, want %v", got, want)
		}
		for _, tp := range []string{"r/a/1", "r/b/2"} { // leave nothing retained behind
			pub.publish(t, topic(tp), 0, true, "")
		}
	})

	t.Run("unsubscribe", func(t *testing.T) {
		sub := connect(t, addr, id("u-sub"), true)
		sub.subscribe(t, topic("u/keep"), 1)
		sub.subscribe(t, topic("u/drop"), 1)
		wait(t, sub.Unsubscribe(topic("u/drop")))
		pub := connect(t, addr, id("u-pub"), true)
		pub.publish(t, topic("u/drop"), 1, false, "dropped")
		pub.publish(t, topic("u/keep"), 1, false, "kept")
		pub.settle(t)
		eventually(t, "the kept message", func() bool { return len(sub.received()) == 1 })
		if got := sub.received(); got[0].Payload != "kept" {
			t.Errorf("received %v", got)
		}
	})

	t.Run("persistent session", func(t *testing.T) {
		sub := connect(t, addr, id("p-sub"), false)
		sub.subscribe(t, topic("p/#"), 1)
		sub.Disconnect(100)
		gone(t, id("p-sub"))
		pub := connect(t, addr, id("p-pub"), true)
		for i := range 3 {
			pub.publish(t, topic("p/x"), 1, false, fmt.Sprint(i))
		}
		pub.settle(t)
		sub = connect(t, addr, id("p-sub"), false)
		if !sub.sessionPresent {
			t.Error("CONNACK: no session present")
		}
		eventually(t, "the queued messages", func() bool { return len(sub.received()) == 3 })
		got := payloads(sub.received())
		slices.Sort(got) // mochi resends a session's messages in no particular order
		if !slices.Equal(got, []string{"0", "1", "2"}) {
			t.Errorf("received %q", got)
		}
		sub.Disconnect(100)
		connect(t, addr, id("p-sub"), true) // ends the session
	})
}

type received struct {
	Topic   string
	Payload string
	QoS     byte
	Retain  bool
}

func payloads(rs []received) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Payload)
	}
	return out
}

// client is a paho client that records what it receives.
type client struct {
	paho.Client
	id             string
	settling       bool // subscribed to its settle topic
	barriers       int
	sessionPresent bool
	mu             sync.Mutex
	msgs           []received
}

func connect(t *testing.T, addr, id string, clean bool) *client {
	t.Helper()
	c := &client{id: id}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetAutoReconnect(false).SetOrderMatters(true).SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.msgs = append(c.msgs, received{m.Topic(), string(m.Payload()), m.Qos(), m.Retained()})
		})
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	wait(t, tok)
	c.sessionPresent = tok.(*paho.ConnectToken).SessionPresent()
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func wait(t *testing.T, tok paho.Token) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("MQTT operation timed out")
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
}

func (c *client) subscribe(t *testing.T, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	wait(t, tok)
	if granted := tok.(*paho.SubscribeToken).Result()[filter]; granted > 2 {
		t.Fatalf("subscribe %s: refused (%#x)", filter, granted)
	}
}

func (c *client) publish(t *testing.T, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	wait(t, c.Publish(topic, qos, retain, payload))
}

func (c *client) received() []received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// barrier publishes a QoS 0 message to topic, which c is subscribed to, and returns what c
// received before it, earlier barriers left out: what the broker sent c in answer to the packets c sent before (a broker
// handles a client's packets in order).
func (c *client) barrier(t *testing.T, topic string) []received {
	t.Helper()
	c.barriers++
	payload := fmt.Sprintf("barrier %d", c.barriers)
	c.publish(t, topic, 0, false, payload)
	var got []received
	eventually(t, "the barrier on "+topic, func() bool {
		got = c.received()
		return slices.ContainsFunc(got, func(r received) bool { return r.Payload == payload })
	})
	got = got[:slices.IndexFunc(got, func(r received) bool { return r.Payload == payload })]
	return slices.DeleteFunc(got, func(r received) bool { return strings.HasPrefix(r.Payload, "barrier ") })
}

// settle returns once the broker has fully handled the messages c published before: MQTT
// acknowledges a publish when it is received, not when it has been passed on (mochi acks
// before it routes), and does not acknowledge QoS 0 at all.
func (c *client) settle(t *testing.T) {
	t.Helper()
	topic := "settle/" + c.id
	if !c.settling {
		c.subscribe(t, topic, 0)
		c.settling = true
	}
	c.barrier(t, topic)
}

// eventually waits until cond holds, failing the test after 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
