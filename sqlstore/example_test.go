package sqlstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/sqlstore"
)

// A SQLite store in a temporary directory, registered with a dispatcher under EMQX-style
// rules: a QoS 1 message published while the subscriber is away is stored, and fetched when
// it subscribes; once acknowledged it is not fetched again.
func Example() {
	dir, err := os.MkdirTemp("", "sqlstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	store, err := sqlstore.Open(ctx, sqlstore.Config{
		Dialect:      sqlstore.SQLite,
		DSN:          filepath.Join(dir, "mqtt.db"),
		EnsureSchema: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "emqx@127.0.0.1"})
	defer d.Close(ctx) // closes the store, writing out its queue
	err = d.Register(context.Background(), "sqlite", store,
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
	// Output:
	// fetched sensors/1/temp: 21.5
	// after the ack: 0 messages
}
