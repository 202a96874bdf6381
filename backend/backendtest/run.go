package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// opTimeout bounds each Flush, lookup and Close of the suite.
const opTimeout = 20 * time.Second

// timeSlack is how far a stored time may be from the one written: stores may keep whole
// seconds (MySQL DATETIME) and round or truncate.
const timeSlack = time.Second

// testNode is the broker node name the suite's events carry.
const testNode = "backendtest@127.0.0.1"

// allFunctions is every built-in function name, in the order of ARCHITECTURE.md's table.
var allFunctions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected,
	hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore,
	hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
	hook.OnMessageFetchForQueue, hook.OnMessageAckedForQueue,
	hook.OnMessageFetchForPubsub, hook.OnMessageAckedForPubsub,
	hook.OnMessageStoreKeepLatest, hook.OnMessageFetchForKeepLatest, hook.OnMessageAckedForKeepLatest,
}

// Run runs the conformance suite against the store h opens. Each subtest opens its own
// backend with h.New and closes it when done. Subtests are grouped by behaviour:
//
//	Prepare            which functions and action kinds Prepare accepts and refuses
//	ClientState        on_client_connected / on_client_disconnected, read with ClientStateReader
//	Subscriptions      SubscriptionStore and on_subscribe_lookup
//	OfflineMessages/F  for each one-to-many fetch function F the store has (on_message_fetch,
//	                   on_message_fetch_for_pubsub): storing, fetching, ack positions, offline_opts,
//	                   expired_time, binary payloads, idempotency, concurrency, Close draining
//	Queue              the _for_queue functions
//	KeepLatest         the _keep_latest functions
//	Retained           on_message_retain, on_retain_delete, on_retain_lookup
//	CustomActions      statements with ${var} placeholders (Harness.Custom)
//
// Run returns once every subtest has finished.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("backendtest: Harness.New is nil")
	}
	if c := h.Custom; c != nil && (c.Record == nil || c.Read == nil) {
		t.Fatal("backendtest: Harness.Custom needs both Record and Read")
	}
	s := &suite{h: h, fns: make(map[string]bool), ids: hook.NewIDGenerator(testNode)}
	for _, f := range h.Features.Functions {
		if _, ok := hook.LookupFunction(f); !ok {
			t.Fatalf("backendtest: Features.Functions lists %q, which is not a built-in function", f)
		}
		s.fns[f] = true
	}
	if fn := s.anyFetch(); fn != "" && s.storeFunction() == "" {
		// Its subtests would have nothing to fetch: fail rather than skip them all unnoticed.
		t.Fatalf("backendtest: Features.Functions lists %s but neither on_message_publish nor on_message_store, which the suite stores its messages with", fn)
	}
	t.Run("Prepare", s.testPrepare)
	t.Run("ClientState", s.testClientState)
	t.Run("Subscriptions", s.testSubscriptions)
	t.Run("OfflineMessages", s.testOfflineMessages)
	t.Run("Queue", s.testQueue)
	t.Run("KeepLatest", s.testKeepLatest)
	t.Run("Retained", s.testRetained)
	t.Run("CustomActions", s.testCustomActions)
}

// suite is one Run: the harness and what it declared.
type suite struct {
	h   Harness
	fns map[string]bool // Features.Functions
	ids *hook.IDGenerator
}

// require skips t unless the store lists every function in fns.
func (s *suite) require(t *testing.T, fns ...string) {
	t.Helper()
	for _, f := range fns {
		if !s.fns[f] {
			t.Skipf("the store does not list %s in Features.Functions", f)
		}
	}
}

// storeFunction is the function the message subtests store with: on_message_publish, or
// on_message_store for a store without it ("" when it has neither).
func (s *suite) storeFunction() string {
	switch {
	case s.fns[hook.OnMessagePublish]:
		return hook.OnMessagePublish
	case s.fns[hook.OnMessageStore]:
		return hook.OnMessageStore
	}
	return ""
}

