package mqttstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/sqlstore"
)

// EMQX 4.x backend rules, loaded as they are written in emqx_backend_pgsql.conf, running on the
// embedded SQLite store: the broker calls the dispatcher at its hook points and delivers what
// the lookups return.
func Example() {
	dir, err := os.MkdirTemp("", "mqttstore-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	conf, err := backend.LoadConfig(strings.NewReader(`
backend.pgsql.hook.client.connected.1   = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
backend.pgsql.hook.session.subscribed.1 = {"topic": "#", "action": {"function": "on_retain_lookup"}, "pool": "pool1"}
backend.pgsql.hook.message.publish.1    = {"topic": "#", "action": {"function": "on_message_retain"}, "pool": "pool1"}
backend.pgsql.hook.message.publish.2    = {"topic": "#", "action": {"function": "on_retain_delete"}, "pool": "pool1"}
`))
	if err != nil {
		log.Fatal(err)
	}
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: filepath.Join(dir, "mqtt.db"), EnsureSchema: true})
	if err != nil {
		log.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "node1"})
	defer d.Close(ctx) // closes the store after writing out its queue
	if err := d.Register(context.Background(), "sqlite", store, conf.Stores["pgsql"].Rules...); err != nil {
		log.Fatal(err)
	}

	// The broker's hook points. Writes are queued and return at once.
	d.ClientConnected(ctx, &hook.ConnectedEvent{ClientID: "sensor-1", Node: "node1"})
	d.MessagePublish(ctx, &hook.PublishEvent{Message: &hook.Message{
		From: "sensor-1", Topic: "sensors/1/temp", QoS: 1, Retain: true, Payload: []byte("21.5")}})
	d.Flush(ctx) // only so that the example reads its own writes

	state, err := store.ClientState(ctx, "sensor-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("sensor-1 online:", state.Online, "on", state.Node)

	res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "app", Topic: "sensors/#", QoS: 1})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range res.Retained {
		fmt.Printf("retained %s = %s\n", m.Topic, m.Payload)
	}
	// Output:
	// sensor-1 online: true on node1
	// retained sensors/1/temp = 21.5
}
