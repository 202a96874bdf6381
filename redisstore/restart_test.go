package redisstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// TestRestartUnderLoad kills the Redis server while messages are being published, starts it
// again, and checks that every message was stored exactly once: the writer retries the
// batches the outage failed, and the writes are idempotent. The outage lasts until the
// writer has seen it (a batch failed and was retried), whatever the machine's speed.
func TestRestartUnderLoad(t *testing.T) {
	t.Parallel()
	srv := startRedisServer(t, true)
	opts := backend.Options{
		BatchInterval: time.Millisecond, QueryTimeout: 5 * time.Second, ConnectTimeout: time.Second,
		// Room for every write: a producer blocked on a full queue during the outage would
		// wait for the restart that comes after it.
		QueueSize: 1 << 19,
		Retry:     backend.Retry{MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
	}
	s := openStore(t, Config{Addrs: []string{srv.addr}, Options: opts})
	defer s.Close(context.Background())
	publish := mustWriter(t, s, hook.MessagePublish, hook.OnMessagePublish)
	retain := mustWriter(t, s, hook.MessagePublish, hook.OnMessageRetain)
	ids := hook.NewIDGenerator("restart")

	// A third of the messages before the crash (some being written when it comes), a third
	// while the server is down (they wait in the queue, their batches failing and retried),
	// a third after it is back.
	const total, topics = 30000, 10
	var all []*hook.Message
	write := func(n int) {
		for range n {
			i := len(all)
			m := &hook.Message{ID: ids.Next(), From: "pub", Topic: fmt.Sprintf("load/%d", i%topics), QoS: 1,
				Retain: i%100 < topics, Payload: fmt.Appendf(nil, "m%d", i), Timestamp: time.Now()}
			all = append(all, m)
			ev := &hook.PublishEvent{Message: m}
			if err := publish.Write(context.Background(), ev); err != nil {
				t.Fatalf("Write %d: %v", i, err)
			}
			if err := retain.Write(context.Background(), ev); err != nil {
				t.Fatalf("Write %d (retain): %v", i, err)
			}
		}
	}
	write(total / 3)
	srv.kill()
	before := s.Stats()
	write(total / 3)
	testenv.Eventually(t, "a batch failed against the stopped server and was retried", func() bool { return s.Stats().Retried > before.Retried })
	srv.start()
	write(total - 2*total/3)
	t.Logf("at the crash: %d writes queued, %d stored", before.Matched, before.Success)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	st := s.Stats()
	t.Logf("stats: %+v", st)
	if st.Failed != 0 || st.Dropped[backend.DropQueueFull] != 0 || st.Dropped[backend.DropClosed] != 0 {
		t.Fatalf("writes lost: %+v", st)
	}
	if st.Retried == 0 {
		t.Fatalf("no batch was retried: the outage did not hit the writes (stats %+v)", st)
	}

	got, err := s.fetch(ctx, "checker", "load/#", false, hook.OfflineOpts{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != total {
		t.Errorf("fetched %d messages after the restart, want %d", len(got), total)
	}
	seen := make(map[string]bool)
	for _, m := range got {
		if seen[m.ID] {
			t.Errorf("message %s stored twice", m.ID)
		}
		seen[m.ID] = true
	}
	for _, m := range all {
		if !seen[m.ID] {
			t.Errorf("message %s (%s) lost", m.ID, m.Payload)
			break
		}
	}
	retained, err := s.retained(ctx, "load/+")
	if err != nil {
		t.Fatal(err)
	}
	last := make(map[string]string) // topic → ID of the last retained message
	for _, m := range all {
		if m.Retain {
			last[m.Topic] = m.ID
		}
	}
	if len(retained) != topics {
		t.Errorf("%d retained messages after the restart, want %d", len(retained), topics)
	}
	for _, m := range retained {
		if last[m.Topic] != m.ID {
			t.Errorf("retained message of %s is %s, want the last one retained, %s", m.Topic, m.ID, last[m.Topic])
		}
	}
}

func mustWriter(t testing.TB, s *Store, p hook.Point, fn string, mods ...func(*hook.Rule)) hook.WriteAction {
	t.Helper()
	r := &hook.Rule{Name: "test." + fn, Point: p, Topic: "#", Action: hook.RuleAction{Function: fn}}
	for _, m := range mods {
		m(r)
	}
	a, err := s.Prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	return a.(hook.WriteAction)
}

func mustLookup(t testing.TB, s *Store, p hook.Point, fn string, mods ...func(*hook.Rule)) hook.LookupAction {
	t.Helper()
	r := &hook.Rule{Name: "test." + fn, Point: p, Topic: "#", Action: hook.RuleAction{Function: fn}}
	for _, m := range mods {
		m(r)
	}
	a, err := s.Prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	return a.(hook.LookupAction)
}
