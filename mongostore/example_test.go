package mongostore_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/backend"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/mongostore"
)

// A store on a local MongoDB-compatible server (MQTTSTORE_MONGO_URI, FerretDB in
// scripts/services), registered with a dispatcher under EMQX-style rules: a QoS 1 message
// published while the subscriber is away is stored, and fetched when it subscribes; once
// acknowledged it is not fetched again. It prints
//
//	fetched sensors/1/temp: 21.5
//	after the ack: 0 messages
//
// (It has no Output line, so that go test does not run it where no server is; TestExample
// runs it against the test server.)
func Example() {
	uri := os.Getenv("MQTTSTORE_MONGO_URI")
	if uri == "" {
		uri = "mongodb://127.0.0.1:27017/"
	}
	ctx := context.Background()
	store, err := mongostore.Open(ctx, mongostore.Config{URI: uri, Database: fmt.Sprint("mqttstore_example_", os.Getpid()), EnsureSchema: true})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Database().Drop(context.Background())
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "emqx@127.0.0.1"})
	defer d.Close(ctx) // closes the store, writing out its queue
	err = d.Register(ctx, "mongo", store,
		hook.Rule{Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}},
		hook.Rule{Point: hook.SessionSubscribed, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageFetch},
			OfflineOpts: hook.OfflineOpts{MaxReturnedCount: 100}},
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

// An EMQX emqx_backend_mongo.conf gives the pool settings; backend.Open does this for a
// broker.
func ExampleConfigFromPool() {
	const conf = `
backend.mongo.pool1.type = rs
backend.mongo.pool1.rs_set_name = testrs
backend.mongo.pool1.server = 10.0.0.1:27017, 10.0.0.2:27017
backend.mongo.pool1.c_pool_size = 8
backend.mongo.pool1.database = mqtt
backend.mongo.pool1.login = emqtt
backend.mongo.pool1.password = emqtt
backend.mongo.pool1.w_mode = safe
backend.mongo.pool1.topology.connect_timeout_ms = 20000
backend.mongo.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
`
	c, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		log.Fatal(err)
	}
	cfg, err := mongostore.ConfigFromPool(backend.PoolConfig{Store: "mongo", Pool: c.Stores["mongo"].Pools["pool1"]})
	if err != nil {
		log.Fatal(err)
	}
	co := cfg.ClientOptions
	fmt.Println(cfg.Database, *co.ReplicaSet, co.Hosts, cfg.Options.PoolSize, co.Auth.Username, co.Auth.AuthSource, *co.ConnectTimeout)
	// Output:
	// mqtt testrs [10.0.0.1:27017 10.0.0.2:27017] 8 emqtt admin 20s
}

// TestExample runs Example against the test server (Example has no Output line, so that it
// does not fail where there is none).
func TestExample(t *testing.T) {
	env := testenv.Mongo(t)
	t.Setenv("MQTTSTORE_MONGO_URI", env.URI)
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
