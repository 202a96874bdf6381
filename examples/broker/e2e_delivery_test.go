package main

// End-to-end tests of how the broker delivers stored messages (issue 15), on SQLite, with the
// mosquitto command-line clients and paho.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/hook"
)

// sqliteTarget is a fresh SQLite database of the test's own.
func sqliteTarget(t *testing.T) *target {
	tg := &target{kind: "sqlite", dsn: filepath.Join(t.TempDir(), "data", "mqttstore.db"), offline: "off"}
	tg.openSQL(t, "sqlite")
	return tg
}

// mosquittoSub runs mosquitto_sub against the broker at addr with args, and returns the lines
// it printed (-v: "topic payload").
func mosquittoSub(t *testing.T, addr string, args ...string) []string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mqtttest.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "mosquitto_sub", append([]string{"-h", host, "-p", port, "-v"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	// -W: exit status 27 on timeout, which the caller expects when nothing should come.
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 27) {
		t.Fatalf("mosquitto_sub %s: %v: %s", strings.Join(args, " "), err, errb.String())
	}
	s := strings.TrimSpace(out.String())
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// ackedMid returns the position mqtt_acked holds for the client and topic, 0 if none.
func (tg *target) ackedMid(t *testing.T, clientID, topic string) int64 {
	t.Helper()
	var mid int64
	err := tg.db.QueryRow("SELECT COALESCE(MAX(mid), 0) FROM mqtt_acked WHERE clientid = ? AND topic = ?", clientID, topic).Scan(&mid)
	if err != nil {
		t.Fatal(err)
	}
	return mid
}

// lastMsg returns the id of the newest stored message of topic.
func (tg *target) lastMsg(t *testing.T, topic string) int64 {
	t.Helper()
	var id int64
	if err := tg.db.QueryRow("SELECT COALESCE(MAX(id), 0) FROM mqtt_msg WHERE topic = ?", topic).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestStoredAfterSuback(t *testing.T) {
	// Issue 15.1: mosquitto_sub -c -q 1 -C 3 on a persistent session holding 3 stored
	// messages receives them, acknowledges them and exits; on the next connection nothing
	// comes again, and mqtt_acked holds the last one. The broker restarts before each run,
	// so that the messages come from the database, not from a session mochi kept.
	tg := sqliteTarget(t)
	b := tg.start(t)
	sub := func(args ...string) []string {
		return mosquittoSub(t, b.addr, append([]string{"-c", "-q", "1", "-i", "acc-sub", "-t", "acc/off"}, args...)...)
	}
	want := []string{"acc/off m0", "acc/off m1", "acc/off m2"}
	for run := range 4 {
		pub := mqtttest.Connect(t, b.addr, "pub-acc", true)
		for _, p := range []string{"m0", "m1", "m2"} {
			pub.MustPublish(t, "acc/off", 1, false, p)
		}
		pub.Disconnect(100)
		tg.waitState(t, "pub-acc", "0")
		b = tg.restart(t, b)

		if got := sub("-C", "3"); !slices.Equal(got, want) {
			t.Fatalf("run %d: received %q, want %q", run, got, want)
		}
		// The state row says offline from the previous run already: wait for the position.
		last := tg.lastMsg(t, "acc/off")
		mqtttest.Eventually(t, "mqtt_acked at the last message", func() bool {
			b.flush(t)
			return tg.ackedMid(t, "acc-sub", "acc/off") == last
		})
		if got := sub("-W", "1"); len(got) != 0 {
			t.Fatalf("run %d: reconnecting: received %q again", run, got)
		}
		tg.waitState(t, "acc-sub", "0")
	}
}

// storeBacklog inserts n QoS 1 messages on topic into mqtt_msg, payloads "0" to "n-1", with
// IDs of the broker's kind, as if published while nobody was subscribed.
func (tg *target) storeBacklog(t *testing.T, topic string, n int) {
	t.Helper()
	ids := hook.NewIDGenerator("test")
	tx, err := tg.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	arrived := time.Now().UTC().Format("2006-01-02 15:04:05.000")
	for i := range n {
		_, err := tx.Exec("INSERT INTO mqtt_msg (msgid, topic, sender, node, qos, retain, payload, arrived) VALUES (?, ?, 'pub', 'node1', 1, 0, ?, ?)",
			ids.Next(), topic, []byte(strconv.Itoa(i)), arrived)
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// checkSequence checks that got is "0" to "n-1", in order.
func checkSequence(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Errorf("received %d messages, want %d", len(got), n)
	}
	for i, p := range got {
		if p != strconv.Itoa(i) {
			t.Errorf("message %d is %q, want %d (the backlog in order)", i, p, i)
			return
		}
	}
}

func TestBacklogPaged(t *testing.T) {
	// Issue 15.2: a backlog larger than mochi's in-flight limit (8,192) and than the default
	// rules' max_returned_count is delivered whole, in order, page by page as the
	// acknowledgements come back; nothing is dropped.
	const n = 9000
	tg := sqliteTarget(t)
	b := tg.start(t) // creates the tables
	tg.storeBacklog(t, "big/t", n)
	sub := mqtttest.Connect(t, b.addr, "big-sub", true)
	sub.MustSubscribe(t, "big/#", 1)
	last := 0
	for len(sub.Received()) < n { // progress, or the test times out
		mqtttest.Eventually(t, fmt.Sprintf("more than %d messages", last), func() bool { return len(sub.Received()) > last })
		last = len(sub.Received())
	}
	checkSequence(t, payloads(sub.Barrier(t, "big/barrier")), n)
	mqtttest.Eventually(t, "the position of the last message", func() bool {
		b.flush(t)
		return tg.ackedMid(t, "big-sub", "big/t") == tg.lastMsg(t, "big/t")
	})
}

func TestReceiveMaximum(t *testing.T) {
	// Issue 15.2: an MQTT 5 client with Receive Maximum 5 is never sent more than 5 stored
	// QoS 1 messages unacknowledged, and gets the whole backlog, in order, as it acknowledges.
	const n, rm = 60, 5
	tg := sqliteTarget(t)
	b := tg.start(t)
	tg.storeBacklog(t, "rm/t", n)
	c := dialRaw(t, b.addr, "rm-sub", 5, true, packets.Properties{ReceiveMaximum: rm})
	code, pending := c.subscribe(1, "rm/t", 1)
	if code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	var got []string
	for len(got) < n {
		pending = append(pending, c.sync()...)
		if len(pending) > rm {
			t.Fatalf("%d messages unacknowledged, more than the client's Receive Maximum %d", len(pending), rm)
		}
		if len(pending) == 0 {
			t.Fatalf("nothing more after %d messages", len(got))
		}
		pk := pending[0]
		pending = pending[1:]
		got = append(got, string(pk.Payload))
		c.ack(pk)
	}
	checkSequence(t, got, n)
}

func TestTooLargeSkipped(t *testing.T) {
	// Issue 15.12 and 15.5: stored messages larger than the client's Maximum Packet Size are
	// skipped and counted, the others delivered; the failed writes leave nothing in flight
	// (with Receive Maximum 2, two such phantoms would stop the delivery).
	tg := sqliteTarget(t)
	b := tg.start(t)
	big := strings.Repeat("x", 500)
	payloadsIn := []string{"s0", big, big, "s3", "s4", "s5"}
	ids := hook.NewIDGenerator("test")
	for _, p := range payloadsIn {
		tg.exec(t, "INSERT INTO mqtt_msg (msgid, topic, sender, node, qos, retain, payload, arrived) VALUES (?, 'mps/t', 'pub', 'node1', 1, 0, ?, ?)",
			ids.Next(), []byte(p), time.Now().UTC().Format("2006-01-02 15:04:05.000"))
	}
	c := dialRaw(t, b.addr, "mps-sub", 5, true, packets.Properties{ReceiveMaximum: 2, MaximumPacketSize: 200})
	code, pending := c.subscribe(1, "mps/t", 1)
	if code != 1 {
		t.Fatalf("SUBACK %#x", code)
	}
	var got []string
	for len(got) < 4 {
		pending = append(pending, c.sync()...)
		if len(pending) == 0 {
			t.Fatalf("nothing more after %q", got)
		}
		got = append(got, string(pending[0].Payload))
		c.ack(pending[0])
		pending = pending[1:]
	}
	if want := []string{"s0", "s3", "s4", "s5"}; !slices.Equal(got, want) {
		t.Errorf("received %q, want %q", got, want)
	}
	if n := b.hook.Stats().TooLarge; n != 2 {
		t.Errorf("Stats().TooLarge = %d, want 2", n)
	}
}

func TestStoredMessagesACL(t *testing.T) {
	// Issue 15.3: a client allowed to subscribe to # but denied reading secret/# gets the
	// stored messages it may read, not those on secret/x, as mochi filters live messages.
	tg := sqliteTarget(t)
	tg.configure = func(cfg *config) {
		cfg.Auth = new(auth.Hook)
		cfg.AuthConfig = &auth.Options{Ledger: &auth.Ledger{
			Auth: auth.AuthRules{{Allow: true}},
			ACL:  auth.ACLRules{{Client: "acl-sub", Filters: auth.Filters{"secret/#": auth.Deny}}},
		}}
	}
	b := tg.start(t)
	pub := mqtttest.Connect(t, b.addr, "acl-pub", true)
	pub.MustPublish(t, "secret/x", 1, false, "secret")
	pub.MustPublish(t, "open/x", 1, false, "open")
	pub.Settle(t)
	b.flush(t)
	b = tg.restart(t, b)
	sub := mqtttest.Connect(t, b.addr, "acl-sub", true)
	sub.MustSubscribe(t, "#", 1)
	got := payloads(sub.Barrier(t, "acl/barrier"))
	if want := []string{"open"}; !slices.Equal(got, want) {
		t.Errorf("received %q, want %q", got, want)
	}
	if n := b.hook.Stats().Denied; n != 1 {
		t.Errorf("Stats().Denied = %d, want 1", n)
	}
}

func TestQoS0StoredPosition(t *testing.T) {
	// Issue 15.4: with on_message_store (which stores QoS 0 messages too), the QoS 0 stored
	// messages a subscriber was sent do not come again on every connection: their position
	// is recorded when they are sent, as a QoS 1 message's is when it is acknowledged.
	tg := sqliteTarget(t)
	conf := strings.Replace(string(config{Store: "sqlite"}.defaultText()), `"on_message_publish"`, `"on_message_store"`, 1)
	file := writeConfig(t, conf)
	tg.configure = func(cfg *config) { cfg.ConfigFile = file }
	b := tg.start(t)
	pub := mqtttest.Connect(t, b.addr, "q0-pub", true)
	for _, p := range []string{"m0", "m1", "m2"} {
		pub.MustPublish(t, "q0/t", 0, false, p)
	}
	pub.Settle(t)
	b.flush(t)
	sub := mqtttest.Connect(t, b.addr, "q0-sub", true)
	sub.MustSubscribe(t, "q0/t", 0)
	if got, want := payloads(sub.Barrier(t, "q0/t")), []string{"m0", "m1", "m2"}; !slices.Equal(got, want) {
		t.Fatalf("first connection: received %q, want %q", got, want)
	}
	sub.Disconnect(100)
	tg.waitState(t, "q0-sub", "0")
	var m2 int64
	if err := tg.db.QueryRow("SELECT id FROM mqtt_msg WHERE topic = 'q0/t' AND payload = ?", []byte("m2")).Scan(&m2); err != nil {
		t.Fatal(err)
	}
	mqtttest.Eventually(t, "the position of m2", func() bool {
		b.flush(t)
		return tg.ackedMid(t, "q0-sub", "q0/t") == m2
	})
	sub = mqtttest.Connect(t, b.addr, "q0-sub", true)
	sub.MustSubscribe(t, "q0/t", 0)
	if got := payloads(sub.Barrier(t, "q0/t")); len(got) != 0 {
		t.Errorf("next connection: received %q again", got)
	}
}

func TestSubscribeAfterStoredDeliveries(t *testing.T) {
	// Issue 15.13: mochi refuses a SUBSCRIBE whose packet ID is the ID of one of its own
	// deliveries in flight to the client. A client counts its packet IDs from 1, as mochi
	// does for its deliveries: stored deliveries not yet acknowledged must not take the IDs
	// the client's next SUBSCRIBE uses.
	tg := sqliteTarget(t)
	b := tg.start(t)
	tg.storeBacklog(t, "pid/a", 3)
	c := dialRaw(t, b.addr, "pid-sub", 4, true, packets.Properties{})
	code, pubs := c.subscribe(1, "pid/a", 1)
	if code != 1 {
		t.Fatalf("first SUBSCRIBE: SUBACK %#x", code)
	}
	if pubs = append(pubs, c.sync()...); len(pubs) != 3 {
		t.Fatalf("received %d stored messages, want 3", len(pubs))
	}
	// Not acknowledged yet: the three are in flight.
	for id := uint16(2); id <= 4; id++ {
		if code, _ := c.subscribe(id, fmt.Sprintf("pid/b%d", id), 1); code != 1 {
			t.Errorf("SUBSCRIBE with packet ID %d, three stored deliveries in flight: SUBACK %#x, want 1", id, code)
		}
	}
	for _, pk := range pubs {
		c.ack(pk)
	}
}

// syncBuffer is a bytes.Buffer for a logger that several goroutines write to.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogHygiene(t *testing.T) {
	// Issue 15, the example broker: mochi's packet dumps must not log a client's password
	// (a second CONNECT on one socket), nor a 3 MB line for a 1 MB PUBLISH to an invalid
	// topic.
	tg := sqliteTarget(t)
	logs := new(syncBuffer)
	tg.configure = func(cfg *config) {
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	b := tg.start(t)
	const secret = "hunter2-secret"
	connect := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), ClientIdentifier: "log-1", Clean: true, Keepalive: 60,
			UsernameFlag: true, Username: []byte("user"), PasswordFlag: true, Password: []byte(secret)},
	}
	c := dialRaw(t, b.addr, "log-0", 4, true, packets.Properties{})
	c.write(connect) // a second CONNECT: a protocol violation, which mochi logs with the packet
	c.readClosed()

	c = dialRaw(t, b.addr, "log-2", 4, true, packets.Properties{})
	c.write(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   "a/+",
		Payload:     bytes.Repeat([]byte("p"), 1<<20),
	})
	c.readClosed()
	mqtttest.Eventually(t, "the logs of both", func() bool {
		return strings.Count(logs.String(), "error processing packet") >= 2
	})
	for line := range strings.Lines(logs.String()) {
		if strings.Contains(line, secret) || strings.Contains(line, strings.Trim(fmt.Sprint([]byte(secret)), "[]")) {
			t.Errorf("the password is in the log: %.300s", line)
		}
		if len(line) > 8<<10 {
			t.Errorf("a log line of %d bytes: %.300s", len(line), line)
		}
	}
}
