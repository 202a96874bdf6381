package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// family is a one-to-many fetch function with the ack function that moves its positions.
type family struct{ fetch, acked string }

var families = []family{
	{hook.OnMessageFetch, hook.OnMessageAcked},
	{hook.OnMessageFetchForPubsub, hook.OnMessageAckedForPubsub},
}

// famEnv is a subtest's backend with the rules of one family prepared: store (the storing
// function, on every topic), get (the fetch function) and ackW (the ack function, when the
// store lists it).
type famEnv struct {
	*env
	f       family
	store   hook.WriteAction
	fetcher hook.LookupAction
	ackW    hook.WriteAction
}

func (s *suite) openFamily(t *testing.T, f family) *famEnv {
	t.Helper()
	e := s.open(t)
	x := &famEnv{env: e, f: f}
	x.store = e.writer(hook.MessagePublish, s.storeFunction())
	x.fetcher = e.looker(hook.SessionSubscribed, f.fetch)
	if s.fns[f.acked] {
		x.ackW = e.writer(hook.MessageAcked, f.acked)
	}
	return x
}

func (x *famEnv) get(client, filter string) []*hook.Message {
	x.t.Helper()
	return x.env.fetch(x.fetcher, client, filter)
}

func (x *famEnv) acked(client string, msgs ...*hook.Message) {
	x.t.Helper()
	x.ack(x.ackW, client, msgs...)
}

func (s *suite) testOfflineMessages(t *testing.T) {
	for _, f := range families {
		t.Run(f.fetch, func(t *testing.T) {
			s.require(t, f.fetch)
			if !s.h.Features.Serial {
				t.Parallel() // the families' ExpiredTime subtests wait at the same time
			}
			s.testFamily(t, f)
		})
	}
}

