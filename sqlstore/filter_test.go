package sqlstore

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

var (
	planFilters = []string{"#", "+", "a", "a/#", "a/+", "+/b", "+/#", "a/+/c", "a/b/#", "/#", "+/+", "$SYS/#", "$SYS/+",
		"a.b/+", `a\b/#`, "a%_/+", "(a)/+/[x]", "a b/+", "é/+", "/", "//+", "a//#", "+/+/+/", "a/b"}
	planTopics = []string{"a", "a/", "a/b", "a/b/c", "a/c", "b", "/", "//", "/a", "$SYS/x", "$SYS", "$SYS/x/y", "A/b",
		"a.b/x", "axb/x", `a\b/x`, `a\b`, "a%_/x", "a%x/x", "(a)/q/[x]", "a b/x", "é/x", "e/x", "a//x", "a/b\nc", "a\n/x", "x/y/z/"}
)

// checkPlan checks the SQL side of the filter plan against topic.Match: the range (or
// equality) must hold every matching topic, exactly so when prefixOnly, and the patterns of
// both regexp dialects must agree with Match (Go's RE2 reads this subset as PostgreSQL, PCRE
// and ICU do; "(?s)" gives it PostgreSQL's default of '.' matching a newline, which the MySQL
// pattern asks for itself).
func checkPlan(t *testing.T, filter, tp string) {
	p := planFilter(filter)
	want := topic.Match(filter, tp)
	inRange := false
	switch {
	case p.exact:
		inRange = tp == filter
	case p.prefix == "":
		inRange = true
	default:
		inRange = tp >= p.prefix && tp < rangeEnd(p.prefix) || p.hasParent && tp == p.parent
	}
	if want && !inRange {
		t.Errorf("filter %q matches %q, which is outside its SQL range %+v", filter, tp, p)
	}
	if p.prefixOnly && inRange != want {
		t.Errorf("filter %q: prefixOnly plan %+v has %q in range = %v, Match = %v", filter, p, tp, inRange, want)
	}
	if p.exact {
		return
	}
	for _, mysql := range []bool{false, true} {
		src := p.regexp(mysql)
		if !mysql {
			src = "(?s)" + src
		}
		re, err := regexp.Compile(src)
		if err != nil {
			t.Fatalf("filter %q: pattern %q: %v", filter, p.regexp(mysql), err)
		}
		if got := re.MatchString(tp); got != want {
			t.Errorf("filter %q, topic %q: pattern %q matches = %v, topic.Match = %v", filter, tp, re, got, want)
		}
	}
}

func TestFilterPlanAgreesWithMatch(t *testing.T) {
	for _, f := range planFilters {
		if err := topic.ValidateFilter(f); err != nil {
			t.Fatalf("test filter %q: %v", f, err)
		}
		for _, tp := range planTopics {
			checkPlan(t, f, tp)
		}
	}
}

func FuzzFilterPlan(f *testing.F) {
	for _, fl := range planFilters {
		for _, tp := range planTopics {
			f.Add(fl, tp)
		}
	}
	f.Fuzz(func(t *testing.T, filter, tp string) {
		if topic.ValidateFilter(filter) != nil || topic.ValidateName(tp) != nil {
			return
		}
		checkPlan(t, filter, tp)
	})
}

// TestFilterSQLOnServer runs the fetch and retained queries of every test filter on the real
// databases, without the Go-side check, and compares the topics they return with
// topic.Match: the ranges and patterns (PostgreSQL AREs, MariaDB's PCRE, SQLite's registered
// function) must be exact, or a LIMIT would count rows that are then dropped.
func TestFilterSQLOnServer(t *testing.T) {
	for _, d := range dialectsUnderTest {
		t.Run(d.String(), func(t *testing.T) {
			t.Parallel()
			s := newStore(t, d)
			ctx := t.Context()
			pub, _ := s.Prepare(&hook.Rule{Name: "pub", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageStore}})
			ret, _ := s.Prepare(&hook.Rule{Name: "ret", Point: hook.MessagePublish, Action: hook.RuleAction{Function: hook.OnMessageRetain}})
			ids := hook.NewIDGenerator("")
			for _, tp := range planTopics {
				m := &hook.Message{ID: ids.Next(), Topic: tp, QoS: 1, Retain: true, Payload: []byte(tp)}
				for _, a := range []hook.Action{pub, ret} {
					if err := a.(hook.WriteAction).Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			for _, f := range planFilters {
				var want []string
				for _, tp := range planTopics {
					if topic.Match(f, tp) {
						want = append(want, tp)
					}
				}
				fq, fargs := s.fetchQuery("c", f, hook.OfflineOpts{}, nil, time.Now())
				rq, rargs := s.retainedQuery(f)
				for _, q := range []struct {
					name string
					sql  string
					args []any
					col  int
				}{{"fetch", fq, fargs, 3}, {"retained", rq, rargs, 0}} {
					var got []string
					err := s.query(ctx, q.sql, q.args, func(scan func(...any) error) error {
						dest := make([]any, 9)
						for i := range dest {
							dest[i] = new(any)
						}
						if err := scan(dest[:strings.Count(strings.SplitN(q.sql, " FROM ", 2)[0], ",")+1]...); err != nil {
							return err
						}
						got = append(got, fmt.Sprint(normalize(*dest[q.col].(*any))))
						return nil
					})
					if err != nil {
						t.Fatalf("%s %q: %v", q.name, f, err)
					}
					slices.Sort(got)
					w := slices.Sorted(slices.Values(want))
					if !slices.Equal(got, w) {
						t.Errorf("%s %q in SQL: %q, want %q", q.name, f, got, w)
					}
				}
			}
		})
	}
}
