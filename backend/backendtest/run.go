package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
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
//	Registration       registering through a hook.Dispatcher: a failed registration leaves no trace
//	Restart            Close and Harness.Reopen keep everything
//	Sink               a write-only sink (Features.Sink), read back with Harness.ReadBack
//
// Run returns once every subtest has finished. It fails at once on a harness that
// contradicts itself (see Harness and Features).
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
	switch f := h.Features; {
	case f.Sink && h.ReadBack == nil:
		t.Fatal("backendtest: Features.Sink needs Harness.ReadBack, which reads back what the sink stored")
	case !f.Sink && h.ReadBack != nil:
		t.Fatal("backendtest: Harness.ReadBack is set but Features.Sink is false: ReadBack is for write-only sinks")
	case f.Sink && (len(s.fns) != 1 || !s.fns[hook.OnMessagePublish]):
		t.Fatalf("backendtest: Features.Sink needs Features.Functions to be exactly [on_message_publish], not %v", f.Functions)
	}
	t.Run("Prepare", s.testPrepare)
	t.Run("ClientState", s.testClientState)
	t.Run("Subscriptions", s.testSubscriptions)
	t.Run("OfflineMessages", s.testOfflineMessages)
	t.Run("Queue", s.testQueue)
	t.Run("KeepLatest", s.testKeepLatest)
	t.Run("Retained", s.testRetained)
	t.Run("CustomActions", s.testCustomActions)
	t.Run("Registration", s.testRegistration)
	t.Run("SyncDurability", s.testSyncDurability)
	t.Run("Restart", s.testRestart)
	t.Run("Sink", s.testSink)
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
	// topics are the topics published in the namespace, shared with the envs of its other
	// backends: what a lookup with a wildcard filter is split into for a store without
	// wildcard lookups.
	topics *topicSet
}

// topicSet is a set of topics, safe for concurrent use.
type topicSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (ts *topicSet) add(tp string) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.m == nil {
		ts.m = make(map[string]bool)
	}
	ts.m[tp] = true
}

// matching returns the topics filter matches, sorted.
func (ts *topicSet) matching(filter string) []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []string
	for tp := range ts.m {
		if topic.Match(filter, tp) {
			out = append(out, tp)
		}
	}
	slices.Sort(out)
	return out
}

// open gives subtest t its own backend, closed when t ends, and makes t parallel unless the
// store is Serial. Call it after the subtest's skips.
func (s *suite) open(t *testing.T) *env {
	t.Helper()
	if !s.h.Features.Serial {
		t.Parallel()
	}
	return s.adopt(t, s.h.New(t), "Harness.New", new(topicSet))
}

// sibling adopts b, a backend on e's namespace (from Harness.Reopen or Harness.Twin).
func (e *env) sibling(b hook.Backend, from string) *env {
	e.t.Helper()
	return e.s.adopt(e.t, b, from, e.topics)
}

