package cassastore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/cassastore"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// A store on a local Cassandra node (MQTTSTORE_CASSANDRA_HOSTS, default 127.0.0.1), in a
// keyspace of its own that EnsureSchema creates, registered with a dispatcher under the
// spec's rules: a QoS 1 message published while the subscriber is away is stored, and
// fetched when it subscribes to a wildcard filter; once acknowledged it is not fetched again.
// It prints
//
//	fetched sensors/1/temp: 21.5
//	after the ack: 0 messages
//
// (It has no Output line, so that go test does not run it where no node is; TestExample
// runs it against the test node.)
func Example() {
	host := os.Getenv("MQTTSTORE_CASSANDRA_HOSTS")
	if host == "" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	store, err := cassastore.Open(ctx, cassastore.Config{
		Hosts:        strings.Split(host, ","),
		Keyspace:     fmt.Sprint("mqttstore_example_", os.Getpid()),
		EnsureSchema: true,
		Options:      backend.Options{QueryTimeout: 20 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer dropKeyspace(store.Config()) // after the dispatcher's Close below
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "emqx@127.0.0.1"})
	defer d.Close(ctx) // closes the store, writing out its queue
	err = d.Register(ctx, "cassa", store,
		hook.Rule{Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}},
		hook.Rule{Point: hook.SessionSubscribed, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageFetch},
			OfflineOpts: hook.OfflineOpts{MaxReturnedCount: 500, TimeRange: 2 * time.Hour}},
		hook.Rule{Point: hook.MessageAcked, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageAcked}},
	)
	if err != nil {
		log.Fatal(err)
	}

	msg := &hook.Message{From: "sensor-1", Topic: "sensors/1/temp", QoS: 1, Payload: []byte("21.5")}
	if err := d.MessagePublish(ctx, &hook.PublishEvent{Message: msg}); err != nil { // queued, returns at once
		log.Fatal(err)
	}
	d.Flush(ctx) // only so that the example can read its own write

	res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "app", Topic: "sensors/+/temp", QoS: 1})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range res.Offline {
		fmt.Printf("fetched %s: %s\n", m.Topic, m.Payload)
	}

	d.MessageAcked(ctx, &hook.AckedEvent{ClientID: "app", Message: res.Offline[0]})
	d.Flush(ctx)
	res, _ = d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "app", Topic: "sensors/+/temp", QoS: 1})
	fmt.Println("after the ack:", len(res.Offline), "messages")
}

// dropKeyspace drops the example's keyspace, through a session of its own.
func dropKeyspace(cfg cassastore.Config) {
	cl := gocql.NewCluster(cfg.Hosts...)
	cl.Timeout = time.Minute
	sess, err := cl.CreateSession()
	if err != nil {
		log.Print(err)
		return
	}
	defer sess.Close()
	if err := sess.Query("DROP KEYSPACE IF EXISTS " + cfg.Keyspace).Exec(); err != nil {
		log.Print(err)
	}
}

// EMQX's emqx_backend_cassa.conf, as the spec gives it: the pool is backend.ecql.pool1,
// the rules backend.cassa.hook.*; backend.Open does this for a broker.
func ExampleConfigFromPool() {
	const conf = `
backend.ecql.pool1.nodes = 10.0.0.1:9042, 10.0.0.2:9042
backend.ecql.pool1.size = 8
backend.ecql.pool1.auto_reconnect = 1
backend.ecql.pool1.username = cassandra
backend.ecql.pool1.password = cassandra
backend.ecql.pool1.keyspace = mqtt
backend.ecql.pool1.logger = info
backend.cassa.hook.session.created.1 = {"action": {"function": "on_subscription_lookup"}, "pool": "pool1"}
`
	c, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := cassastore.ConfigFromPool(backend.PoolConfig{Store: "cassa", Pool: c.Stores["cassa"].Pools["pool1"]})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Hosts, cfg.ConnsPerHost, cfg.ReconnectInterval, cfg.Username, cfg.Keyspace)
	fmt.Println(cfg) // the password is not printed
	// Output:
	// [10.0.0.1:9042 10.0.0.2:9042] 8 1s cassandra mqtt
	// cassastore.Config{Hosts:["10.0.0.1:9042" "10.0.0.2:9042"] Port:0 Keyspace:"mqtt" Username:"cassandra" Password:REDACTED Consistency:default EnsureSchema:false}
}

// TestExample runs Example against the test node (Example has no Output line, so that it
// does not fail where there is none).
func TestExample(t *testing.T) {
	env := testenv.Cassandra(t) // skips, or fails under MQTTSTORE_REQUIRE_SERVICES=1, without a node
	t.Setenv("MQTTSTORE_CASSANDRA_HOSTS", strings.Join(env.Hosts, ","))
	out := captureStdout(t, Example)
	if want := "fetched sensors/1/temp: 21.5\nafter the ack: 0 messages\n"; out != want {
		t.Errorf("Example printed %q, want %q", out, want)
	}
}

func captureStdout(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	f()
	os.Stdout = old
	w.Close()
	return <-done
}
