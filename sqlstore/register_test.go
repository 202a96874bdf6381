package sqlstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// TestFailedRegisterLeavesNoExpiry: a registration that fails at its second rule leaves
// nothing of its first (an expired_time of 1s on t): after a registration without expiry, a
// message on t older than 1s is neither hidden by Fetch nor deleted by the purge.
func TestFailedRegisterLeavesNoExpiry(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := t.Context()
			disp := hook.NewDispatcher(hook.DispatcherOptions{Logger: quiet})
			defer disp.Close(ctx)
			err := disp.Register(ctx, "x", s,
				hook.Rule{Name: "expiring", Point: hook.MessagePublish, Topic: "t", ExpiredTime: time.Second,
					Action: hook.RuleAction{Function: hook.OnMessagePublish}},
				hook.Rule{Name: "queue", Point: hook.SessionSubscribed, Action: hook.RuleAction{Function: hook.OnMessageFetchForQueue}})
			if !errors.Is(err, hook.ErrUnsupported) {
				t.Fatalf("Register with an unsupported function: %v, want hook.ErrUnsupported", err)
			}
			err = disp.Register(ctx, "x", s, hook.Rule{Name: "keep", Point: hook.MessagePublish, Topic: "t",
				Action: hook.RuleAction{Function: hook.OnMessagePublish}})
			if err != nil {
				t.Fatal(err)
			}
			// Published a minute ago: past the 1s of the failed registration.
			m := &hook.Message{ID: "m1", Topic: "t", QoS: 1, Payload: []byte("x"), Timestamp: time.Now().Add(-time.Minute)}
			if err := disp.MessagePublish(ctx, &hook.PublishEvent{Message: m}); err != nil {
				t.Fatal(err)
			}
			if err := disp.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if got, err := s.Fetch(ctx, "c", "t", hook.OfflineOpts{}); err != nil || len(got) != 1 {
				t.Errorf("fetch before the purge = %v, %v; want [m1]", ids(got), err)
			}
			if n, err := s.PurgeExpired(ctx); err != nil || n != 0 {
				t.Errorf("PurgeExpired = %d, %v; want nothing deleted", n, err)
			}
			if got, err := s.Fetch(ctx, "c", "t", hook.OfflineOpts{}); err != nil || len(got) != 1 {
				t.Errorf("fetch after the purge = %v, %v; want [m1]", ids(got), err)
			}
		})
	}
}

// TestActivate: Activate applies a storing rule's expiry once (a second Activate of the same
// rule changes nothing), refuses actions of another store, and fails on a closed store.
func TestActivate(t *testing.T) {
	ctx := t.Context()
	s, other := newStore(t, SQLite), newStore(t, SQLite)
	r := &hook.Rule{Name: "exp", Point: hook.MessagePublish, ExpiredTime: time.Minute, Action: hook.RuleAction{Function: hook.OnMessageStore}}
	a, err := s.Prepare(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.expiryRules()) != 0 {
		t.Fatalf("Prepare changed the store: expiries %v", s.expiryRules())
	}
	for range 2 {
		if err := s.Activate(ctx, []hook.Action{a}); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.expiryRules(); len(got) != 1 || got[0] != (expiry{ttl: time.Minute}) {
		t.Errorf("expiries after activating the rule twice = %v", got)
	}
	b, _ := other.Prepare(r)
	if err := s.Activate(ctx, []hook.Action{b}); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("Activate of another store's action: %v, want hook.ErrConfig", err)
	}
	s.Close(ctx)
	if err := s.Activate(ctx, []hook.Action{a}); !errors.Is(err, hook.ErrClosed) {
		t.Errorf("Activate on a closed store: %v, want hook.ErrClosed", err)
	}
}

// TestPrepareErrors: an unknown rule option is refused naming the key, and Prepare's errors,
// through a Dispatcher, name the backend and the rule once each.
func TestPrepareErrors(t *testing.T) {
	s := newStore(t, SQLite)
	ctx := t.Context()
	typo := hook.Rule{Name: "r-pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessagePublish},
		Options: map[string]json.RawMessage{"expire_time": json.RawMessage("60")}}
	_, err := s.Prepare(&typo)
	if !errors.Is(err, hook.ErrUnknownOption) || !strings.Contains(err.Error(), "expire_time") {
		t.Errorf("Prepare with expire_time: %v, want hook.ErrUnknownOption naming the key", err)
	}
	disp := hook.NewDispatcher(hook.DispatcherOptions{Logger: quiet})
	defer disp.Close(ctx)
	for _, c := range []struct {
		rule hook.Rule
		want string // the start of the error
	}{
		{typo, `hook: backend "sqlite": rule "r-pub": expire_time: unknown rule option`},
		{hook.Rule{Name: "r-queue", Point: hook.SessionSubscribed, Action: hook.RuleAction{Function: hook.OnMessageFetchForQueue}},
			`hook: backend "sqlite": rule "r-queue": action.function: unsupported: on_message_fetch_for_queue (`},
		{hook.Rule{Name: "r-redis", Point: hook.ClientConnected, Action: hook.RuleAction{Commands: []string{"SET a b"}}},
			`hook: backend "sqlite": rule "r-redis": action.commands: unsupported: Redis commands`},
		{hook.Rule{Name: "r-quoted", Point: hook.ClientConnected, Action: hook.RuleAction{SQL: []string{"INSERT INTO t VALUES ('${clientid}')"}}},
			`hook: backend "sqlite": rule "r-quoted": action.sql[0]: `},
	} {
		err := disp.Register(ctx, "sqlite", s, c.rule)
		if err == nil {
			t.Errorf("Register(%s) succeeded", c.rule.Name)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, c.want) || strings.Count(msg, "sqlite") != 1 || strings.Count(msg, c.rule.Name) != 1 || strings.Count(msg, "hook:") != 1 {
			t.Errorf("Register(%s): %q; want it to start with %q and name the backend and the rule once each", c.rule.Name, msg, c.want)
		}
	}
}
