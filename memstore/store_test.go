package memstore

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func newTestStore(t *testing.T, cfg Config, v variant) *Store {
	t.Helper()
	s, err := newStore(cfg, v)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func prepareWrite(t *testing.T, s *Store, fn string, mods ...func(*hook.Rule)) hook.WriteAction {
	t.Helper()
	info, _ := hook.LookupFunction(fn)
	r := &hook.Rule{Name: "r-" + fn, Point: info.Points[0], Action: hook.RuleAction{Function: fn}}
	for _, m := range mods {
		m(r)
	}
	a, err := s.Prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	return a.(hook.WriteAction)
}

var ids = hook.NewIDGenerator("memstore-test")

func publish(topic string, qos byte, payload string) *hook.PublishEvent {
	return &hook.PublishEvent{Message: &hook.Message{ID: ids.Next(), Topic: topic, QoS: qos, Payload: []byte(payload), Timestamp: time.Now()}}
}

// checkStats compares the counters, with the invariant Matched = Success + Failed + drops
// once the store is idle.
func checkStats(t *testing.T, s *Store, success, failed, full, closed uint64) {
	t.Helper()
	st := s.Stats()
	want := backend.Stats{Matched: success + failed + full + closed, Success: success, Failed: failed,
		Dropped: map[string]uint64{backend.DropQueueFull: full, backend.DropClosed: closed}}
	if st.Matched != want.Matched || st.Success != success || st.Failed != failed ||
		st.Dropped[backend.DropQueueFull] != full || st.Dropped[backend.DropClosed] != closed || st.Queued != 0 || st.Inflight != 0 {
		t.Errorf("Stats() = %+v, want %+v", st, want)
	}
}

// A full queue makes Write wait for room as long as its context allows, then drop the write
// with an error wrapping hook.ErrDropped and the context's error, counted.
func TestWriteWaitsForRoomWithinItsContext(t *testing.T) {
	s := newTestStore(t, Config{QueueSize: 2, BatchSize: 1}, variant{})
	w := prepareWrite(t, s, hook.OnMessageStore)
	s.ns.mu.Lock() // the database hangs: the applier blocks on its first batch
	locked := true
	defer func() {
		if locked {
			s.ns.mu.Unlock()
		}
	}()
	ctx := context.Background()
	for i := range 3 { // one taken by the applier, two queued
		if err := w.Write(ctx, publish("t", 1, "queued")); err != nil {
			t.Fatalf("Write %d: %v", i, err)
		}
		if i == 0 {
			waitFor(t, "the applier to take the first write", func() bool { return s.Stats().Inflight == 1 })
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := w.Write(short, publish("t", 1, "dropped")); !errors.Is(err, hook.ErrDropped) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Write to a full queue = %v, want an error wrapping hook.ErrDropped and context.DeadlineExceeded", err)
	}
	waited := make(chan error, 1)
	go func() { waited <- w.Write(ctx, publish("t", 1, "waits")) }()
	waitFor(t, "the write to wait for room", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.room != nil
	})
	s.ns.mu.Unlock()
	locked = false
	if err := <-waited; err != nil {
		t.Errorf("Write that waited for room: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStats(t, s, 4, 0, 1, 0)
	if got := len(s.ns.Messages()); got != 4 {
		t.Errorf("%d messages stored, want 4", got)
	}
}

// Close applies what is queued; when its context ends first, it discards the rest, counts
// it, and says so. Later writes are refused with hook.ErrClosed and counted.
func TestCloseGivesUpWithItsContext(t *testing.T) {
	s := newTestStore(t, Config{BatchSize: 1}, variant{})
	w := prepareWrite(t, s, hook.OnMessageStore)
	s.ns.mu.Lock()
	ctx := context.Background()
	for range 3 {
		if err := w.Write(ctx, publish("t", 1, "m")); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the applier to take the first write", func() bool { return s.Stats().Inflight == 1 })
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	closed := make(chan error, 1)
	go func() { closed <- s.Close(canceled) }()
	waitFor(t, "Close to give up", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.abort
	})
	s.ns.mu.Unlock()
	if err := <-closed; !errors.Is(err, context.Canceled) {
		t.Errorf("Close with a canceled context and a hung database = %v, want an error wrapping context.Canceled", err)
	}
	if err := w.Write(ctx, publish("t", 1, "late")); !errors.Is(err, hook.ErrClosed) || !errors.Is(err, hook.ErrDropped) {
		t.Errorf("Write after Close = %v, want an error wrapping hook.ErrClosed and hook.ErrDropped", err)
	}
	checkStats(t, s, 1, 0, 0, 3)
	if err := s.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// Every Write is counted once: invalid events and payloads the store refuses as failed.
func TestStatsCountEveryWrite(t *testing.T) {
	s := newTestStore(t, Config{}, variant{textPayloads: true})
	w := prepareWrite(t, s, hook.OnMessagePublish)
	ctx := context.Background()
	for _, e := range []hook.Event{nil, (*hook.PublishEvent)(nil), &hook.PublishEvent{}, &hook.AckedEvent{Message: &hook.Message{}}} {
		if err := w.Write(ctx, e); !errors.Is(err, hook.ErrInvalidEvent) {
			t.Errorf("Write(%#v) = %v, want an error wrapping hook.ErrInvalidEvent", e, err)
		}
	}
	for _, e := range []*hook.PublishEvent{publish("t", 1, "ok"), publish("t", 0, "qos 0: nothing to store"), publish("t", 1, "bad\xff")} {
		if err := w.Write(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkStats(t, s, 2, 5, 0, 0)
}

func TestNewRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{{Functions: []string{"on_no_such_function"}}, {QueueSize: -1}, {BatchSize: -1}} {
		if s, err := New(cfg); !errors.Is(err, hook.ErrConfig) {
			t.Errorf("New(%+v) = %v, %v; want an error wrapping hook.ErrConfig", cfg, s, err)
		}
	}
}

// Activate starts the purge that removes expired messages from memory; it refuses actions
// another store prepared.
func TestActivateStartsThePurge(t *testing.T) {
	s := newTestStore(t, Config{}, variant{})
	other := newTestStore(t, Config{}, variant{})
	ctx := context.Background()
	w := prepareWrite(t, s, hook.OnMessageStore, func(r *hook.Rule) { r.ExpiredTime = time.Millisecond })
	if err := s.Activate(ctx, []hook.Action{prepareWrite(t, other, hook.OnMessageStore)}); err == nil {
		t.Error("Activate accepted an action of another store")
	}
	if err := s.Activate(ctx, []hook.Action{w}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(ctx, publish("t", 1, "expires")); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the purge to remove the expired message", func() bool {
		s.ns.mu.Lock()
		defer s.ns.mu.Unlock()
		return len(s.ns.msgs) == 0 && len(s.ns.byID) == 0
	})
}

// Prepare changes nothing in the store, even for a rule with expired_time.
func TestPrepareIsPure(t *testing.T) {
	s := newTestStore(t, Config{}, variant{})
	prepareWrite(t, s, hook.OnMessageStore, func(r *hook.Rule) { r.ExpiredTime = time.Millisecond })
	s.mu.Lock()
	purging := s.purging
	s.mu.Unlock()
	if purging || len(s.ns.topicTTL) != 0 {
		t.Error("Prepare started a purge or recorded an expiry")
	}
}

// A registration whose Activate fails is refused with an error that says "activate" once: the
// dispatcher names the step, the store does not repeat it.
func TestActivateErrorReadsOnce(t *testing.T) {
	s := newTestStore(t, Config{}, variant{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := hook.NewDispatcher(hook.DispatcherOptions{})
	err := d.Register(ctx, "mem", s, hook.Rule{Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish}})
	if !errors.Is(err, context.Canceled) || strings.Count(err.Error(), "activate") != 1 {
		t.Errorf("Register under a canceled context = %v; want context.Canceled, saying \"activate\" once", err)
	}
}
