package hook

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/topic"
)

// Rule says what a backend does at a hook point: for events at Point whose topic matches
// Topic, run Action on the backend's pool Pool. Rules are written in Go or parsed from EMQX
// 4.x configuration values (see ParseRule).
type Rule struct {
	// Name identifies the rule in errors and logs, e.g. "backend.pgsql.hook.message.publish.1".
	Name  string
	Point Point
	// Topic is an MQTT topic filter matched against the event's message topic, or the
	// subscription's filter for session.(un)subscribed (see Dispatcher.Dispatch). "" matches
	// every event of the point; a filter never matches client.* and session.created events,
	// which have no topic.
	Topic  string
	Action RuleAction
	Pool   string
	// OfflineOpts bound the messages on_message_fetch returns.
	OfflineOpts OfflineOpts
	// ExpiredTime, when positive, is how long stored messages live (the spec's expired_time,
	// in seconds there).
	ExpiredTime time.Duration
	// Options holds the rule's other keys (store-specific, e.g. MongoDB's payload_format) raw.
	Options map[string]json.RawMessage
}

// RuleAction is a built-in function, or a list of statements with ${var} placeholders: Redis
// commands, SQL or CQL. Exactly one of the fields is set.
type RuleAction struct {
	Function string
	Commands []string // Redis
	SQL      []string
	CQL      []string
}

// OfflineOpts are the spec's offline_opts. Zero values mean no limit.
type OfflineOpts struct {
	MaxReturnedCount int
	TimeRange        time.Duration
}

// Reasons a rule is rejected. A *RuleError wraps one of them (or a *topic.Error for a bad
// topic filter); test with errors.Is.
var (
	ErrSyntax          = errors.New("invalid JSON")
	ErrUnknownFunction = errors.New("unknown function")
	ErrFunctionPoint   = errors.New("function not allowed at this hook point")
	ErrAction          = errors.New("invalid action")
	ErrDuration        = errors.New("invalid duration")
	ErrValue           = errors.New("invalid value")
	ErrRuleKey         = errors.New("invalid rule key")
	// ErrActionType: a backend's Prepare returned an action of the wrong kind for the rule
	// (a lookup function needs a LookupAction, everything else a WriteAction).
	ErrActionType = errors.New("wrong action type")
	// ErrUnknownOption: a rule carries a key that neither the rule format nor the store knows
	// (a typo such as "expire_time" must not silently mean "never expires").
	ErrUnknownOption = errors.New("unknown rule option")
)

// RuleError is why a rule was rejected, by ParseRule, ParseRuleKey, Rule.Validate or
// Dispatcher.Register.
type RuleError struct {
	Backend string // the name the backend was registered under; "" outside Dispatcher.Register
	Rule    string // the rule's Name (or the configuration key)
	Field   string // the field at fault as written in JSON, e.g. "offline_opts.time_range"; "" for the rule as a whole
	Err     error
}

func (e *RuleError) Error() string {
	var sb strings.Builder
	sb.WriteString("hook: ")
	if e.Backend != "" {
		fmt.Fprintf(&sb, "backend %q: ", e.Backend)
	}
	fmt.Fprintf(&sb, "rule %q: ", e.Rule)
	if e.Field != "" {
		sb.WriteString(e.Field + ": ")
	}
	fmt.Fprint(&sb, e.Err)
	return sb.String()
}

func (e *RuleError) Unwrap() error { return e.Err }

// CheckOptions returns an error wrapping ErrUnknownOption, naming the key, if r.Options holds
// a key that is not in known: what a store's Prepare calls with the store-specific keys it
// reads (none, for most stores), so that a misspelt option is an error at registration.
func (r *Rule) CheckOptions(known ...string) error {
	for _, k := range slices.Sorted(maps.Keys(r.Options)) {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return &RuleError{Rule: r.Name, Field: k, Err: fmt.Errorf("%w (this store takes no options besides topic, action, pool, offline_opts and expired_time)", ErrUnknownOption)}
			}
			return &RuleError{Rule: r.Name, Field: k, Err: fmt.Errorf("%w (this store also takes %s)", ErrUnknownOption, strings.Join(known, ", "))}
		}
	}
	return nil
}

// IsLookup reports whether the rule answers a lookup (its function is a lookup function, see
// LookupFunction), so that a backend's Prepare must return a LookupAction for it; rules with
// statements, and all other functions, write.
func (r *Rule) IsLookup() bool {
	info, ok := functions[r.Action.Function]
	return ok && info.Lookup
}

// Validate checks what can be checked without a store: the point, the topic filter, that the
// action is exactly one of a known function allowed at the point or a non-empty list of
// non-empty statements, and that counts and durations are not negative. Dispatcher.Register
// validates every rule; ParseRule returns validated rules.
func (r *Rule) Validate() error {
	fail := func(field string, err error) error { return &RuleError{Rule: r.Name, Field: field, Err: err} }
	if !r.Point.valid() {
		return fail("", fmt.Errorf("%w %v", ErrUnknownPoint, r.Point))
	}
	if r.Topic != "" {
		if err := topic.ValidateFilter(r.Topic); err != nil {
			return fail("topic", err)
		}
	}
	a := &r.Action
	kinds := 0
	for _, set := range []bool{a.Function != "", a.Commands != nil, a.SQL != nil, a.CQL != nil} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		return fail("action", fmt.Errorf(`%w: want exactly one of "function", "commands", "sql", "cql", got %d`, ErrAction, kinds))
	}
	if a.Function != "" {
		info, ok := functions[a.Function]
		if !ok {
			return fail("action.function", fmt.Errorf("%w %q", ErrUnknownFunction, a.Function))
		}
		if !info.AllowedAt(r.Point) {
			return fail("action.function", fmt.Errorf("%w: %s at %v (allowed at %v)", ErrFunctionPoint, a.Function, r.Point, info.Points))
		}
	}
	for _, l := range []struct {
		field string
		stmts []string
	}{{"action.commands", a.Commands}, {"action.sql", a.SQL}, {"action.cql", a.CQL}} {
		if l.stmts == nil {
			continue
		}
		if len(l.stmts) == 0 {
			return fail(l.field, fmt.Errorf("%w: empty list", ErrAction))
		}
		for i, s := range l.stmts {
			if strings.TrimSpace(s) == "" {
				return fail(fmt.Sprintf("%s[%d]", l.field, i), fmt.Errorf("%w: empty statement", ErrAction))
			}
		}
	}
	if r.OfflineOpts.MaxReturnedCount < 0 {
		return fail("offline_opts.max_returned_count", fmt.Errorf("%w: negative: %d", ErrValue, r.OfflineOpts.MaxReturnedCount))
	}
	if r.OfflineOpts.TimeRange < 0 {
		return fail("offline_opts.time_range", fmt.Errorf("%w: negative: %v", ErrDuration, r.OfflineOpts.TimeRange))
	}
	if r.ExpiredTime < 0 {
		return fail("expired_time", fmt.Errorf("%w: negative: %v", ErrValue, r.ExpiredTime))
	}
	return nil
}
