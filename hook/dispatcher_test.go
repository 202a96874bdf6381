package hook

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// memBackend is the dispatcher's test double: it records every write as
// "<rule name> <point> <topic>" and answers lookups with the function the test set.
type memBackend struct {
	mu       sync.Mutex
	writes   []string
	closed   int
	flushed  int
	closeErr error
	// lookup answers the lookup rules; nil means an empty result.
	lookup func(ctx context.Context, r *Rule, e Event) (Result, error)
	// writeErr, when set, fails the writes of the rule with that name.
	writeErr map[string]error
	// prepare, when set, replaces the action Prepare returns.
	prepare func(r *Rule) (Action, error)
	// activate, when set, is what Activate returns; activated counts the calls and
	// activatedWith holds the actions of the last one.
	activate      func(actions []Action) error
	activated     int
	activatedWith []Action
	// writeCtx is the context of the last write.
	writeCtx context.Context
}

func (b *memBackend) Activate(ctx context.Context, actions []Action) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.activated++
	b.activatedWith = actions
	if b.activate != nil {
		return b.activate(actions)
	}
	return nil
}

type memWrite struct {
	b *memBackend
	r *Rule
}

func (w memWrite) Write(ctx context.Context, e Event) error {
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	w.b.writeCtx = ctx
	if err := w.b.writeErr[w.r.Name]; err != nil {
		return err
	}
	w.b.writes = append(w.b.writes, fmt.Sprintf("%s %v %s", w.r.Name, e.Point(), e.ruleTopic()))
	return nil
}

type memLookup struct {
	b *memBackend
	r *Rule
}

func (l memLookup) Lookup(ctx context.Context, e Event) (Result, error) {
	if l.b.lookup == nil {
		return Result{}, nil
	}
	return l.b.lookup(ctx, l.r, e)
}

func (b *memBackend) Prepare(r *Rule) (Action, error) {
	if b.prepare != nil {
		return b.prepare(r)
	}
	if r.IsLookup() {
		return memLookup{b, r}, nil
	}
	return memWrite{b, r}, nil
}

func (b *memBackend) Close(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed++
	return b.closeErr
}

func (b *memBackend) Flush(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushed++
	return nil
}

func (b *memBackend) takeWrites() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	w := b.writes
	b.writes = nil
	return w
}

func newTestDispatcher(opts DispatcherOptions) *Dispatcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return NewDispatcher(opts)
}

func rule(name string, p Point, filter string, action RuleAction) Rule {
	return Rule{Name: name, Point: p, Topic: filter, Action: action}
}

func fn(name string) RuleAction { return RuleAction{Function: name} }

func sql(stmts ...string) RuleAction { return RuleAction{SQL: stmts} }

func publish(topic string) *PublishEvent {
	return &PublishEvent{Message: &Message{ID: "id-" + topic, Topic: topic}}
}

func mustRegister(t *testing.T, d *Dispatcher, name string, b Backend, rules ...Rule) {
	t.Helper()
	if err := d.Register(context.Background(), name, b, rules...); err != nil {
		t.Fatal(err)
	}
}

func TestDispatchMatchesByFilter(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	b := new(memBackend)
	mustRegister(t, d, "mem", b,
		rule("a+", MessagePublish, "a/+", fn(OnMessagePublish)),
		rule("all", MessagePublish, "#", fn(OnMessageRetain)),
		rule("b", MessagePublish, "b/#", fn(OnMessageStore)),
		rule("any", MessagePublish, "", sql("insert ${topic}")),
		rule("exact", MessagePublish, "a/x", fn(OnRetainDelete)),
		rule("acked", MessageAcked, "a/x", fn(OnMessageAcked)),
	)
	tests := []struct {
		topic string
		want  []string // in registration order
	}{
		{"a/x", []string{"a+ message.publish a/x", "all message.publish a/x", "any message.publish a/x", "exact message.publish a/x"}},
		{"a/y", []string{"a+ message.publish a/y", "all message.publish a/y", "any message.publish a/y"}},
		{"b", []string{"all message.publish b", "b message.publish b", "any message.publish b"}},
		{"a/x/y", []string{"all message.publish a/x/y", "any message.publish a/x/y"}},
		// The '$' rule: "#" and "a/+" do not match, the rule without a filter does.
		{"$SYS/a/x", []string{"any message.publish $SYS/a/x"}},
	}
	for _, tt := range tests {
		res, err := d.Dispatch(context.Background(), publish(tt.topic))
		if err != nil || !reflect.DeepEqual(res, Result{}) {
			t.Errorf("Dispatch(%q) = %+v, %v", tt.topic, res, err)
		}
		if got := b.takeWrites(); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Dispatch(%q) wrote\n%q\nwant\n%q", tt.topic, got, tt.want)
		}
	}
	// The point matters: message.acked has only the "acked" rule.
	ack := &AckedEvent{ClientID: "c", Message: &Message{ID: "1", Topic: "a/x"}}
	if err := d.MessageAcked(context.Background(), ack); err != nil {
		t.Fatal(err)
	}
	if got, want := b.takeWrites(), []string{"acked message.acked a/x"}; !reflect.DeepEqual(got, want) {
		t.Errorf("acked wrote %q, want %q", got, want)
	}
}

