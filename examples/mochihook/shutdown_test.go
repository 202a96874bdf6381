package mochihook

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/sqlstore"
)

// With the database unavailable and the write queue full, publishers' hook calls wait for
// room; Shutdown still returns by its deadline, and every write is accounted for: stored,
// failed or dropped.
func TestShutdownWithFullQueueKeepsItsDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mqtt.db")
	store, err := sqlstore.Open(context.Background(), sqlstore.Config{
		DSN:          path,
		EnsureSchema: true,
		Options: backend.Options{
			QueueSize: 8, BatchSize: 4, QueryTimeout: 100 * time.Millisecond,
			Retry:  backend.Retry{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The database is "down": another connection holds its write lock until the test ends.
	locker, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close()
	lock, err := locker.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer lock.ExecContext(context.Background(), "ROLLBACK")

	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := hook.NewDispatcher(hook.DispatcherOptions{Logger: log, Node: "test"})
	if err := d.Register(context.Background(), "sqlite", store,
		hook.Rule{Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}}); err != nil {
		t.Fatal(err)
	}
	server := mqtt.New(&mqtt.Options{Logger: log})
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	h := New(server, d, Options{})
	if err := server.AddHook(h, nil); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := server.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		t.Fatal(err)
	}
	if err := server.Serve(); err != nil {
		t.Fatal(err)
	}

	// Two publishers send more QoS 1 messages than the queue holds, without waiting for PUBACKs.
	const perPublisher = 20
	for i := range 2 {
		pub := mqtttest.Connect(t, ln.Addr().String(), fmt.Sprint("pub-", i), true)
		for k := range perPublisher {
			pub.Publish(fmt.Sprintf("t/%d", i), 1, false, fmt.Sprint(k))
		}
	}
	mqtttest.Eventually(t, "a full queue", func() bool { st := store.Stats(); return st.Queued+st.Inflight >= 8 })

	const deadline = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- h.Shutdown(ctx) }()
	select {
	case err = <-done:
	case <-time.After(deadline + 10*time.Second): // a hang detector, not a timing assertion
		t.Fatalf("Shutdown with a deadline of %v has not returned after %v", deadline, time.Since(start))
	}
	if err == nil {
		t.Error("Shutdown = nil; want an error saying what could not be written")
	}
	// The flush under way when Close gave up had its context canceled; it is counted when it returns.
	mqtttest.Eventually(t, "the last flush to return", func() bool { return store.Stats().Inflight == 0 })
	st := store.Stats()
	dropped := st.Dropped[backend.DropQueueFull] + st.Dropped[backend.DropClosed]
	if st.Success != 0 || st.Failed+dropped == 0 || st.Matched != st.Success+st.Failed+dropped {
		t.Errorf("stats %+v: want nothing stored, and every matched write failed or dropped (Matched = Success + Failed + Dropped)", st)
	}
	t.Logf("Shutdown took %v (deadline %v): %v; %d writes matched, %d failed, %d dropped", time.Since(start).Round(time.Millisecond), deadline, err, st.Matched, st.Failed, dropped)
}
