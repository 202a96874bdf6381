package cassastore_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/cassastore"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// viaProxy makes the store reach its node through p: gocql connects to the addresses the
// node advertises (system.local, system.peers), so every one of them is translated to the
// proxy's.
func viaProxy(t testing.TB, cfg cassastore.Config, p *testenv.Proxy) cassastore.Config {
	t.Helper()
	host, portText, err := net.SplitHostPort(p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portText)
	ip := net.ParseIP(host)
	cfg.Hosts, cfg.Port = []string{host}, port
	cfg.Cluster = func(cl *gocql.ClusterConfig) {
		cl.AddressTranslator = gocql.AddressTranslatorFunc(func(net.IP, int) (net.IP, int) { return ip, port })
	}
	return cfg
}

// TestNodeDownUnderLoad publishes steadily through the store while its node is unreachable
// for 30 s (the proxy resets every connection), then checks that every message was stored
// exactly once, read back from msg with the node's own query, and that nothing failed or was
// dropped.
func TestNodeDownUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("30 s outage; not with -short")
	}
	cfg := testConfig(t)
	proxy := testenv.NewProxy(t, net.JoinHostPort(cfg.Hosts[0], strconv.Itoa(cfg.Port)))
	direct := open(t, cfg) // creates the schema, and reads back past the proxy
	defer direct.Close(context.Background())
	pcfg := viaProxy(t, cfg, proxy)
	pcfg.EnsureSchema = false
	pcfg.Options = backend.Options{QueryTimeout: 10 * time.Second, ConnectTimeout: 2 * time.Second, PoolSize: 2,
		Retry: backend.Retry{MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}}
	s := open(t, pcfg)
	defer s.Close(context.Background())
	act, err := s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if err != nil {
		t.Fatal(err)
	}
	pub := act.(hook.WriteAction)

	const topics, rate = 10, 50 // messages per second
	ids := hook.NewIDGenerator("faults")
	sent := make(map[string]string) // msgid -> topic
	ctx := context.Background()
	publishFor := func(d time.Duration) {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for end := time.Now().Add(d); time.Now().Before(end); <-tick.C {
			m := &hook.Message{ID: ids.Next(), Topic: fmt.Sprint("down/", len(sent)%topics), QoS: 1, From: "pub",
				Payload: []byte(fmt.Sprint("m", len(sent))), Timestamp: time.Now()}
			if err := pub.Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
				t.Fatalf("Write: %v", err)
			}
			sent[m.ID] = m.Topic
		}
	}
	publishFor(3 * time.Second)
	proxy.Set(testenv.Reset)
	publishFor(30 * time.Second)
	queued := s.Stats().Queued
	proxy.Set(testenv.Pass)
	publishFor(3 * time.Second)
	fctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := s.Flush(fctx); err != nil {
		t.Fatalf("Flush after the node came back: %v (stats %+v)", err, s.Stats())
	}
	st := s.Stats()

	got := make(map[string]int)
	for i := range topics {
		iter := direct.Session().Query(`SELECT msgid FROM `+direct.Keyspace()+`.msg WHERE topic = ?`, fmt.Sprint("down/", i)).IterContext(fctx)
		var id string
		for iter.Scan(&id) {
			got[id]++
		}
		if err := iter.Close(); err != nil {
			t.Fatal(err)
		}
	}
	missing, dup, extra := 0, 0, 0
	for id := range sent {
		switch got[id] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	for id := range got {
		if _, ok := sent[id]; !ok {
			extra++
		}
	}
	t.Logf("sent %d, stored %d, queued when the node came back %d; stats: success %d, failed %d, retried %d, dropped %v",
		len(sent), len(got), queued, st.Success, st.Failed, st.Retried, st.Dropped)
	if missing > 0 || dup > 0 || extra > 0 {
		t.Errorf("%d of %d messages missing, %d stored twice, %d stored that were not sent", missing, len(sent), dup, extra)
	}
	if st.Failed != 0 || sum(st.Dropped) != 0 {
		t.Errorf("stats: %+v; want nothing failed or dropped", st)
	}
	if st.Success != uint64(len(sent)) {
		t.Errorf("stats: %d successes for %d messages", st.Success, len(sent))
	}
	if queued == 0 {
		t.Error("nothing was queued during the outage: the proxy did not cut the store off")
	}
}

func sum(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}