func TestDispatchDollarFilter(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	b := new(memBackend)
	mustRegister(t, d, "mem", b,
		rule("sys", MessagePublish, "$SYS/#", fn(OnMessagePublish)),
		rule("plus", MessagePublish, "+/uptime", fn(OnMessageStore)))
	d.Dispatch(context.Background(), publish("$SYS/uptime"))
	d.Dispatch(context.Background(), publish("x/uptime"))
	want := []string{"sys message.publish $SYS/uptime", "plus message.publish x/uptime"}
	if got := b.takeWrites(); !reflect.DeepEqual(got, want) {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

// Client and session events have no topic: only rules without a filter match them.
func TestDispatchTopiclessEvents(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	b := new(memBackend)
	mustRegister(t, d, "mem", b,
		rule("conn", ClientConnected, "", fn(OnClientConnected)),
		rule("conn#", ClientConnected, "#", sql("never")),
		rule("disc", ClientDisconnected, "", fn(OnClientDisconnected)),
		rule("disc+", ClientDisconnected, "+", sql("never")),
		rule("sess", SessionCreated, "", sql("insert ${clientid}")))
	ctx := context.Background()
	if _, err := d.ClientConnected(ctx, &ConnectedEvent{ClientID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if err := d.ClientDisconnected(ctx, &DisconnectedEvent{ClientID: "c1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.SessionCreated(ctx, &SessionCreatedEvent{ClientID: "c1"}); err != nil {
		t.Fatal(err)
	}
	want := []string{"conn client.connected ", "disc client.disconnected ", "sess session.created "}
	if got := b.takeWrites(); !reflect.DeepEqual(got, want) {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

// A subscription's filter is matched as a topic, literally (EMQX), by its real filter when shared.
func TestDispatchSubscriptionFilters(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	b := new(memBackend)
	mustRegister(t, d, "mem", b,
		rule("queue", SessionSubscribed, "queue/#", sql("q")),
		rule("plus", SessionSubscribed, "a/+", sql("p")),
		rule("unsub", SessionUnsubscribed, "queue/#", fn(OnAckedDelete)))
	ctx := context.Background()
	for _, f := range []string{"queue/+/x", "queue/#", "a/#", "a/b/c", "#", "$share/g/queue/1", "$queue/a/b", "$share/g/#"} {
		if _, err := d.SessionSubscribed(ctx, &SubscribedEvent{ClientID: "c", Topic: f, QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.SessionUnsubscribed(ctx, &UnsubscribedEvent{ClientID: "c", Topic: "$share/g/queue/+"}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"queue session.subscribed queue/+/x",
		"queue session.subscribed queue/#",
		"plus session.subscribed a/#", // '#' is an ordinary level of the subscribed filter
		"queue session.subscribed $share/g/queue/1",
		"plus session.subscribed $queue/a/b",
		"unsub session.unsubscribed $share/g/queue/+",
	}
	if got := b.takeWrites(); !reflect.DeepEqual(got, want) {
		t.Errorf("wrote\n%q\nwant\n%q", got, want)
	}
}

func msg(id, topic string) *Message { return &Message{ID: id, Topic: topic} }

func TestDispatchLookupsMerged(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	answers := map[string]Result{
		"fetch":  {Offline: []*Message{msg("1", "t/a"), msg("2", "t/a"), msg("3", "t/b")}},
		"retain": {Retained: []*Message{msg("r", "t/a"), msg("4", "t/a")}},
		"subs":   {Subscriptions: []Subscription{{"t/#", 1}, {"u", 0}}},
		"subs2":  {Subscriptions: []Subscription{{"u", 2}, {"v", 1}, {"t/#", 0}}},
	}
	answer := func(ctx context.Context, r *Rule, e Event) (Result, error) { return answers[r.Name], nil }
	b1 := &memBackend{lookup: answer}
	b2 := &memBackend{lookup: answer}
	mustRegister(t, d, "one", b1,
		rule("fetch", SessionSubscribed, "t/#", fn(OnMessageFetch)),
		rule("subs", SessionCreated, "", fn(OnSubscribeLookup)),
		rule("write", SessionSubscribed, "#", sql("insert ${topic}")))
	mustRegister(t, d, "two", b2,
		rule("retain", SessionSubscribed, "", fn(OnRetainLookup)),
		rule("subs2", SessionCreated, "", fn(OnSubscriptionLookup)),
		rule("other", SessionSubscribed, "x/#", fn(OnMessageFetch)))

	res, err := d.SessionSubscribed(context.Background(), &SubscribedEvent{ClientID: "c", Topic: "t/+", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ms []*Message) (s []string) {
		for _, m := range ms {
			s = append(s, m.ID)
		}
		return s
	}
	if want := []string{"1", "2", "3"}; !reflect.DeepEqual(ids(res.Offline), want) || res.Subscriptions != nil {
		t.Errorf("offline %q, subscriptions %v; want %q and none", ids(res.Offline), res.Subscriptions, want)
	}
	if want := []string{"r", "4"}; !reflect.DeepEqual(ids(res.Retained), want) {
		t.Errorf("retained %q, want %q", ids(res.Retained), want)
	}
	if got := b1.takeWrites(); !reflect.DeepEqual(got, []string{"write session.subscribed t/+"}) {
		t.Errorf("writes %q", got)
	}

	res, err = d.SessionCreated(context.Background(), &SessionCreatedEvent{ClientID: "c"})
	want := []Subscription{{"t/#", 1}, {"u", 2}, {"v", 1}}
	if err != nil || !reflect.DeepEqual(res.Subscriptions, want) || res.Offline != nil || res.Retained != nil {
		t.Errorf("SessionCreated = %+v, %v; want subscriptions %v", res, err, want)
	}
}

func TestDispatchErrorsJoinedWithPartialResults(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	errWrite, errLookup := errors.New("queue full"), errors.New("connection refused")
	b := &memBackend{
		writeErr: map[string]error{"w1": errWrite},
		lookup: func(ctx context.Context, r *Rule, e Event) (Result, error) {
			switch r.Name {
			case "partial":
				return Result{Offline: []*Message{msg("p", "t")}}, errLookup
			case "ok":
				return Result{Offline: []*Message{msg("o", "t")}}, nil
			}
			return Result{}, nil
		},
	}
	mustRegister(t, d, "mem", b,
		rule("w1", SessionSubscribed, "", sql("a")),
		rule("w2", SessionSubscribed, "", sql("b")),
		rule("partial", SessionSubscribed, "", fn(OnMessageFetch)),
		rule("ok", SessionSubscribed, "", fn(OnRetainLookup)))
	res, err := d.Dispatch(context.Background(), &SubscribedEvent{ClientID: "c", Topic: "t"})
	if len(res.Offline) != 2 || res.Offline[0].ID != "p" || res.Offline[1].ID != "o" {
		t.Errorf("messages %+v, want p and o", res.Offline)
	}
	if !errors.Is(err, errWrite) || !errors.Is(err, errLookup) {
		t.Fatalf("error %v does not hold both failures", err)
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok || len(joined.Unwrap()) != 2 {
		t.Fatalf("error %#v is not two joined errors", err)
	}
	var ae *ActionError
	if !errors.As(joined.Unwrap()[0], &ae) || ae.Backend != "mem" || ae.Rule != "w1" || ae.Point != SessionSubscribed {
		t.Errorf("first error %#v", joined.Unwrap()[0])
	}
	if msg := err.Error(); !strings.Contains(msg, `backend "mem", rule "partial": connection refused`) {
		t.Errorf("error message %q", msg)
	}
	// The write after the failed one still ran.
	if got := b.takeWrites(); !reflect.DeepEqual(got, []string{"w2 session.subscribed t"}) {
		t.Errorf("writes %q", got)
	}
}

func TestDispatchLookupTimeout(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{LookupTimeout: 10 * time.Millisecond})
	b := &memBackend{lookup: func(ctx context.Context, r *Rule, e Event) (Result, error) {
		if _, ok := ctx.Deadline(); !ok {
			return Result{}, errors.New("no deadline")
		}
		<-ctx.Done()
		return Result{}, ctx.Err()
	}}
	mustRegister(t, d, "slow", b, rule("fetch", SessionSubscribed, "#", fn(OnMessageFetch)))
	_, err := d.Dispatch(context.Background(), &SubscribedEvent{ClientID: "c", Topic: "t"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want DeadlineExceeded", err)
	}

	// The caller's cancellation reaches the lookup too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.Dispatch(ctx, &SubscribedEvent{ClientID: "c", Topic: "t"}); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want Canceled", err)
	}

	// Negative: no deadline beyond the caller's.
	d = newTestDispatcher(DispatcherOptions{LookupTimeout: -1})
	mustRegister(t, d, "slow", b, rule("fetch", SessionSubscribed, "#", fn(OnMessageFetch)))
	if _, err := d.Dispatch(context.Background(), &SubscribedEvent{ClientID: "c", Topic: "t"}); err == nil || !strings.Contains(err.Error(), "no deadline") {
		t.Errorf("error %v, want the lookup's own", err)
	}
}

func TestDispatchSetsMessageID(t *testing.T) {
	ids := NewIDGenerator("n")
	d := newTestDispatcher(DispatcherOptions{IDs: ids})
	m := &Message{Topic: "t"}
	if err := d.MessagePublish(context.Background(), &PublishEvent{Message: m}); err != nil {
		t.Fatal(err)
	}
	if len(m.ID) != IDLen || m.ID >= ids.Next() {
		t.Errorf("ID %q was not made by the generator", m.ID)
	}
	m = &Message{ID: "broker-id", Topic: "t"}
	d.Dispatch(context.Background(), &PublishEvent{Message: m})
	if m.ID != "broker-id" {
		t.Errorf("ID replaced by %q", m.ID)
	}
	m = &Message{Topic: "t"}
	d.Dispatch(context.Background(), &AckedEvent{Message: m})
	d.Dispatch(context.Background(), &DeliverEvent{Message: m})
	if m.ID != "" {
		t.Errorf("acked/deliver message got ID %q", m.ID)
	}
}

func TestDispatchInvalidEvent(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	for _, e := range []Event{nil, (*PublishEvent)(nil), &PublishEvent{}, &DeliverEvent{}, &AckedEvent{},
		(*ConnectedEvent)(nil), (*SubscribedEvent)(nil), (*UnsubscribedEvent)(nil), (*SessionCreatedEvent)(nil), (*DisconnectedEvent)(nil)} {
		if _, err := d.Dispatch(context.Background(), e); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("Dispatch(%#v) error = %v, want ErrInvalidEvent", e, err)
		}
	}
}

func TestRegisterRejects(t *testing.T) {
	good := rule("good", MessagePublish, "#", fn(OnMessagePublish))
	prepErr := errors.New("unsupported function")
	tests := []struct {
		name    string
		backend *memBackend
		rule    Rule
		is      error
		msg     string
	}{
		{"bad filter", new(memBackend), rule("r", MessagePublish, "a/#/b", fn(OnMessagePublish)), nil, `rule "r": topic: topic: invalid topic filter`},
		{"unknown function", new(memBackend), rule("r", MessagePublish, "#", fn("on_nothing")), ErrUnknownFunction, `rule "r": action.function`},
		{"wrong point", new(memBackend), rule("r", MessagePublish, "#", fn(OnClientConnected)), ErrFunctionPoint, `rule "r"`},
		{"no action", new(memBackend), rule("r", MessagePublish, "#", RuleAction{}), ErrAction, `rule "r": action`},
		{"bad point", new(memBackend), rule("r", 0, "", sql("x")), ErrUnknownPoint, `rule "r"`},
		{"negative count", new(memBackend), Rule{Name: "r", Point: SessionSubscribed, Action: fn(OnMessageFetch), OfflineOpts: OfflineOpts{MaxReturnedCount: -1}}, ErrValue, "max_returned_count"},
		{"unnamed", new(memBackend), rule("", MessagePublish, "#", fn("on_nothing")), ErrUnknownFunction, `rule "mem[1]"`},
		{"prepare fails", &memBackend{prepare: func(r *Rule) (Action, error) {
			if r.Name == "r" {
				return nil, prepErr
			}
			return memWrite{}, nil
		}}, rule("r", MessagePublish, "#", fn(OnMessageRetain)), prepErr, `hook: backend "mem": rule "r": unsupported function`},
		{"prepare fails with a RuleError", &memBackend{prepare: func(r *Rule) (Action, error) {
			return nil, &RuleError{Rule: r.Name, Field: "action.function", Err: prepErr}
		}}, rule("r", MessagePublish, "#", fn(OnMessageRetain)), prepErr, `hook: backend "mem": rule "good": action.function: unsupported function`},
		{"write for a lookup", &memBackend{prepare: func(r *Rule) (Action, error) { return memWrite{}, nil }},
			rule("r", SessionSubscribed, "#", fn(OnRetainLookup)), ErrActionType, "hook.memWrite, want a LookupAction"},
		{"lookup for a write", &memBackend{prepare: func(r *Rule) (Action, error) { return memLookup{}, nil }},
			rule("r", MessagePublish, "#", sql("x")), ErrActionType, "want a WriteAction"},
		{"nil action", &memBackend{prepare: func(r *Rule) (Action, error) { return nil, nil }},
			rule("r", MessagePublish, "#", fn(OnMessagePublish)), ErrActionType, "<nil>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newTestDispatcher(DispatcherOptions{})
			err := d.Register(context.Background(), "mem", tt.backend, good, tt.rule)
			var re *RuleError
			if !errors.As(err, &re) || tt.is != nil && !errors.Is(err, tt.is) {
				t.Fatalf("Register error = %v, want a *RuleError wrapping %v", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), `hook: backend "mem": rule "`) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not start with the backend and the rule or does not contain %q", err, tt.msg)
			}
			// Each name appears once: no "hook: register ...: hook: rule ...: hook: rule ..." chains.
			for _, once := range []string{"hook:", `"mem"`, "rule "} {
				if n := strings.Count(err.Error(), once); n != 1 {
					t.Errorf("error %q says %q %d times, want once", err, once, n)
				}
			}
			if tt.backend.activated != 0 {
				t.Errorf("Activate called %d times for a registration that failed in Prepare", tt.backend.activated)
			}
			// Nothing was registered: the good rule does not run, and the name is free.
			d.Dispatch(context.Background(), publish("t"))
			if w := tt.backend.takeWrites(); len(w) != 0 {
				t.Errorf("a rule of the rejected backend ran: %q", w)
			}
			if err := d.Register(context.Background(), "mem", new(memBackend)); err != nil {
				t.Errorf("name still taken: %v", err)
			}
		})
	}

	d := newTestDispatcher(DispatcherOptions{})
	mustRegister(t, d, "mem", new(memBackend))
	if err := d.Register(context.Background(), "mem", new(memBackend)); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("duplicate name: %v", err)
	}
	if err := d.Register(context.Background(), "nil", nil); err == nil {
		t.Error("nil backend registered")
	}
}

// Activate runs once per registration, after every rule has prepared, with all the actions in
// rule order; when it fails, nothing is registered.
func TestRegisterActivates(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	b := new(memBackend)
	mustRegister(t, d, "mem", b,
		rule("w", MessagePublish, "a", fn(OnMessagePublish)),
		rule("l", SessionSubscribed, "#", fn(OnRetainLookup)))
	if b.activated != 1 || len(b.activatedWith) != 2 {
		t.Fatalf("Activate called %d times with %d actions; want once with 2", b.activated, len(b.activatedWith))
	}
	if w, ok := b.activatedWith[0].(memWrite); !ok || w.r.Name != "w" {
		t.Errorf("first action %#v, want the write of rule w", b.activatedWith[0])
	}
	if l, ok := b.activatedWith[1].(memLookup); !ok || l.r.Name != "l" {
		t.Errorf("second action %#v, want the lookup of rule l", b.activatedWith[1])
	}

	errTTL := errors.New("cannot create the TTL index")
	failing := &memBackend{activate: func([]Action) error { return errTTL }}
	err := d.Register(context.Background(), "failing", failing, rule("w", MessagePublish, "a", fn(OnMessagePublish)))
	if !errors.Is(err, errTTL) || !strings.Contains(err.Error(), `"failing"`) {
		t.Fatalf("Register with a failing Activate = %v, want an error naming the backend and wrapping %v", err, errTTL)
	}
	d.Dispatch(context.Background(), publish("a"))
	if w := failing.takeWrites(); len(w) != 0 {
		t.Errorf("a rule of the registration whose Activate failed ran: %q", w)
	}
	if got := b.takeWrites(); len(got) != 1 {
		t.Errorf("the earlier registration's rule ran %d times, want once", len(got))
	}
	if err := d.Register(context.Background(), "failing", new(memBackend)); err != nil {
		t.Errorf("name still taken after a failed Activate: %v", err)
	}
}

// The broker's context reaches the writes (it bounds a wait for room in a full queue).
func TestDispatchPassesContextToWrites(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	b := new(memBackend)
	mustRegister(t, d, "mem", b, rule("w", MessagePublish, "", fn(OnMessagePublish)))
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, "broker")
	if _, err := d.Dispatch(ctx, publish("t")); err != nil {
		t.Fatal(err)
	}
	if b.writeCtx == nil || b.writeCtx.Value(key{}) != "broker" {
		t.Errorf("Write got context %v, want the one given to Dispatch", b.writeCtx)
	}
}

// Register keeps its own copy of the rules: changing the caller's afterwards changes nothing.
func TestRegisterCopiesRules(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	b := new(memBackend)
	rules := []Rule{rule("r", MessagePublish, "a", fn(OnMessagePublish))}
	mustRegister(t, d, "mem", b, rules...)
	rules[0].Name, rules[0].Topic = "changed", "b"
	d.Dispatch(context.Background(), publish("a"))
	if got := b.takeWrites(); !reflect.DeepEqual(got, []string{"r message.publish a"}) {
		t.Errorf("writes %q", got)
	}
}

func TestFlushAndClose(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	errClose := errors.New("disk full")
	b1, b2 := new(memBackend), &memBackend{closeErr: errClose}
	mustRegister(t, d, "one", b1, rule("r", MessagePublish, "", fn(OnMessagePublish)))
	mustRegister(t, d, "two", b2)
	if err := d.Flush(context.Background()); err != nil || b1.flushed != 1 || b2.flushed != 1 {
		t.Errorf("Flush = %v; flushed %d, %d", err, b1.flushed, b2.flushed)
	}
	err := d.Close(context.Background())
	if !errors.Is(err, errClose) || !strings.Contains(err.Error(), `close backend "two"`) {
		t.Errorf("Close = %v", err)
	}
	if b1.closed != 1 || b2.closed != 1 {
		t.Errorf("closed %d, %d times", b1.closed, b2.closed)
	}
	if _, err := d.Dispatch(context.Background(), publish("t")); !errors.Is(err, ErrClosed) || err.Error() != "hook: dispatch message.publish: closed" {
		t.Errorf("Dispatch after Close = %v", err)
	}
	if err := d.Register(context.Background(), "three", new(memBackend)); !errors.Is(err, ErrClosed) {
		t.Errorf("Register after Close = %v", err)
	}
	if err := d.Close(context.Background()); err != nil || b1.closed != 1 {
		t.Errorf("second Close = %v, closed %d times", err, b1.closed)
	}
	if w := b1.takeWrites(); len(w) != 0 {
		t.Errorf("writes after Close: %q", w)
	}
}

// Register while dispatching: every Dispatch sees a consistent set of backends (all rules of a
// backend or none). Run with -race.
func TestConcurrentRegisterDispatch(t *testing.T) {
	d := newTestDispatcher(DispatcherOptions{})
	const backends = 20
	bs := make([]*memBackend, backends)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := d.Dispatch(context.Background(), publish("a/b")); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range bs {
		bs[i] = new(memBackend)
		mustRegister(t, d, fmt.Sprint("b", i), bs[i],
			rule("one", MessagePublish, "a/+", fn(OnMessagePublish)),
			rule("two", MessagePublish, "", fn(OnMessageRetain)))
	}
	close(stop)
	wg.Wait()
	for i, b := range bs {
		w := b.takeWrites()
		if len(w)%2 != 0 {
			t.Errorf("backend %d: %d writes, want pairs", i, len(w))
		}
	}
	d.Dispatch(context.Background(), publish("a/b"))
	for i, b := range bs {
		if w := b.takeWrites(); len(w) != 2 {
			t.Errorf("backend %d: %q after registration", i, w)
		}
	}
}

type nopWrite struct{}

func (nopWrite) Write(context.Context, Event) error { return nil }

type nopBackend struct{}

func (nopBackend) Prepare(*Rule) (Action, error) { return nopWrite{}, nil }
func (nopBackend) Close(context.Context) error   { return nil }

// 100 rules on other topics, an event with an ID: the cost of hooking a store in at all.
func BenchmarkDispatchNoMatch(b *testing.B) {
	d := newTestDispatcher(DispatcherOptions{})
	var rules []Rule
	for i := range 100 {
		rules = append(rules, rule("", MessagePublish, fmt.Sprintf("device/%d/#", i), fn(OnMessagePublish)))
	}
	if err := d.Register(context.Background(), "nop", nopBackend{}, rules...); err != nil {
		b.Fatal(err)
	}
	e := &PublishEvent{Message: &Message{ID: "0", Topic: "sensor/42/temperature", QoS: 1}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Dispatch(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// One matching rule whose write does nothing: the dispatcher's own cost of a write.
func BenchmarkDispatchOneWrite(b *testing.B) {
	d := newTestDispatcher(DispatcherOptions{})
	if err := d.Register(context.Background(), "nop", nopBackend{}, rule("", MessagePublish, "sensor/#", fn(OnMessagePublish))); err != nil {
		b.Fatal(err)
	}
	e := &PublishEvent{Message: &Message{ID: "0", Topic: "sensor/42/temperature", QoS: 1}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Dispatch(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
}

// A lookup that fails with a transient error (the store unreachable for a moment) is tried
// again within the lookup deadline; one that fails otherwise is not.
func TestLookupRetriedWhileTransient(t *testing.T) {
	refused := fmt.Errorf("dial: %w", syscall.ECONNREFUSED)
	for _, tc := range []struct {
		name      string
		failures  int
		err       error
		wantCalls int
		wantErr   bool
	}{
		{"outage", 3, refused, 4, false},
		{"permanent", 3, errors.New("relation \"mqtt_msg\" does not exist"), 1, true},
		{"past the deadline", 1000, refused, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDispatcher(DispatcherOptions{LookupTimeout: 2 * time.Second})
			var calls atomic.Int32
			b := &memBackend{lookup: func(ctx context.Context, r *Rule, e Event) (Result, error) {
				if int(calls.Add(1)) <= tc.failures {
					return Result{}, tc.err
				}
				return Result{Offline: []*Message{{ID: "m", Topic: "t"}}}, nil
			}}
			mustRegister(t, d, "mem", b, rule("fetch", SessionSubscribed, "t", fn(OnMessageFetch)))
			res, err := d.Dispatch(context.Background(), &SubscribedEvent{ClientID: "c", Topic: "t", QoS: 1})
			if (err != nil) != tc.wantErr {
				t.Fatalf("Dispatch: %v (after %d calls), want an error: %v", err, calls.Load(), tc.wantErr)
			}
			if tc.wantCalls >= 0 && int(calls.Load()) != tc.wantCalls {
				t.Errorf("%d lookup calls, want %d", calls.Load(), tc.wantCalls)
			}
			if !tc.wantErr && len(res.Offline) != 1 {
				t.Errorf("result %+v, want the message", res)
			}
		})
	}
}
