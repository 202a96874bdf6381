package backendtest

import (
	"fmt"
	"testing"

	"github.com/mqttstore/mqttstore/hook"
)

func (s *suite) testRetained(t *testing.T) {
	s.require(t, hook.OnMessageRetain, hook.OnRetainLookup)
	open := func(t *testing.T) (*env, hook.WriteAction, func(filter string) []*hook.Message) {
		e, retain, _, lookup := s.openRetained(t)
		return e, retain, lookup
	}
	retained := func(e *env, topic string, qos byte, payload string) *hook.Message {
		m := e.msg(topic, qos, payload)
		m.Retain = true
		return m
	}
	// filterCases retains one message on each topic, then checks that looking up each filter
	// returns the messages of the topics listed for it.
	// Without Features.WildcardRetained, each filter with a wildcard must be refused instead.
	filterCases := func(t *testing.T, topics []string, cases map[string][]string) {
		e, retain, l, lookup := s.openRetained(t)
		byTopic := make(map[string]*hook.Message)
		for _, tp := range topics {
			byTopic[tp] = retained(e, tp, 1, "on "+tp)
			e.publish(retain, byTopic[tp])
		}
		e.flush()
		for filter, want := range cases {
			if hasWildcard(filter) && !s.h.Features.WildcardRetained {
				e.checkWildcardRefused(l, "s1", filter, true)
				continue
			}
			var wm []*hook.Message
			for _, tp := range want {
				wm = append(wm, byTopic[tp])
			}
			checkMessageSet(t, fmt.Sprintf("retained lookup of %q", filter), lookup(filter), wm...)
		}
	}

	t.Run("StoreAndLookupExact", func(t *testing.T) {
		e, retain, lookup := open(t)
		r1, r0 := retained(e, "rt/a", 1, "r1"), retained(e, "rt/b", 0, "r0")
		plain := e.msg("rt/c", 1, "not retained")
		e.publish(retain, r1, r0, plain)
		e.flush()
		checkMessageSet(t, "retained lookup of rt/a", lookup("rt/a"), r1)
		checkMessageSet(t, "retained lookup of rt/b (QoS 0)", lookup("rt/b"), r0)
		checkMessageSet(t, "retained lookup of rt/c (published without the retain flag)", lookup("rt/c"))
		checkMessageSet(t, "retained lookup of rt/x", lookup("rt/x"))
	})
	t.Run("ExactTopicsComparedByteForByte", func(t *testing.T) {
		filterCases(t, []string{"rx/a", "rx/A", "rx/a ", "rx/a_c", "rx/abc", "rx/a%c", `rx/a\c`},
			map[string][]string{
				"rx/a": {"rx/a"}, "rx/A": {"rx/A"}, "rx/a ": {"rx/a "},
				"rx/a_c": {"rx/a_c"}, "rx/a%c": {"rx/a%c"}, `rx/a\c`: {`rx/a\c`},
			})
	})
	t.Run("ReplaceKeepsLatest", func(t *testing.T) {
		e, retain, lookup := open(t)
		r1, r2 := retained(e, "rt/a", 1, "first"), retained(e, "rt/a", 2, "second")
		r2.From = "publisher-2"
		e.publish(retain, r1, r2)
		e.flush()
		checkMessageSet(t, "retained lookup of rt/a after retaining twice", lookup("rt/a"), r2)
	})
	t.Run("EmptyPayloadDeletes", func(t *testing.T) {
		s.require(t, hook.OnRetainDelete)
		e, retain, lookup := open(t)
		del := e.writer(hook.MessagePublish, hook.OnRetainDelete)
		both := func(ms ...*hook.Message) { // as a broker whose two rules match every topic
			t.Helper()
			for _, m := range ms {
				e.publish(retain, m)
				e.publish(del, m)
			}
		}
		ra, rb := retained(e, "rd/a", 1, "a"), retained(e, "rd/b", 1, "b")
		both(ra, rb)
		e.flush()
		checkMessageSet(t, "retained lookup of rd/#", lookup("rd/#"), ra, rb)

		both(retained(e, "rd/a", 1, ""))
		notRetained := e.msg("rd/b", 1, "")
		both(notRetained) // an empty payload without the retain flag deletes nothing
		e.flush()
		checkMessageSet(t, "retained lookup of rd/# after an empty retained message on rd/a", lookup("rd/#"), rb)

		e.publish(del, retained(e, "rd/b", 1, "not empty")) // on_retain_delete ignores it
		e.publish(retain, retained(e, "rd/c", 1, ""))       // on_message_retain does not store it
		e.flush()
		checkMessageSet(t, "retained lookup of rd/# at the end", lookup("rd/#"), rb)
	})
	t.Run("LookupByWildcard", func(t *testing.T) {
		filterCases(t, []string{"w", "w/a", "w/a/b", "w/b", "wx", "/w", "w//b"},
			map[string][]string{
				"w/+":    {"w/a", "w/b"},
				"w/#":    {"w", "w/a", "w/a/b", "w/b", "w//b"},
				"w/+/b":  {"w/a/b", "w//b"},
				"+/a/#":  {"w/a", "w/a/b"},
				"#":      {"w", "w/a", "w/a/b", "w/b", "wx", "/w", "w//b"},
				"+":      {"w", "wx"},
				"/+":     {"/w"},
				"w/a/b/": nil,
			})
	})
	t.Run("DollarTopicsOnlyByExplicitFilter", func(t *testing.T) {
		filterCases(t, []string{"$SYS/broker/uptime", "$other", "y", "y/broker/uptime"},
			map[string][]string{
				"#":                  {"y", "y/broker/uptime"},
				"+":                  {"y"},
				"+/broker/uptime":    {"y/broker/uptime"},
				"$SYS/#":             {"$SYS/broker/uptime"},
				"$SYS/broker/+":      {"$SYS/broker/uptime"},
				"$SYS/broker/uptime": {"$SYS/broker/uptime"},
				"$other":             {"$other"},
			})
	})
	t.Run("BinaryPayload", func(t *testing.T) {
		e, retain, lookup := open(t)
		e.allowFailed = !s.h.Features.BinaryPayload
		failedBefore := e.failedWrites()
		var all []*hook.Message
		for i, p := range append(binaryPayloads(), []byte("text")) {
			if len(p) == 0 {
				continue // an empty retained payload means "delete"
			}
			m := retained(e, fmt.Sprint("bin/", i), 1, "")
			m.Payload = p
			all = append(all, m)
		}
		refused := e.publishOrRefuse(retain, all...)
		e.flush()
		e.checkBinaryPayloads("retained lookup of bin/#", lookup("bin/#"), false, refused, failedBefore, all...)
	})
}

// openRetained opens a backend with on_message_retain and on_retain_lookup prepared, and
// returns it, the retain action, the lookup action, and a lookup of filter by client s1.
func (s *suite) openRetained(t *testing.T) (*env, hook.WriteAction, hook.LookupAction, func(filter string) []*hook.Message) {
	e := s.open(t)
	retain := e.writer(hook.MessagePublish, hook.OnMessageRetain)
	l := e.looker(hook.SessionSubscribed, hook.OnRetainLookup)
	return e, retain, l, func(filter string) []*hook.Message { t.Helper(); return e.retained(l, "s1", filter) }
}