func (s *suite) testFamily(t *testing.T, f family) {
	t.Run("PublishStoresQoS1And2NotQoS0", func(t *testing.T) {
		s.require(t, hook.OnMessagePublish)
		x := s.openFamily(t, f)
		pub := x.writer(hook.MessagePublish, hook.OnMessagePublish)
		q0, q1, q2 := x.msg("qos/t", 0, "qos0"), x.msg("qos/t", 1, "qos1"), x.msg("qos/t", 2, "qos2")
		x.publish(pub, q0, q1, q2)
		x.flush()
		checkMessages(t, "fetch of qos/t after on_message_publish of QoS 0, 1, 2", x.get("s1", "qos/t"), q1, q2)
	})
	t.Run("StoreKeepsQoS0", func(t *testing.T) {
		s.require(t, hook.OnMessageStore)
		x := s.openFamily(t, f)
		st := x.writer(hook.MessagePublish, hook.OnMessageStore)
		q0, q1, q2 := x.msg("qos/t", 0, "qos0"), x.msg("qos/t", 1, "qos1"), x.msg("qos/t", 2, "qos2")
		x.publish(st, q0, q1, q2)
		x.flush()
		checkMessages(t, "fetch of qos/t after on_message_store of QoS 0, 1, 2", x.get("s1", "qos/t"), q0, q1, q2)
	})
	// filterCases publishes one message on each topic, then checks that fetching each filter
	// returns the messages of the topics listed for it, oldest first.
	// Without Features.WildcardFetch, each filter with a wildcard must be refused instead.
	filterCases := func(t *testing.T, topics []string, cases map[string][]string) {
		x := s.openFamily(t, f)
		byTopic := make(map[string]*hook.Message)
		for _, tp := range topics {
			m := x.msg(tp, 1, "on "+tp)
			byTopic[tp] = m
			x.publish(x.store, m)
		}
		x.flush()
		for filter, want := range cases {
			if hasWildcard(filter) && !s.h.Features.WildcardFetch {
				x.checkWildcardRefused(x.fetcher, "s1", filter, false)
				continue
			}
			var wm []*hook.Message
			for _, tp := range want {
				wm = append(wm, byTopic[tp])
			}
			checkMessages(t, fmt.Sprintf("fetch of %q", filter), x.get("s1", filter), wm...)
		}
	}
	t.Run("FetchByExactTopic", func(t *testing.T) {
		// Topics are compared byte for byte: no case folding, no trailing-space padding, and
		// no LIKE or regexp metacharacters.
		filterCases(t,
			[]string{"ex/a", "ex/a/b", "ex/ab", "ex/A", "ex/a ", "ex/a_c", "ex/abc", "ex/a%c", `ex/a\c`, "ex/a/", "ex/a.c", "ex/a*c"},
			map[string][]string{
				"ex/a": {"ex/a"}, "ex/A": {"ex/A"}, "ex/a ": {"ex/a "}, "ex/a/": {"ex/a/"},
				"ex/a_c": {"ex/a_c"}, "ex/a%c": {"ex/a%c"}, `ex/a\c`: {`ex/a\c`}, "ex/a.c": {"ex/a.c"}, "ex/a*c": {"ex/a*c"},
				"ex/none": nil,
			})
	})
	t.Run("FetchByPlusWildcard", func(t *testing.T) {
		filterCases(t,
			[]string{"pl/a/x", "pl/b/x", "pl/a/y", "pl/x", "pl/a/b/x", "pl//x", "pl/a/x/y", "$SYS/a/x"},
			map[string][]string{
				"pl/+/x":  {"pl/a/x", "pl/b/x", "pl//x"},
				"pl/a/+":  {"pl/a/x", "pl/a/y"},
				"pl/+":    {"pl/x"},
				"+/a/x":   {"pl/a/x"}, // not $SYS/a/x: a leading wildcard skips '$' topics
				"+/+/+":   {"pl/a/x", "pl/b/x", "pl/a/y", "pl//x"},
				"pl/+/+/": nil,
			})
	})
	t.Run("FetchByHashWildcard", func(t *testing.T) {
		filterCases(t,
			[]string{"hs", "hs/a", "hs/a/b", "hsx/a", "$SYS/hs", "other", "/hs"},
			map[string][]string{
				"hs/#":   {"hs", "hs/a", "hs/a/b"}, // '#' also matches the parent level
				"hs/a/#": {"hs/a", "hs/a/b"},
				"#":      {"hs", "hs/a", "hs/a/b", "hsx/a", "other", "/hs"},
				"+/#":    {"hs", "hs/a", "hs/a/b", "hsx/a", "other", "/hs"},
				"$SYS/#": {"$SYS/hs"},
				"/#":     {"/hs"},
			})
	})
	t.Run("OldestFirst", func(t *testing.T) {
		x := s.openFamily(t, f)
		var all []*hook.Message
		for i, tp := range []string{"of/c", "of/a", "of/b", "of/a", "of/c", "of/b"} {
			m := x.msg(tp, byte(1+i%2), fmt.Sprint("m", i))
			all = append(all, m)
			x.publish(x.store, m)
		}
		x.flush()
		checkMessages(t, "fetch of of/#", x.get("s1", "of/#"), all...)
	})
	t.Run("AckedPositionPerTopic", func(t *testing.T) {
		s.require(t, f.acked)
		x := s.openFamily(t, f)
		a1, b1, a2, b2, a3 := x.msg("ack/a", 1, "a1"), x.msg("ack/b", 1, "b1"), x.msg("ack/a", 2, "a2"), x.msg("ack/b", 1, "b2"), x.msg("ack/a", 1, "a3")
		x.publish(x.store, a1, b1, a2, b2, a3)
		x.flush()
		checkMessages(t, "first fetch of ack/#", x.get("c1", "ack/#"), a1, b1, a2, b2, a3)
		x.acked("c1", a1, a2)
		x.flush()
		checkMessages(t, "fetch of ack/# after acking a2 (ack/a)", x.get("c1", "ack/#"), b1, b2, a3)
		x.acked("c1", b1)
		x.flush()
		checkMessages(t, "fetch of ack/# after acking b1 (ack/b)", x.get("c1", "ack/#"), b2, a3)
		checkMessages(t, "fetch of ack/a after acking a2", x.get("c1", "ack/a"), a3)
		a4 := x.msg("ack/a", 1, "a4")
		x.publish(x.store, a4)
		x.flush()
		checkMessages(t, "fetch of ack/# after publishing a4", x.get("c1", "ack/#"), b2, a3, a4)
		x.acked("c1", b2, a4)
		x.flush()
		checkMessages(t, "fetch of ack/# after acking the last of each topic", x.get("c1", "ack/#"))
	})
	t.Run("AcksOutOfOrder", func(t *testing.T) {
		// QoS 2 acks of several in-flight messages may arrive in any order: a late ack of an
		// older message never moves the position back.
		s.require(t, f.acked)
		x := s.openFamily(t, f)
		m1, m2, m3, m4 := x.msg("ooo/a", 2, "m1"), x.msg("ooo/a", 1, "m2"), x.msg("ooo/a", 2, "m3"), x.msg("ooo/a", 1, "m4")
		x.publish(x.store, m1, m2, m3, m4)
		x.flush()
		x.acked("c1", m3, m1) // in one batch
		x.flush()
		checkMessages(t, "fetch after acking m3, then m1", x.get("c1", "ooo/a"), m4)
		x.acked("c1", m2) // on its own, later
		x.flush()
		checkMessages(t, "fetch after a later ack of m2", x.get("c1", "ooo/a"), m4)
		x.acked("c1", m4)
		x.acked("c1", m1)
		x.flush()
		checkMessages(t, "fetch after acking m4, then m1 again", x.get("c1", "ooo/a"))
	})
	t.Run("IndependentSubscribers", func(t *testing.T) {
		s.require(t, f.acked)
		x := s.openFamily(t, f)
		a1, a2, a3 := x.msg("ind/a", 1, "a1"), x.msg("ind/a", 1, "a2"), x.msg("ind/a", 1, "a3")
		x.publish(x.store, a1, a2, a3)
		x.flush()
		x.acked("c1", a1)
		x.acked("c2", a3)
		x.flush()
		checkMessages(t, "fetch by c1 (acked a1)", x.get("c1", "ind/a"), a2, a3)
		checkMessages(t, "fetch by c2 (acked a3)", x.get("c2", "ind/a"))
		checkMessages(t, "fetch by c3 (acked nothing)", x.get("c3", "ind/a"), a1, a2, a3)
	})
	t.Run("MaxReturnedCount", func(t *testing.T) {
		if !s.h.Features.MaxReturnedCount {
			t.Skip("Features.MaxReturnedCount is false")
		}
		s.require(t, f.acked)
		x := s.openFamily(t, f)
		capped := x.looker(hook.SessionSubscribed, f.fetch, func(r *hook.Rule) { r.OfflineOpts.MaxReturnedCount = 2 })
		// The cap applies to a fetch across topics; a store without wildcard fetches is
		// checked on one topic.
		a, b, filter := "max/a", "max/b", "max/#"
		if !s.h.Features.WildcardFetch {
			b, filter = a, a
		}
		m1, m2, m3, m4, m5 := x.msg(a, 1, "m1"), x.msg(b, 1, "m2"), x.msg(a, 1, "m3"), x.msg(a, 1, "m4"), x.msg(b, 1, "m5")
		x.publish(x.store, m1, m2, m3, m4, m5)
		x.flush()
		checkMessages(t, "capped fetch (max_returned_count 2) of "+filter, x.env.fetch(capped, "c1", filter), m1, m2)
		x.acked("c1", m1, m2)
		x.flush()
		checkMessages(t, "capped fetch after acking m1, m2", x.env.fetch(capped, "c1", filter), m3, m4)
		x.acked("c1", m3, m4)
		x.flush()
		checkMessages(t, "capped fetch after acking m3, m4", x.env.fetch(capped, "c1", filter), m5)
		checkMessages(t, "uncapped fetch by another client", x.get("c2", filter), m1, m2, m3, m4, m5)
	})
	t.Run("TimeRange", func(t *testing.T) {
		if !s.h.Features.TimeRange {
			t.Skip("Features.TimeRange is false")
		}
		x := s.openFamily(t, f)
		ranged := x.looker(hook.SessionSubscribed, f.fetch, func(r *hook.Rule) { r.OfflineOpts.TimeRange = time.Hour })
		// The old messages' IDs tell their time too, so a store may query a msgid range.
		now := time.Now()
		old1, old2 := x.msgAt(now.Add(-3*time.Hour), "tr/a", 1, "old1"), x.msgAt(now.Add(-2*time.Hour), "tr/b", 1, "old2")
		new1, new2 := x.msg("tr/a", 1, "new1"), x.msg("tr/b", 1, "new2")
		x.publish(x.store, old1, old2, new1, new2)
		x.flush()
		checkMessages(t, "fetch of tr/# with time_range 1h (two messages are 2h and 3h old)", x.env.fetch(ranged, "c1", "tr/#"), new1, new2)
		checkMessages(t, "fetch of tr/# without time_range", x.get("c1", "tr/#"), old1, old2, new1, new2)
	})
	t.Run("AckedDeleteOnUnsubscribe", func(t *testing.T) {
		s.require(t, f.acked, hook.OnAckedDelete)
		x := s.openFamily(t, f)
		unsub := x.writer(hook.SessionUnsubscribed, hook.OnAckedDelete)
		unsubscribe := func(client, filter string) {
			t.Helper()
			x.write(unsub, &hook.UnsubscribedEvent{ClientID: client, Username: "user-" + client, Topic: filter})
			x.flush()
		}
		a1, b1, d1, a2, b2 := x.msg("ad/a", 1, "a1"), x.msg("ad/b", 1, "b1"), x.msg("ad/d/e", 1, "d1"), x.msg("ad/a", 1, "a2"), x.msg("ad/b", 1, "b2")
		x.publish(x.store, a1, b1, d1, a2, b2)
		x.flush()
		x.acked("c1", a1, b1, d1)
		x.acked("c2", a1)
		x.flush()
		checkMessages(t, "fetch by c1 after acking a1, b1, d1", x.get("c1", "ad/#"), a2, b2)
		unsubscribe("c1", "ad/a")
		checkMessages(t, "fetch by c1 after unsubscribing from ad/a", x.get("c1", "ad/#"), a1, a2, b2)
		unsubscribe("c1", "ad/#")
		checkMessages(t, "fetch by c1 after unsubscribing from ad/# (positions under the filter are gone)", x.get("c1", "ad/#"), a1, b1, d1, a2, b2)
		checkMessages(t, "fetch by c2, whose position c1's unsubscribing must not touch", x.get("c2", "ad/#"), b1, d1, a2, b2)
	})
	t.Run("EachMessageOnceEvenIfStoredByTwoRules", func(t *testing.T) {
		s.require(t, f.acked)
		x := s.openFamily(t, f)
		// A broker with overlapping rules stores a message once per matching rule; the
		// duplicates carry the same msgid.
		again := x.writer(hook.MessagePublish, s.storeFunction(), func(r *hook.Rule) { r.Topic = "once/#" })
		a1, b1, c1, a2, b2, c2 := x.msg("once/a", 1, "a1"), x.msg("once/b", 1, "b1"), x.msg("once/c", 1, "c1"),
			x.msg("once/a", 1, "a2"), x.msg("once/b", 1, "b2"), x.msg("once/c", 1, "c2")
		for _, m := range []*hook.Message{a1, b1, c1, a2, b2, c2} {
			x.publish(x.store, m)
			x.publish(again, m)
		}
		x.flush()
		checkMessages(t, "fetch of once/#", x.get("x", "once/#"), a1, b1, c1, a2, b2, c2)
		// Positions of several topics and of other clients must not multiply the answer.
		x.acked("x", a1, b1, c1)
		x.acked("y", a1)
		x.flush()
		checkMessages(t, "fetch by x after acking a1, b1, c1", x.get("x", "once/#"), a2, b2, c2)
		checkMessages(t, "fetch by y after acking a1", x.get("y", "once/#"), b1, c1, a2, b2, c2)
	})
	t.Run("SameMsgIDStoredOnce", func(t *testing.T) {
		x := s.openFamily(t, f)
		m1, m2 := x.msg("idem/t", 1, "m1"), x.msg("idem/t", 1, "m2")
		x.publish(x.store, m1, m1, m2)
		x.flush()
		retry := *m1 // a retry after an unknown outcome: the same message again, later
		x.publish(x.store, &retry)
		x.flush()
		checkMessages(t, "fetch of idem/t after writing m1 three times", x.get("s1", "idem/t"), m1, m2)
	})
	t.Run("SpecialCharactersStoredVerbatim", func(t *testing.T) {
		x := s.openFamily(t, f)
		var all []*hook.Message
		for i, v := range specialValues {
			tp := "sc/" + v
			if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 }) {
				tp = fmt.Sprint("sc/control", i)
			}
			m := x.msg(tp, 1, v)
			m.From, m.Username = v, v
			all = append(all, m)
			x.publish(x.store, m)
		}
		x.flush()
		for _, m := range all {
			checkMessages(t, fmt.Sprintf("fetch of %q", m.Topic), x.get("s1", m.Topic), m)
		}
		checkMessages(t, "fetch of sc/#", x.get("s1", "sc/#"), all...)
	})
	t.Run("BinaryPayload", func(t *testing.T) {
		x := s.openFamily(t, f)
		x.allowFailed = !s.h.Features.BinaryPayload
		failedBefore := x.failedWrites()
		var all []*hook.Message
		for i, p := range binaryPayloads() {
			m := x.msg(fmt.Sprint("bin/", i), 1, "")
			m.Payload = p
			all = append(all, m)
		}
		refused := x.publishOrRefuse(x.store, all...)
		x.flush()
		x.checkBinaryPayloads("fetch of bin/#", x.get("s1", "bin/#"), true, refused, failedBefore, all...)
	})
	t.Run("ExpiredTime", func(t *testing.T) {
		if !s.h.Features.ExpiredTime {
			t.Skip("Features.ExpiredTime is false")
		}
		x := s.openFamily(t, f)
		const ttl = 2 * time.Second
		expiring := x.writer(hook.MessagePublish, s.storeFunction(), func(r *hook.Rule) {
			r.Topic = "exp/gone"
			r.ExpiredTime = ttl
		})
		keep, gone := x.msg("exp/keep", 1, "keep"), x.msg("exp/gone", 1, "gone")
		x.publish(x.store, keep)
		x.publish(expiring, gone)
		x.flush()
		deadline := gone.Timestamp.Add(ttl + 3*time.Second)
		for {
			got := x.get("s1", "exp/gone")
			if len(got) == 0 {
				break
			}
			checkMessages(t, "fetch of exp/gone before it expires", got, gone)
			if time.Now().After(deadline) {
				t.Fatalf("the message stored with expired_time %v is still fetched %v after it was published", ttl, time.Since(gone.Timestamp))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if age := time.Since(gone.Timestamp); age < ttl-timeSlack {
			t.Errorf("the message stored with expired_time %v was gone %v after it was published", ttl, age)
		}
		checkMessages(t, "fetch of exp/# once exp/gone expired (exp/keep has no expired_time)", x.get("s1", "exp/#"), keep)
	})
	t.Run("ConcurrentPublishFetchAck", func(t *testing.T) {
		s.require(t, f.acked)
		s.testConcurrency(t, f)
	})
	t.Run("TwoWriters", func(t *testing.T) {
		if s.h.Twin == nil {
			t.Skip("Harness.Twin is nil: the suite cannot open a second backend on one namespace")
		}
		s.require(t, f.acked)
		s.testTwoWriters(t, f)
	})
	t.Run("CloseDrains", func(t *testing.T) {
		if s.h.Reopen == nil {
			t.Skip("Harness.Reopen is nil: the suite cannot reopen the store's namespace")
		}
		s.require(t, f.acked)
		x := s.openFamily(t, f)
		const n = 200
		var first, second []*hook.Message
		for i := range n {
			m := x.msg("drain/t", 1, fmt.Sprintf("m%03d", i))
			if i < n/2 {
				first = append(first, m)
			} else {
				second = append(second, m)
			}
		}
		x.publish(x.store, first...)
		x.flush()
		// Queued at Close: an ack of a stored message, and the second half.
		x.acked("c1", first[len(first)-1])
		x.publish(x.store, second...)
		x.close()
		if err := x.store.Write(context.Background(), &hook.PublishEvent{Message: x.msg("drain/late", 1, "late")}); err == nil {
			t.Error("Write after Close returned nil; want an error wrapping hook.ErrClosed or hook.ErrDropped")
		} else if !errors.Is(err, hook.ErrClosed) && !errors.Is(err, hook.ErrDropped) {
			t.Errorf("Write after Close: %v; want an error wrapping hook.ErrClosed or hook.ErrDropped", err)
		}

		y := x.sibling(s.h.Reopen(t, x.b), "Harness.Reopen")
		fetch := y.looker(hook.SessionSubscribed, f.fetch)
		checkMessages(t, "fetch after Close and Reopen", y.fetch(fetch, "c2", "drain/#"), append(first, second...)...)
		checkMessages(t, "fetch by c1, whose ack was queued at Close", y.fetch(fetch, "c1", "drain/#"), second...)
	})
}

// testConcurrency has publishers, and subscribers that fetch and ack, run at once, each on
// its own client; then checks that nothing was lost or duplicated.
func (s *suite) testConcurrency(t *testing.T, f family) {
	const publishers, perPublisher, subscribers, rounds = 4, 50, 4, 10
	x := s.openFamily(t, f)
	published := make([][]*hook.Message, publishers)
	lastAcked := make([]map[string]*hook.Message, subscribers) // per subscriber, per topic
	var wg sync.WaitGroup
	for i := range publishers {
		wg.Go(func() {
			for k := range perPublisher {
				m := x.msg(fmt.Sprintf("conc/p%d", i), byte(1+k%2), fmt.Sprintf("p%d-%d", i, k))
				m.From = fmt.Sprint("pub", i)
				x.topics.add(m.Topic)
				if err := x.store.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
					t.Errorf("publisher %d: Write: %v", i, err)
					return
				}
				published[i] = append(published[i], m)
			}
		})
	}
	for j := range subscribers {
		wg.Go(func() {
			client := fmt.Sprint("sub", j)
			last := make(map[string]*hook.Message)
			lastAcked[j] = last
			for range rounds {
				ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
				got, err := x.lookupMessages(ctx, x.fetcher, client, "conc/#", false)
				cancel()
				if err != nil {
					t.Errorf("%s: %v", client, err)
					return
				}
				if p := orderProblem(got); p != "" {
					t.Errorf("%s: a fetch during publishing %s:\n%s", client, p, formatMessages(got))
					return
				}
				for _, m := range got {
					if prev := last[m.Topic]; prev != nil && m.ID <= prev.ID {
						continue
					}
					if err := x.ackW.Write(context.Background(), &hook.AckedEvent{ClientID: client, Message: m}); err != nil {
						t.Errorf("%s: Write(ack): %v", client, err)
						return
					}
					last[m.Topic] = m
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	x.flush()
	var all []*hook.Message
	for _, p := range published {
		all = append(all, p...)
	}
	got := x.get("fresh", "conc/#")
	if p := orderProblem(got); p != "" {
		t.Errorf("fetch by a fresh subscriber %s", p)
	}
	checkMessageSet(t, "fetch of conc/# by a fresh subscriber", got, all...)
	for j, last := range lastAcked {
		var want []*hook.Message
		for _, m := range all {
			if a := last[m.Topic]; a == nil || m.ID > a.ID {
				want = append(want, m)
			}
		}
		got := x.get(fmt.Sprint("sub", j), "conc/#")
		if p := orderProblem(got); p != "" {
			t.Errorf("fetch by sub%d %s", j, p)
		}
		checkMessageSet(t, fmt.Sprintf("fetch of conc/# by sub%d after its acks", j), got, want...)
	}
}

// orderProblem says what is wrong with a fetch answer whose order across topics is not known:
// a message returned twice, or messages of one topic not oldest first.
func orderProblem(ms []*hook.Message) string {
	seen := make(map[string]bool)
	last := make(map[string]string)
	for _, m := range ms {
		if seen[m.ID] {
			return "returned message " + m.ID + " twice"
		}
		seen[m.ID] = true
		if prev, ok := last[m.Topic]; ok && m.ID < prev {
			return fmt.Sprintf("returned %s before %s on topic %q: not oldest first", prev, m.ID, m.Topic)
		}
		last[m.Topic] = m.ID
	}
	return ""
}

// specialValues are strings that break statements built by splicing, LIKE patterns, command
// lines split at spaces, and template engines that expand twice. All are valid UTF-8 without
// NUL, so every store must keep them as they are.
var specialValues = []string{
	`x'); DROP TABLE mqtt_msg; --`,
	`x"); DROP TABLE mqtt_retain; --`,
	`'; DELETE FROM mqtt_msg WHERE '1'='1`,
	`back\slash \' \" \\ \x00`,
	"${payload} ${clientid} $1 ? :name %s %_ {{.}}",
	"a b\tc\nd\r\ne",
	" leading and trailing ",
	"FLUSHALL",
	"日本語 ✓ 😀",
	"",
}

// binaryPayloads are payloads that only a binary-safe store keeps: every byte value, NUL
// alone, invalid UTF-8, the empty payload, and a longer one.
func binaryPayloads() [][]byte {
	all := make([]byte, 256)
	rev := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
		rev[i] = byte(255 - i)
	}
	return [][]byte{all, rev, {0}, []byte("bad\xff\xfeutf8\xc3("), {}, bytes.Repeat(all, 64)}
}
