package hook_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/memstore"
	"github.com/mqttstore/mqttstore/spool"
)

// lostStore accepts writes and never stores them: what a store's queue is after a crash.
type lostStore struct{}

func (lostStore) Prepare(*hook.Rule) (hook.Action, error) { return lostWrite{}, nil }
func (lostStore) Close(context.Context) error             { return nil }

type lostWrite struct{}

func (lostWrite) Write(ctx context.Context, _ hook.Event) error {
	if c := hook.CompletionFrom(ctx); c != nil {
		c.Add() // and never Done: the process dies first
	}
	return nil
}

// Under Durability Spool, the events a crash kept from the store are in the spool, and
// Replay stores them after the restart; once stored, their records are released.
func TestSpoolReplaysWhatACrashLost(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	publish := hook.Rule{Name: "pub", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessagePublish}}
	fetch := hook.Rule{Name: "fetch", Point: hook.SessionSubscribed, Topic: "#", Action: hook.RuleAction{Function: hook.OnMessageFetch}}

	// Before the crash: 50 publishes accepted, none stored.
	sp, err := spool.Open(dir, spool.Options{Sync: spool.SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "n1", Durability: hook.Spool, Spool: sp})
	if err := d.Register(ctx, "lost", lostStore{}, publish); err != nil {
		t.Fatal(err)
	}
	var sent []*hook.Message
	for i := range 50 {
		m := &hook.Message{Topic: fmt.Sprint("sp/", i%5), QoS: 1, Payload: []byte{byte(i), 0, 0xff}, Timestamp: time.Now(),
			UserProperties: []hook.UserProperty{{Key: "i", Value: fmt.Sprint(i)}}}
		if err := d.MessagePublish(ctx, &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	if p := sp.Stats().Pending; p != 50 {
		t.Fatalf("%d records pending before the crash, want 50", p)
	}
	if err := sp.Close(); err != nil { // the files as a crash leaves them: nothing released
		t.Fatal(err)
	}

	// After: a new spool on the same directory, a store that works.
	sp, err = spool.Open(dir, spool.Options{Sync: spool.SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	store, err := memstore.New(memstore.Config{})
	if err != nil {
		t.Fatal(err)
	}
	d = hook.NewDispatcher(hook.DispatcherOptions{Node: "n1", Durability: hook.Spool, Spool: sp})
	defer d.Close(ctx)
	if err := d.Register(ctx, "mem", store, publish, fetch); err != nil {
		t.Fatal(err)
	}
	n, err := d.Replay(ctx)
	if err != nil || n != 50 {
		t.Fatalf("Replay: %d events, %v; want 50", n, err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "sub", Topic: "sp/#", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Offline) != len(sent) {
		t.Fatalf("%d messages stored after the replay, want %d", len(res.Offline), len(sent))
	}
	for _, m := range sent {
		i := slices.IndexFunc(res.Offline, func(g *hook.Message) bool { return g.ID == m.ID })
		if i < 0 {
			t.Fatalf("message %s (%s) not stored after the replay", m.ID, m.Topic)
		}
		if g := res.Offline[i]; g.Topic != m.Topic || string(g.Payload) != string(m.Payload) || !slices.Equal(g.UserProperties, m.UserProperties) {
			t.Errorf("replayed %+v, published %+v", g, m)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); sp.Stats().Pending != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d records still pending once every replayed event is stored", sp.Stats().Pending)
		}
	}
}

// A Spool dispatch without a spool is refused, not silently Async.
func TestSpoolWithoutSpoolRefused(t *testing.T) {
	d := hook.NewDispatcher(hook.DispatcherOptions{Durability: hook.Spool})
	store, _ := memstore.New(memstore.Config{})
	if err := d.Register(context.Background(), "mem", store, hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}}); err != nil {
		t.Fatal(err)
	}
	err := d.MessagePublish(context.Background(), &hook.PublishEvent{Message: &hook.Message{Topic: "t", QoS: 1}})
	if err == nil || !errors.Is(err, hook.ErrConfig) {
		t.Errorf("publish: %v, want ErrConfig", err)
	}
}
