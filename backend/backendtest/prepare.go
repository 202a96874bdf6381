package backendtest

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/hook"
)

func (s *suite) testPrepare(t *testing.T) {
	t.Run("ListedFunctionsGiveTheirActionKind", func(t *testing.T) {
		e := s.open(t)
		for _, fn := range allFunctions {
			if !s.fns[fn] {
				continue
			}
			info, _ := hook.LookupFunction(fn)
			for _, p := range info.Points {
				r := e.rule(p, hook.RuleAction{Function: fn})
				a, err := e.b.Prepare(r)
				if err != nil {
					t.Errorf("Prepare(%s): %v; Features.Functions lists %s", r.Name, err, fn)
					continue
				}
				_, isLookup := a.(hook.LookupAction)
				_, isWrite := a.(hook.WriteAction)
				switch {
				case info.Lookup && !isLookup:
					t.Errorf("Prepare(%s) returned %T, want a hook.LookupAction", r.Name, a)
				case !info.Lookup && !isWrite:
					t.Errorf("Prepare(%s) returned %T, want a hook.WriteAction", r.Name, a)
				}
			}
		}
	})
	t.Run("UnlistedFunctionsRefused", func(t *testing.T) {
		e := s.open(t)
		for _, fn := range append(slicesWithout(allFunctions, s.fns), "on_no_such_function") {
			p := hook.MessagePublish
			if info, ok := hook.LookupFunction(fn); ok {
				p = info.Points[0]
			}
			r := e.rule(p, hook.RuleAction{Function: fn})
			_, err := e.b.Prepare(r)
			switch {
			case err == nil:
				t.Errorf("Prepare(%s) accepted %s, which Features.Functions does not list", r.Name, fn)
			case !isUnsupported(err) && !errors.Is(err, hook.ErrUnknownFunction):
				t.Errorf("Prepare(%s) error %q wraps neither hook.ErrUnsupported nor hook.ErrUnknownFunction", r.Name, err)
			case ruleErrorProblem(r, err) != "":
				t.Errorf("Prepare(%s) error %q %s", r.Name, err, ruleErrorProblem(r, err))
			}
		}
	})
	t.Run("FunctionAtWrongPointRefused", func(t *testing.T) {
		e := s.open(t)
		for _, fn := range allFunctions {
			if !s.fns[fn] {
				continue
			}
			info, _ := hook.LookupFunction(fn)
			for p := hook.ClientConnected; p <= hook.MessageAcked; p++ {
				if info.AllowedAt(p) {
					continue
				}
				r := e.rule(p, hook.RuleAction{Function: fn})
				if _, err := e.b.Prepare(r); err == nil {
					t.Errorf("Prepare(%s) accepted %s at %s, where it does not apply", r.Name, fn, p)
				} else if p := ruleErrorProblem(r, err); p != "" {
					t.Errorf("Prepare(%s) error %q %s", r.Name, err, p)
				}
			}
		}
	})
	t.Run("ForeignActionKindsRefused", func(t *testing.T) {
		e := s.open(t)
		own := "" // the kind of statements Harness.Custom builds
		if s.h.Custom != nil {
			own = actionKind(s.h.Custom.Record([]string{"clientid"}))
		}
		kinds := map[string]hook.RuleAction{
			"commands": {Commands: []string{"SET backendtest:${clientid} 1"}},
			"sql":      {SQL: []string{"INSERT INTO backendtest(clientid) VALUES (${clientid})"}},
			"cql":      {CQL: []string{"INSERT INTO backendtest(clientid) VALUES (${clientid})"}},
			"empty":    {},
		}
		for kind, a := range kinds {
			if kind == own {
				continue
			}
			r := e.rule(hook.ClientConnected, a)
			_, err := e.b.Prepare(r)
			switch {
			case err == nil:
				t.Errorf("Prepare(%s) accepted an action of kind %s; Harness.Custom says the store runs %q", r.Name, kind, own)
			case kind != "empty" && !isUnsupported(err):
				t.Errorf("Prepare(%s) error %q (action kind %s) does not wrap hook.ErrUnsupported", r.Name, err, kind)
			case ruleErrorProblem(r, err) != "":
				t.Errorf("Prepare(%s) error %q %s", r.Name, err, ruleErrorProblem(r, err))
			}
		}
	})
	t.Run("UnknownOptionRefused", func(t *testing.T) {
		// A typo of expired_time must not silently mean "never expires".
		e := s.open(t)
		typo := func(r *hook.Rule) { r.Options = map[string]json.RawMessage{"expire_time": json.RawMessage("3600")} }
		var rules []*hook.Rule
		for _, fn := range allFunctions {
			if s.fns[fn] {
				info, _ := hook.LookupFunction(fn)
				rules = append(rules, e.rule(info.Points[0], hook.RuleAction{Function: fn}, typo))
			}
		}
		if s.h.Custom != nil {
			rules = append(rules, e.rule(hook.MessagePublish, s.h.Custom.Record([]string{"clientid"}), typo))
		}
		for _, r := range rules {
			_, err := e.b.Prepare(r)
			switch {
			case err == nil:
				t.Errorf("Prepare(%s) accepted the unknown option \"expire_time\" (a typo of expired_time)", r.Name)
			case !errors.Is(err, hook.ErrUnknownOption):
				t.Errorf("Prepare(%s) error %q does not wrap hook.ErrUnknownOption (Prepare calls Rule.CheckOptions with the keys the store reads)", r.Name, err)
			case !strings.Contains(err.Error(), "expire_time"):
				t.Errorf("Prepare(%s) error %q does not name the unknown key expire_time", r.Name, err)
			case ruleErrorProblem(r, err) != "":
				t.Errorf("Prepare(%s) error %q %s", r.Name, err, ruleErrorProblem(r, err))
			}
		}
	})
}

// actionKind names the statement kind of a (one of "commands", "sql", "cql"), or "".
func actionKind(a hook.RuleAction) string {
	switch {
	case len(a.Commands) > 0:
		return "commands"
	case len(a.SQL) > 0:
		return "sql"
	case len(a.CQL) > 0:
		return "cql"
	}
	return ""
}

func slicesWithout(all []string, listed map[string]bool) []string {
	var out []string
	for _, f := range all {
		if !listed[f] {
			out = append(out, f)
		}
	}
	return out
}
