package main

// End-to-end test of the Cassandra store: the broker of this command with the spec's
// Cassandra rules (cassastore's default configuration, on a keyspace of the test's own),
// driven by a real MQTT client, with the results checked in the EMQX tables through gocql.

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// cassaTarget is the spec's Cassandra configuration pointed at the test's keyspace, and a
// session of the test's own to read the tables.
func cassaTarget(t *testing.T) (*target, *gocql.Session, string) {
	env := testenv.Cassandra(t)
	node := net.JoinHostPort(env.Hosts[0], strconv.Itoa(env.Port))
	conf := strings.NewReplacer(
		"pool1.nodes = 127.0.0.1:9042", "pool1.nodes = "+node,
		"pool1.keyspace = mqtt", "pool1.keyspace = "+env.Keyspace,
	).Replace(string(config{Store: "cassa"}.defaultText()))
	if !strings.Contains(conf, env.Keyspace) {
		t.Fatal("the default Cassandra configuration has no pool1.keyspace = mqtt line to replace")
	}
	cl := gocql.NewCluster(env.Hosts...)
	cl.Port, cl.Timeout = env.Port, 30*time.Second
	sess, err := cl.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	return &target{kind: "cassa", configFile: writeConfig(t, conf)}, sess, env.Keyspace
}

func TestCassaEndToEnd(t *testing.T) {
	tg, sess, ks := cassaTarget(t)
	b := tg.start(t)
	state := func(id string) int {
		var st int
		if err := sess.Query(`SELECT state FROM `+ks+`.client WHERE client_id = ?`, id).Scan(&st); err != nil {
			return -1
		}
		return st
	}

	// Offline messages, by the subscriber's positions (clean sessions: mochi forgets it).
	sub := mqtttest.Connect(t, b.addr, "sub-1", true)
	sub.MustSubscribe(t, "off/#", 1)
	mqtttest.Eventually(t, "sub-1 online in client", func() bool { b.flush(t); return state("sub-1") == 1 })
	sub.Disconnect(100)
	mqtttest.Eventually(t, "sub-1 offline in client", func() bool { b.flush(t); return state("sub-1") == 0 })

	pub := mqtttest.Connect(t, b.addr, "pub-1", true)
	var want []string
	for i := range 5 {
		want = append(want, "m"+strconv.Itoa(i))
		pub.MustPublish(t, "off/a", 1, false, want[i])
	}
	pub.MustPublish(t, "off/b", 0, false, "qos 0 is not stored")
	pub.MustPublish(t, "ret/x", 1, true, "retained")
	pub.Settle(t)
	b.flush(t)
	var n int
	if err := sess.Query(`SELECT count(*) FROM ` + ks + `.msg WHERE topic = 'off/a'`).Scan(&n); err != nil || n != 5 {
		t.Errorf("msg rows on off/a: %d (%v), want 5", n, err)
	}
	var rid string
	if err := sess.Query(`SELECT msgid FROM ` + ks + `.retain WHERE topic = 'ret/x'`).Scan(&rid); err != nil || rid == "" {
		t.Errorf("retain row of ret/x: %q (%v)", rid, err)
	}

	sub = mqtttest.Connect(t, b.addr, "sub-1", true)
	sub.MustSubscribe(t, "off/#", 1)
	if got := payloads(sub.Barrier(t, "off/barrier")); !slices.Equal(got, want) {
		t.Errorf("after reconnecting: received %q, want %q", got, want)
	}
	b.flush(t) // the acknowledgements
	var pos string
	if err := sess.Query(`SELECT msgid FROM ` + ks + `.acked WHERE client_id = 'sub-1' AND topic = 'off/a'`).Scan(&pos); err != nil || pos == "" {
		t.Errorf("acked position of sub-1 on off/a: %q (%v)", pos, err)
	}
	// The spec's custom cql on session.unsubscribed deletes the acked row of the filter.
	if err := sess.Query(`INSERT INTO ` + ks + `.acked (client_id, topic, msgid) VALUES ('sub-1', 'del/x', 'zzz')`).Exec(); err != nil {
		t.Fatal(err)
	}
	sub.MustSubscribe(t, "del/x", 1)
	if tok := sub.Unsubscribe("del/x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	mqtttest.Eventually(t, "the acked row of del/x deleted", func() bool {
		b.flush(t)
		var id string
		return sess.Query(`SELECT msgid FROM `+ks+`.acked WHERE client_id = 'sub-1' AND topic = 'del/x'`).Scan(&id) == gocql.ErrNotFound
	})
	sub.Disconnect(100)

	sub = mqtttest.Connect(t, b.addr, "sub-1", true)
	sub.MustSubscribe(t, "off/#", 1)
	if got := sub.Barrier(t, "off/barrier"); len(got) != 0 {
		t.Errorf("after reconnecting again: received %v, want nothing", got)
	}
	sub.MustSubscribe(t, "ret/+", 1)
	mqtttest.Eventually(t, "the retained message", func() bool {
		for _, r := range sub.Received() {
			if r.Topic == "ret/x" && r.Payload == "retained" {
				return true
			}
		}
		return false
	})

	// Stored subscriptions (on_subscription_lookup) are applied when a client connects.
	if err := sess.Query(`INSERT INTO ` + ks + `.sub (client_id, topic, qos) VALUES ('sub-2', 'proxy/t', 1)`).Exec(); err != nil {
		t.Fatal(err)
	}
	sub2 := mqtttest.Connect(t, b.addr, "sub-2", true)
	// The barrier reaches sub-2 only through the stored subscription.
	if got := sub2.Barrier(t, "proxy/t"); len(got) != 0 {
		t.Errorf("received %v before the barrier", got)
	}
	pub.MustPublish(t, "proxy/t", 1, false, "to the stored subscription")
	mqtttest.Eventually(t, "a message through the stored subscription", func() bool {
		return slices.Contains(payloads(sub2.Received()), "to the stored subscription")
	})
}
