package memstore

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mqttstore/mqttstore/hook"
)

// placeholders are the ${var} names of custom actions (ARCHITECTURE.md, "Custom actions").
var placeholders = []string{"clientid", "username", "peerhost", "node", "topic", "qos", "msgid", "payload", "ts"}

// recordArg is one name=${var} argument of a RECORD command.
type recordArg struct{ name, v string }

// prepareCommands prepares a rule whose action is a list of commands, each
// "RECORD name=${var} ...": for every event, each command appends a Record holding the
// value of each placeholder under its name. Values are bound, never spliced into the command:
// a payload with spaces or "=" stays one value.
func (s *Store) prepareCommands(r *hook.Rule) (hook.Action, error) {
	fail := func(i int, format string, args ...any) error {
		return &hook.RuleError{Rule: r.Name, Field: fmt.Sprintf("action.commands[%d]", i), Err: fmt.Errorf("%w: "+format, append([]any{hook.ErrAction}, args...)...)}
	}
	if len(r.Action.Commands) == 0 {
		return nil, &hook.RuleError{Rule: r.Name, Field: "action.commands", Err: fmt.Errorf("%w: empty list", hook.ErrAction)}
	}
	var cmds [][]recordArg
	for i, c := range r.Action.Commands {
		f := strings.Fields(c)
		if len(f) == 0 || f[0] != "RECORD" {
			return nil, fail(i, "want RECORD name=${var} ..., got %q", c)
		}
		var args []recordArg
		for j, a := range f[1:] {
			name, v, ok := strings.Cut(a, "=${")
			v, closed := strings.CutSuffix(v, "}")
			if !ok || !closed || name == "" {
				return nil, fail(i, "argument %d: want name=${var}, got %q", j+1, a)
			}
			if !slices.Contains(placeholders, v) && s.v.bug != bugUnknownPlaceholderAccepted {
				return nil, fail(i, "argument %d: unknown placeholder ${%s} (known: %s)", j+1, v, strings.Join(placeholders, ", "))
			}
			args = append(args, recordArg{name, v})
		}
		cmds = append(cmds, args)
	}
	return &writeAction{s: s, op: func(e hook.Event) (op, error) {
		if e == nil {
			return nil, invalidEvent(e, "event")
		}
		vals := recordValues(e)
		return func(t *tx) error { return t.record(cmds, vals) }, nil
	}}, nil
}

func (t *tx) record(cmds [][]recordArg, vals map[string]string) error {
	if t.s.v.textPayloads {
		for _, name := range placeholders {
			if !isText([]byte(vals[name])) {
				return fmt.Errorf("memstore: record: ${%s} holds NUL or invalid UTF-8, and this store keeps text only", name)
			}
		}
	}
	for _, args := range cmds {
		rec := make(Record, len(args))
		if t.s.v.bug == bugSplicesCustom {
			line := ""
			for _, a := range args {
				line += " " + a.name + "=" + vals[a.v]
			}
			for _, f := range strings.Fields(line) {
				name, v, _ := strings.Cut(f, "=")
				rec[name] = v
			}
		} else {
			for _, a := range args {
				rec[a.name] = vals[a.v]
			}
		}
		t.ns.records = append(t.ns.records, rec)
	}
	return nil
}

// recordValues renders the placeholders of e as package template does: qos in decimal, ts in
// integer milliseconds since the Unix epoch (0 for none), the payload's bytes as they are.
func recordValues(e hook.Event) map[string]string {
	v := hook.TemplateValues(e)
	ts := "0"
	if !v.TS.IsZero() {
		ts = strconv.FormatInt(v.TS.UnixMilli(), 10)
	}
	return map[string]string{
		"clientid": v.ClientID, "username": v.Username, "peerhost": v.Peerhost, "node": v.Node,
		"topic": v.Topic, "qos": strconv.Itoa(int(v.QoS)), "msgid": v.MsgID, "payload": string(v.Payload), "ts": ts,
	}
}