func (s *suite) adopt(t *testing.T, b hook.Backend, from string, topics *topicSet) *env {
	t.Helper()
	if b == nil {
		t.Fatalf("%s returned a nil backend", from)
	}
	e := &env{t: t, s: s, b: b, topics: topics}
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

// prepare registers r as hook.Dispatcher.Register would, as a registration of its own:
// Prepare, then Activate with the action when the backend is a hook.Activator. It fails the
// test on an error.
func (e *env) prepare(r *hook.Rule) hook.Action {
	e.t.Helper()
	a, err := e.b.Prepare(r)
	if err != nil {
		e.t.Fatalf("Prepare(%s): %v", r.Name, err)
	}
	if a == nil {
		e.t.Fatalf("Prepare(%s) returned a nil action and no error", r.Name)
	}
	if act, ok := e.b.(hook.Activator); ok {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := act.Activate(ctx, []hook.Action{a}); err != nil {
			e.t.Fatalf("Activate(%s): %v", r.Name, err)
		}
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
	return newMessage(e.s.ids, topic, qos, payload)
}

// msgAt returns a new message received at ts, with an ID whose time part is ts (so that a
// store may find it by msgid range as well as by Timestamp). IDs made for increasing times
// increase, and are unique as long as the times are.
func (e *env) msgAt(ts time.Time, topic string, qos byte, payload string) *hook.Message {
	m := e.msg(topic, qos, payload)
	m.ID = hook.IDTimePrefix(ts) + m.ID[hook.IDTimeLen:]
	m.Timestamp = ts
	return m
}

// newMessage returns a new message with an ID from ids and the current time.
func newMessage(ids *hook.IDGenerator, topic string, qos byte, payload string) *hook.Message {
	return &hook.Message{
		ID:        ids.Next(),
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
		e.topics.add(m.Topic)
		e.write(w, &hook.PublishEvent{Message: m})
	}
}

// publishOrRefuse publishes msgs for a subtest that allows refusals, and returns the IDs of
// those whose Write returned an error.
func (e *env) publishOrRefuse(w hook.WriteAction, msgs ...*hook.Message) map[string]bool {
	e.t.Helper()
	refused := make(map[string]bool)
	for _, m := range msgs {
		e.topics.add(m.Topic)
		if err := w.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
			e.t.Logf("Write of %s (payload %s) refused: %v", m.ID, formatPayload(m.Payload), err)
			refused[m.ID] = true
		}
	}
	return refused
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
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	got, err := e.lookupMessages(ctx, l, client, filter, retained)
	if err != nil {
		e.t.Fatal(err)
	}
	return got
}

// wildcards reports whether the store's lookups (fetches, or retained lookups) take filters
// with wildcards.
func (s *suite) wildcards(retained bool) bool {
	if retained {
		return s.h.Features.WildcardRetained
	}
	return s.h.Features.WildcardFetch
}

// lookupMessages is messages for any goroutine: it returns what a message lookup for client
// subscribing to filter answers, or an error saying what is wrong. For a store that does
// not take wildcard filters (Features.WildcardFetch, WildcardRetained), a filter with
// wildcards is looked up as each topic published in the namespace that it matches, checking
// each answer is oldest first, and the answers are joined in ID order.
func (e *env) lookupMessages(ctx context.Context, l hook.LookupAction, client, filter string, retained bool) ([]*hook.Message, error) {
	if !hasWildcard(filter) || e.s.wildcards(retained) {
		return lookupOnce(ctx, l, client, filter, retained)
	}
	var all []*hook.Message
	for _, tp := range e.topics.matching(filter) {
		got, err := lookupOnce(ctx, l, client, tp, retained)
		if err != nil {
			return nil, err
		}
		if p := orderProblem(got); p != "" && !retained {
			return nil, fmt.Errorf("lookup for %s subscribing to %q (one of the topics %q matches) %s:\n%s", client, tp, filter, p, formatMessages(got))
		}
		all = append(all, got...)
	}
	if !retained {
		slices.SortStableFunc(all, func(a, b *hook.Message) int { return strings.Compare(a.ID, b.ID) })
	}
	return all, nil
}

func lookupOnce(ctx context.Context, l hook.LookupAction, client, filter string, retained bool) ([]*hook.Message, error) {
	res, err := l.Lookup(ctx, &hook.SubscribedEvent{ClientID: client, Username: "user-" + client, Topic: filter, QoS: 1})
	if err != nil {
		return nil, fmt.Errorf("Lookup for %s subscribing to %q: %w", client, filter, err)
	}
	got, other, want, not := res.Offline, res.Retained, "Offline", "Retained"
	if retained {
		got, other, want, not = res.Retained, res.Offline, "Retained", "Offline"
	}
	var problems []string
	if len(res.Subscriptions) != 0 {
		problems = append(problems, fmt.Sprintf("returned subscriptions %v; a message lookup returns messages only", res.Subscriptions))
	}
	if len(other) != 0 {
		problems = append(problems, fmt.Sprintf("returned messages in Result.%s, want them in Result.%s: %s", not, want, formatMessages(other)))
	}
	for i, m := range got {
		if m == nil {
			problems = append(problems, fmt.Sprintf("returned a nil message at index %d", i))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("lookup for %s subscribing to %q %s", client, filter, strings.Join(problems, "; "))
	}
	return got, nil
}

// checkWildcardRefused checks that a lookup with filter, which has wildcards, fails with an
// error wrapping hook.ErrUnsupported: what a store without wildcard lookups must do.
func (e *env) checkWildcardRefused(l hook.LookupAction, client, filter string, retained bool) {
	e.t.Helper()
	feature := "Features.WildcardFetch"
	if retained {
		feature = "Features.WildcardRetained"
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	res, err := l.Lookup(ctx, &hook.SubscribedEvent{ClientID: client, Username: "user-" + client, Topic: filter, QoS: 1})
	switch {
	case err == nil:
		e.t.Errorf("lookup of the wildcard filter %q answered %d offline and %d retained messages and no error; without %s it must fail with an error wrapping hook.ErrUnsupported",
			filter, len(res.Offline), len(res.Retained), feature)
	case !isUnsupported(err):
		e.t.Errorf("lookup of the wildcard filter %q: %v; without %s the error must wrap hook.ErrUnsupported", filter, err, feature)
	}
}

func hasWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

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

// ruleErrorProblem says what is wrong with err, Prepare's refusal of rule r, as the
// dispatcher will report it: Prepare returns a *hook.RuleError for r, or a plain error, and
// the dispatcher names the rule once. A plain error that names the rule itself would name it
// twice. "" means nothing is wrong.
func ruleErrorProblem(r *hook.Rule, err error) string {
	if re, ok := err.(*hook.RuleError); ok {
		if re.Rule == r.Name || re.Rule == "" {
			return ""
		}
		return fmt.Sprintf("is a *hook.RuleError for rule %q, not for %q", re.Rule, r.Name)
	}
	if strings.Contains(err.Error(), r.Name) {
		return "names the rule itself; the dispatcher adds the rule's name (return a *hook.RuleError, or a plain error without it)"
	}
	return ""
}

// binaryPayload reports whether p holds what only a binary-safe store keeps: NUL or invalid
// UTF-8.
func binaryPayload(p []byte) bool { return bytes.IndexByte(p, 0) >= 0 || !utf8.Valid(p) }

// checkBinaryPayloads checks what a lookup (or ReadBack) answered for sent, messages that
// hold binary payloads (and text ones), written with refused[ID] set where Write returned an
// error, Stats.Failed being failedBefore before. With Features.BinaryPayload, got must be
// exactly sent (inOrder: in that order, else in any order). Without, each message must come
// back exactly or be refused cleanly: absent, with an error from Write or a write counted in
// Stats.Failed; a text payload must come back, and an altered one is an error.
func (e *env) checkBinaryPayloads(what string, got []*hook.Message, inOrder bool, refused map[string]bool, failedBefore uint64, sent ...*hook.Message) {
	e.t.Helper()
	check := checkMessageSet
	if inOrder {
		check = checkMessages
	}
	if e.s.h.Features.BinaryPayload {
		check(e.t, what, got, sent...)
		return
	}
	returned := make(map[string]bool)
	for _, m := range got {
		returned[m.ID] = true
	}
	var want []*hook.Message
	var missing, binary, exact int
	for _, m := range sent {
		bin := binaryPayload(m.Payload)
		if bin {
			binary++
		}
		switch {
		case returned[m.ID]:
			want = append(want, m)
			if bin {
				exact++ // if not, check reports the difference
			}
		case !bin && refused[m.ID]:
			e.t.Errorf("%s: the message %s with the text payload %s was refused; only payloads with NUL or invalid UTF-8 may be", what, m.ID, formatPayload(m.Payload))
		case refused[m.ID]:
		case bin:
			missing++
		default:
			e.t.Errorf("%s: the message %s with the text payload %s was lost; only payloads with NUL or invalid UTF-8 may be refused", what, m.ID, formatPayload(m.Payload))
		}
	}
	check(e.t, what+" (without Features.BinaryPayload: a payload the store cannot keep must be refused, never altered)", got, want...)
	if missing > 0 {
		if failed := e.failedWrites() - failedBefore; failed < uint64(missing) {
			e.t.Errorf("%s: %d binary payloads were neither stored nor refused: Write returned nil and Stats.Failed grew by %d (without Features.BinaryPayload a store must refuse them: an error from Write, or a write counted as failed)", what, missing, failed)
		}
	}
	if binary > 0 && exact == binary {
		e.t.Errorf("%s: every binary payload was stored exactly: set Features.BinaryPayload", what)
	}
}
