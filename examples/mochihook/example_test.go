package mochihook_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttstore/mqttstore/examples/mochihook"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/sqlstore"
)

// A mochi broker that keeps retained messages in SQLite and delivers them from there to new
// subscribers, also after a restart.
func Example() {
	dir, err := os.MkdirTemp("", "mochihook")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	// The store, and what it does at which hook point.
	store, err := sqlstore.Open(ctx, sqlstore.Config{DSN: filepath.Join(dir, "mqtt.db"), EnsureSchema: true})
	if err != nil {
		log.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "node1"})
	err = d.Register(ctx, "sqlite", store,
		hook.Rule{Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageRetain}},
		hook.Rule{Point: hook.SessionSubscribed, Topic: "#", Action: hook.RuleAction{Function: hook.OnRetainLookup}})
	if err != nil {
		log.Fatal(err)
	}

	// The broker, with the hook.
	server := mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	authHook := new(auth.AllowHook) // a real broker's auth hook decides who reads what
	_ = server.AddHook(authHook, nil)
	// Stored messages are checked against the same ACL as live ones.
	h := mochihook.New(server, d, mochihook.Options{ACL: mochihook.CheckACL(authHook)})
	_ = server.AddHook(h, nil)
	_ = server.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: "127.0.0.1:0"}))
	if err := server.Serve(); err != nil {
		log.Fatal(err)
	}

	// A retained message, published here by the broker's inline client.
	_ = server.Publish("sensors/1/temp", []byte("21.5"), true, 1)

	// Shut down: the broker first, then the dispatcher, which writes out the store's queue.
	shutdownCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := h.Shutdown(shutdownCtx); err != nil {
		log.Fatal(err)
	}

	store, err = sqlstore.Open(ctx, sqlstore.Config{DSN: filepath.Join(dir, "mqtt.db")})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close(ctx)
	msgs, err := store.Retained(ctx, "sensors/#")
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		fmt.Printf("%s = %s (from %s)\n", m.Topic, m.Payload, m.From)
	}
	// Output: sensors/1/temp = 21.5 (from inline)
}
