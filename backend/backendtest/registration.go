package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// testRegistration checks the store through a hook.Dispatcher, as a broker registers it.
func (s *suite) testRegistration(t *testing.T) {
	t.Run("FailedRegistrationLeavesNoTrace", func(t *testing.T) {
		// Prepare must be pure: a registration refused at its second rule must not leave the
		// first rule's expired_time behind, to expire the messages a later registration
		// without expiry stores.
		if !s.h.Features.ExpiredTime {
			t.Skip("Features.ExpiredTime is false: the check registers a rule with expired_time")
		}
		fetchFn := s.anyFetch()
		if fetchFn == "" {
			t.Skip("the store lists no fetch function to read its messages back with")
		}
		e := s.open(t)
		const tp, ttl = "reg/t", time.Second
		onTopic := func(r *hook.Rule) { r.Topic = tp }
		expiring := e.rule(hook.MessagePublish, hook.RuleAction{Function: s.storeFunction()}, onTopic, func(r *hook.Rule) { r.ExpiredTime = ttl })
		refused := s.refusedRule(e)
		d := hook.NewDispatcher(hook.DispatcherOptions{Node: testNode, IDs: s.ids})
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		err := d.Register(ctx, "backendtest-refused", e.b, *expiring, *refused)
		if err == nil {
			t.Fatalf("Register of [%s, %s] succeeded; the store must refuse %s (%+v)", expiring.Name, refused.Name, refused.Name, refused.Action)
		}
		var re *hook.RuleError
		if !errors.As(err, &re) || re.Rule != refused.Name {
			t.Errorf("Register of [%s, %s]: %v; want a *hook.RuleError naming rule %s", expiring.Name, refused.Name, err, refused.Name)
		}

		kept := e.rule(hook.MessagePublish, hook.RuleAction{Function: s.storeFunction()}, onTopic)
		fetch := e.rule(hook.SessionSubscribed, hook.RuleAction{Function: fetchFn}, onTopic)
		if err := d.Register(ctx, "backendtest", e.b, *kept, *fetch); err != nil {
			t.Fatalf("Register of [%s, %s] after the refused registration: %v", kept.Name, fetch.Name, err)
		}
		m := e.msg(tp, 1, "kept")
		if _, err := d.Dispatch(ctx, &hook.PublishEvent{Message: m}); err != nil {
			t.Fatalf("Dispatch(message.publish): %v", err)
		}
		if err := d.Flush(ctx); err != nil {
			t.Fatalf("Dispatcher.Flush: %v", err)
		}
		e.checkNoFailures()
		// Past the refused rule's expiry, and past what a purge running every second or so
		// needs to act on it.
		deadline := m.Timestamp.Add(ttl + 2*time.Second)
		for {
			res, err := d.Dispatch(ctx, &hook.SubscribedEvent{ClientID: "reg-sub", Username: "user-reg-sub", Topic: tp, QoS: 1})
			if err != nil {
				t.Fatalf("Dispatch(session.subscribed): %v", err)
			}
			what := fmt.Sprintf("fetch of %s %v after publishing with a rule without expiry (a refused registration had a rule with expired_time %v)",
				tp, time.Since(m.Timestamp).Round(time.Millisecond), ttl)
			if !checkMessages(t, what, res.Offline, m) || time.Now().After(deadline) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// testSyncDurability checks hook.Sync through a Dispatcher: a publish that returns has been
// stored, so a fetch right after it, with no Flush, finds it. A store built on
// backend.Writer passes with no code of its own; a store with its own queue must report each
// write's outcome to the hook.Completion in the Write context.
func (s *suite) testSyncDurability(t *testing.T) {
	if s.h.Features.Sink {
		t.Skip("Features.Sink: a sink is read back through its database's queries, which may make a point searchable later than they acknowledge it")
	}
	fetchFn := s.anyFetch()
	if fetchFn == "" {
		t.Skip("the store lists no fetch function to read its messages back with")
	}
	e := s.open(t)
	const tp, n = "sync/t", 20
	onTopic := func(r *hook.Rule) { r.Topic = tp }
	store := e.rule(hook.MessagePublish, hook.RuleAction{Function: s.storeFunction()}, onTopic)
	fetch := e.rule(hook.SessionSubscribed, hook.RuleAction{Function: fetchFn}, onTopic)
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: testNode, IDs: s.ids, Durability: hook.Sync})
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := d.Register(ctx, "backendtest-sync", e.b, *store, *fetch); err != nil {
		t.Fatalf("Register: %v", err)
	}
	// Concurrent publishers, as a broker's clients: their writes share batches.
	msgs := make([]*hook.Message, n)
	for i := range msgs {
		msgs[i] = e.msg(tp, 1, fmt.Sprint("sync ", i))
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, m := range msgs {
		wg.Go(func() { _, errs[i] = d.Dispatch(ctx, &hook.PublishEvent{Message: m}) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Dispatch(message.publish) with hook.Sync: %v", err)
	}
	// No Flush: Sync promised they are stored.
	res, err := d.Dispatch(ctx, &hook.SubscribedEvent{ClientID: "sync-sub", Username: "user-sync-sub", Topic: tp, QoS: 1})
	if err != nil {
		t.Fatalf("Dispatch(session.subscribed): %v", err)
	}
	got := map[string]bool{}
	for _, m := range res.Offline {
		got[m.ID] = true
	}
	missing := 0
	for _, m := range msgs {
		if !got[m.ID] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d messages missing from a fetch right after their hook.Sync publishes returned (no Flush)", missing, n)
	}
	e.checkNoFailures()
}

// refusedRule returns a rule the store's Prepare refuses: one with a function it does not
// list or, for a store that lists them all, one with an unknown option.
func (s *suite) refusedRule(e *env) *hook.Rule {
	for _, fn := range allFunctions {
		if info, _ := hook.LookupFunction(fn); !s.fns[fn] {
			return e.rule(info.Points[0], hook.RuleAction{Function: fn})
		}
	}
	return e.rule(hook.MessagePublish, hook.RuleAction{Function: s.storeFunction()}, func(r *hook.Rule) {
		r.Options = map[string]json.RawMessage{"expire_time": json.RawMessage("1")}
	})
}
