package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
)

// commandAction runs a rule's custom commands for each event: the commands are compiled when
// the rule is prepared (split into arguments, each placeholder one argument) and queued with
// the event, to be rendered into the write pipeline.
type commandAction struct {
	s    *Store
	cmds []command
}

// command is one compiled custom command.
type command struct {
	t *template.Command
	// keys gives the positions of the key arguments in an argument list of length n, to put
	// the store's Prefix before them; nil without a Prefix.
	keys func(n int) []int
}

// args renders the command for v, with prefix before its key arguments.
func (c *command) args(prefix string, v *template.Values) []any {
	args := c.t.Args(make([]any, 0, c.t.NumArgs()), v)
	if c.keys == nil {
		return args
	}
	for _, i := range c.keys(len(args)) {
		switch a := args[i].(type) {
		case string:
			args[i] = prefix + a
		case []byte:
			args[i] = prefix + string(a)
		case int64:
			args[i] = prefix + strconv.FormatInt(a, 10)
		}
	}
	return args
}

func (a *commandAction) Write(ctx context.Context, e hook.Event) error {
	key, ok := orderKey(e)
	if !ok {
		return fmt.Errorf("redisstore: custom commands: nil event or message (%T): %w", e, hook.ErrInvalidEvent)
	}
	return a.s.enqueue(ctx, op{kind: opCommands, key: key, cmds: a, ev: e})
}

// orderKey is the ordering key of a custom command's event: the topic of a published message
// (so that its commands stay in order with the built-in message writes), the client ID of
// every other event. It is false for a nil event and a publish event without its message.
func orderKey(e hook.Event) (string, bool) {
	if p, ok := e.(*hook.PublishEvent); ok {
		if p == nil || p.Message == nil {
			return "", false
		}
		return p.Message.Topic, true
	}
	return hook.TemplateValues(e).ClientID, e != nil
}

// refusedCommands cannot run in a write pipeline: they change the connection's state, block
// it, or take it over.
var refusedCommands = []string{
	"subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe", "monitor",
	"multi", "exec", "discard", "watch", "unwatch", "select", "quit", "reset", "hello", "auth", "client",
	"sync", "psync", "replconf", "shutdown", "failover", "replicaof", "slaveof",
	"blpop", "brpop", "brpoplpush", "blmove", "blmpop", "bzpopmin", "bzpopmax", "bzmpop", "wait", "waitaof",
}

// keysUnknown are commands whose key arguments the command table does not give (they depend
// on a subcommand or on other arguments), so they cannot run under a key prefix.
var keysUnknown = []string{"object", "xinfo", "xgroup", "memory"}

func (s *Store) prepareCommands(r *hook.Rule) (hook.Action, error) {
	a := &commandAction{s: s}
	for i, src := range r.Action.Commands {
		fail := func(err error) error {
			return &hook.RuleError{Rule: r.Name, Field: fmt.Sprintf("action.commands[%d]", i), Err: err}
		}
		t, err := template.CompileRedis(src)
		if err != nil {
			return nil, fail(err)
		}
		name := strings.ToLower(t.Name())
		if slices.Contains(refusedCommands, name) {
			return nil, fail(fmt.Errorf("%w: %s cannot run in a write pipeline (it blocks or changes the connection)", hook.ErrUnsupported, t.Name()))
		}
		c := command{t: t}
		if s.k.prefix != "" {
			if c.keys, err = s.keyPositions(name); err != nil {
				return nil, fail(err)
			}
		}
		a.cmds = append(a.cmds, c)
	}
	return a, nil
}

// keyPositions returns where the key arguments of the command are, from the server's
// command table (first key, last key, step), for the Prefix.
func (s *Store) keyPositions(name string) (func(n int) []int, error) {
	if slices.Contains(keysUnknown, name) {
		return nil, fmt.Errorf("%w: %s under a key prefix: which arguments are keys depends on its subcommand", hook.ErrUnsupported, name)
	}
	s.cmdMu.Lock()
	table := s.cmdTable
	s.cmdMu.Unlock()
	if table == nil {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.QueryTimeout)
		defer cancel()
		if err := s.loadCommandTable(ctx); err != nil {
			return nil, fmt.Errorf("reading the command table, to put the key prefix before the keys: %w", err)
		}
		s.cmdMu.Lock()
		table = s.cmdTable
		s.cmdMu.Unlock()
	}
	info, ok := table[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown command %q (not in the server's command table)", hook.ErrUnsupported, name)
	}
	if slices.Contains(info.Flags, "movablekeys") {
		return nil, fmt.Errorf("%w: %s under a key prefix: its keys are found from other arguments", hook.ErrUnsupported, name)
	}
	first, last, step := int(info.FirstKeyPos), int(info.LastKeyPos), int(info.StepCount)
	if first <= 0 {
		return func(int) []int { return nil }, nil
	}
	step = max(step, 1)
	return func(n int) []int {
		end := last
		if end < 0 {
			end += n
		}
		var pos []int
		for i := first; i <= end && i < n; i += step {
			pos = append(pos, i)
		}
		return pos
	}, nil
}

func (s *Store) loadCommandTable(ctx context.Context) error {
	table, err := s.client.Command(ctx).Result()
	if err != nil {
		return err
	}
	lower := make(map[string]*redis.CommandInfo, len(table))
	for name, info := range table {
		lower[strings.ToLower(name)] = info
	}
	s.cmdMu.Lock()
	s.cmdTable = lower
	s.cmdMu.Unlock()
	return nil
}