// env is one subtest's backend.
type env struct {
	t      *testing.T
	s      *suite
	b      hook.Backend
	closed bool
	// allowFailed turns off the check, after each flush, that the store counted no failed or
	// dropped writes (for subtests that feed values a database may refuse).
	allowFailed bool
	rules       int
}

// open gives subtest t its own backend, closed when t ends, and makes t parallel unless the
// store is Serial. Call it after the subtest's skips.
func (s *suite) open(t *testing.T) *env {
	t.Helper()
	if !s.h.Features.Serial {
		t.Parallel()
	}
	return s.adopt(t, s.h.New(t), "Harness.New")
}

func (s *suite) adopt(t *testing.T, b hook.Backend, from string) *env {
	t.Helper()
	if b == nil {
		t.Fatalf("%s returned a nil backend", from)
	}
	e := &env{t: t, s: s, b: b}
	t.Cleanup(func() {
		if e.closed {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

// close closes the backend now, without flushing it first.
func (e *env) close() {
	e.t.Helper()
	e.closed = true
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := e.b.Close(ctx); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
}

// rule returns a rule at point p running action a on every topic; mods adjust it.
func (e *env) rule(p hook.Point, a hook.RuleAction, mods ...func(*hook.Rule)) *hook.Rule {
	e.rules++
	what := a.Function
	if what == "" {
		what = "custom"
	}
	r := &hook.Rule{
		Name:   fmt.Sprintf("backend.backendtest.hook.%s.%d(%s)", p, e.rules, what),
		Point:  p,
		Topic:  "#",
		Action: a,
		Pool:   "pool1",
	}
	for _, m := range mods {
		m(r)
	}
	return r
}

// prepare prepares r, failing the test on an error.
func (e *env) prepare(r *hook.Rule) hook.Action {
	e.t.Helper()
	a, err := e.b.Prepare(r)
	if err != nil {
		e.t.Fatalf("Prepare(%s): %v", r.Name, err)
	}
	if a == nil {
		e.t.Fatalf("Prepare(%s) returned a nil action and no error", r.Name)
	}
	return a
}

// writer prepares the write function fn at point p.
func (e *env) writer(p hook.Point, fn string, mods ...func(*hook.Rule)) hook.WriteAction {
	e.t.Helper()
	return e.prepareWriter(e.rule(p, hook.RuleAction{Function: fn}, mods...))
}

// prepareWriter prepares r, whose action must be a hook.WriteAction.
func (e *env) prepareWriter(r *hook.Rule) hook.WriteAction {
	e.t.Helper()
	w, ok := e.prepare(r).(hook.WriteAction)
	if !ok {
		e.t.Fatalf("Prepare(%s) did not return a hook.WriteAction", r.Name)
	}
	return w
}

// looker prepares the lookup function fn at point p.
func (e *env) looker(p hook.Point, fn string, mods ...func(*hook.Rule)) hook.LookupAction {
	e.t.Helper()
	r := e.rule(p, hook.RuleAction{Function: fn}, mods...)
	l, ok := e.prepare(r).(hook.LookupAction)
	if !ok {
		e.t.Fatalf("Prepare(%s) did not return a hook.LookupAction", r.Name)
	}
	return l
}

func (e *env) write(w hook.WriteAction, ev hook.Event) {
	e.t.Helper()
	if err := w.Write(context.Background(), ev); err != nil {
		e.t.Fatalf("Write(%s): %v", ev.Point(), err)
	}
}

func (e *env) lookup(l hook.LookupAction, ev hook.Event) hook.Result {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	res, err := l.Lookup(ctx, ev)
	if err != nil {
		e.t.Fatalf("Lookup(%s): %v", ev.Point(), err)
	}
	return res
}

// flush waits until everything written so far is stored, and checks the store counted no
// failed or dropped write.
func (e *env) flush() {
	e.t.Helper()
	f, ok := e.b.(hook.Flusher)
	if !ok {
		e.t.Fatalf("the backend (%T) does not implement hook.Flusher; the suite needs it to read its writes", e.b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := f.Flush(ctx); err != nil {
		e.t.Fatalf("Flush: %v", err)
	}
	if !e.allowFailed {
		e.checkNoFailures()
	}
}

// checkNoFailures fails the test if the store counts failed or dropped writes.
func (e *env) checkNoFailures() {
	e.t.Helper()
	sr, ok := e.b.(backend.StatsReporter)
	if !ok {
		return
	}
	st := sr.Stats()
	if st.Failed != 0 {
		e.t.Errorf("the store counts %d failed writes (Stats.Failed); the suite's writes are all valid", st.Failed)
	}
	for reason, n := range st.Dropped {
		if n != 0 {
			e.t.Errorf("the store dropped %d writes (Stats.Dropped[%q]); the suite's writes are all valid", n, reason)
		}
	}
}

// failedWrites returns Stats.Failed, or 0 for a store without StatsReporter.
func (e *env) failedWrites() uint64 {
	if sr, ok := e.b.(backend.StatsReporter); ok {
		return sr.Stats().Failed
	}
	return 0
}

// msg returns a new message with a fresh ID and the current time.
func (e *env) msg(topic string, qos byte, payload string) *hook.Message {
	return &hook.Message{
		ID:        e.s.ids.Next(),
		From:      "publisher-1",
		Username:  "user-1",
		Peerhost:  "192.0.2.1",
		Node:      testNode,
		Topic:     topic,
		QoS:       qos,
		Payload:   []byte(payload),
		Timestamp: time.Now(),
	}
}

func (e *env) publish(w hook.WriteAction, msgs ...*hook.Message) {
	e.t.Helper()
	for _, m := range msgs {
		e.write(w, &hook.PublishEvent{Message: m})
	}
}

func (e *env) ack(w hook.WriteAction, client string, msgs ...*hook.Message) {
	e.t.Helper()
	for _, m := range msgs {
		e.write(w, &hook.AckedEvent{ClientID: client, Username: "user-" + client, Message: m})
	}
}

// fetch runs a session.subscribed lookup of offline messages for client subscribing to filter
// and returns the messages it answers (Result.Offline), checking that it answers nothing else.
func (e *env) fetch(l hook.LookupAction, client, filter string) []*hook.Message {
	e.t.Helper()
	return e.messages(l, client, filter, false)
}

// retained runs a session.subscribed lookup of retained messages and returns what it answers
// (Result.Retained), checking that it answers nothing else.
func (e *env) retained(l hook.LookupAction, client, filter string) []*hook.Message {
	e.t.Helper()
	return e.messages(l, client, filter, true)
}

func (e *env) messages(l hook.LookupAction, client, filter string, retained bool) []*hook.Message {
	e.t.Helper()
	res := e.lookup(l, &hook.SubscribedEvent{ClientID: client, Username: "user-" + client, Topic: filter, QoS: 1})
	got, other, want, not := res.Offline, res.Retained, "Offline", "Retained"
	if retained {
		got, other, want, not = res.Retained, res.Offline, "Retained", "Offline"
	}
	if len(res.Subscriptions) != 0 {
		e.t.Errorf("lookup for %s subscribing to %q returned subscriptions %v; a message lookup returns messages only",
			client, filter, res.Subscriptions)
	}
	if len(other) != 0 {
		e.t.Errorf("lookup for %s subscribing to %q returned messages in Result.%s, want them in Result.%s: %s",
			client, filter, not, want, formatMessages(other))
	}
	for i, m := range got {
		if m == nil {
			e.t.Fatalf("lookup for %s subscribing to %q returned a nil message at index %d", client, filter, i)
		}
	}
	return got
}

// checkMessages reports an error unless got holds exactly want, in that order. Messages are
// compared by ID, Topic, QoS, From, Payload (byte for byte) and Timestamp (within timeSlack).
func checkMessages(t *testing.T, what string, got []*hook.Message, want ...*hook.Message) bool {
	t.Helper()
	if len(got) == len(want) {
		diff := ""
		for i := range got {
			if d := messageDiff(got[i], want[i]); d != "" {
				diff += fmt.Sprintf("\n  [%d] %s", i, d)
			}
		}
		if diff == "" {
			return true
		}
		t.Errorf("%s: wrong messages:%s\n got: %s\nwant: %s", what, diff, formatMessages(got), formatMessages(want))
		return false
	}
	// Say which are missing and which are extra (or duplicated), by ID.
	count := make(map[string]int)
	for _, m := range want {
		count[m.ID]++
	}
	var missing, extra []*hook.Message
	for _, m := range got {
		if count[m.ID] > 0 {
			count[m.ID]--
		} else {
			extra = append(extra, m)
		}
	}
	for _, m := range want {
		if count[m.ID] > 0 {
			count[m.ID]--
			missing = append(missing, m)
		}
	}
	t.Errorf("%s: got %d messages, want %d\n    missing: %s\n      extra: %s\n        got: %s\n       want: %s",
		what, len(got), len(want), formatMessages(missing), formatMessages(extra), formatMessages(got), formatMessages(want))
	return false
}

// checkMessageSet is checkMessages ignoring order (messages are sorted by topic, then ID).
func checkMessageSet(t *testing.T, what string, got []*hook.Message, want ...*hook.Message) bool {
	t.Helper()
	order := func(a, b *hook.Message) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	}
	got = slices.SortedStableFunc(slices.Values(got), order)
	want = slices.SortedStableFunc(slices.Values(want), order)
	return checkMessages(t, what+" (in any order)", got, want...)
}

// messageDiff says how got differs from want, or returns "".
func messageDiff(got, want *hook.Message) string {
	var d []string
	if got.ID != want.ID {
		d = append(d, fmt.Sprintf("ID %q, want %q", got.ID, want.ID))
	}
	if got.Topic != want.Topic {
		d = append(d, fmt.Sprintf("Topic %q, want %q", got.Topic, want.Topic))
	}
	if got.QoS != want.QoS {
		d = append(d, fmt.Sprintf("QoS %d, want %d", got.QoS, want.QoS))
	}
	if got.From != want.From {
		d = append(d, fmt.Sprintf("From %q, want %q", got.From, want.From))
	}
	if !bytes.Equal(got.Payload, want.Payload) {
		d = append(d, fmt.Sprintf("Payload %s, want %s", formatPayload(got.Payload), formatPayload(want.Payload)))
	}
	if !timeNear(got.Timestamp, want.Timestamp) {
		d = append(d, fmt.Sprintf("Timestamp %v, want %v (±%v)", got.Timestamp, want.Timestamp, timeSlack))
	}
	return strings.Join(d, "; ")
}

func timeNear(got, want time.Time) bool {
	d := got.Sub(want)
	return d >= -timeSlack && d <= timeSlack
}

// formatMessages lists ms, the first 20 of them.
func formatMessages(ms []*hook.Message) string {
	if len(ms) == 0 {
		return "(none)"
	}
	var sb strings.Builder
	for i, m := range ms {
		if i == 20 {
			fmt.Fprintf(&sb, "\n             … and %d more", len(ms)-i)
			break
		}
		if i > 0 {
			sb.WriteString("\n             ")
		}
		fmt.Fprintf(&sb, "{id=%s topic=%q qos=%d from=%q payload=%s}", m.ID, m.Topic, m.QoS, m.From, formatPayload(m.Payload))
	}
	return sb.String()
}

func formatPayload(p []byte) string {
	if len(p) > 32 {
		return fmt.Sprintf("%q…(%d bytes)", p[:32], len(p))
	}
	return fmt.Sprintf("%q", p)
}

// isUnsupported reports whether err says the store does not support what was asked.
func isUnsupported(err error) bool { return errors.Is(err, hook.ErrUnsupported) }
