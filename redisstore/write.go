package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// opKind is what a queued write does.
type opKind uint8

const (
	opConnected    opKind = iota + 1 // on_client_connected
	opDisconnected                   // on_client_disconnected
	opStore                          // on_message_publish, on_message_store
	opRetain                         // on_message_retain
	opRetainDelete                   // on_retain_delete
	opQueueAck                       // on_message_acked_for_queue
	opPosition                       // on_message_acked_for_pubsub, _for_keep_latest
	opLatest                         // on_message_store_keep_latest
	opCommands                       // custom commands
)

// op is one queued write.
type op struct {
	kind opKind
	key  string // the writer's ordering key: the topic of message writes, else the client ID (client writes take their client from it)
	node string
	at   time.Time
	msg  *hook.Message
	ttl  time.Duration
	cmds *commandAction // opCommands
	ev   hook.Event     // opCommands
}

// Write stages. A batch is written as three stages, each complete before the next starts, so
// that whatever points at a key is written after the key, and removed before it:
//
//	stage 0: message, retained and latest hashes; client state; acked positions; custom
//	         commands; removals from the retained index and from a topic's sorted set
//	stage 1: additions to a topic's sorted set; the retained and latest indexes; deletions
//	         of retained and message hashes
//	stage 2: additions to the message topic index (after the sorted set it points at)
//
// On one server (Single, Sentinel) the stages go in one pipeline, which Redis runs in order.
// In Cluster mode the keys of one stage live on several nodes, which run their parts of a
// pipeline independently, so each stage is its own pipeline. The order is what lets a lookup
// drop index entries and set members whose key is gone without losing a concurrent write
// (see unindexStale).
const numStages = 3

// stages collects a batch's commands by stage.
type stages [numStages][]redis.Cmder

func (st *stages) int(ctx context.Context, stage int, args ...any) {
	st[stage] = append(st[stage], redis.NewIntCmd(ctx, args...))
}

func (st *stages) add(stage int, c redis.Cmder) { st[stage] = append(st[stage], c) }

// flush writes a batch. Its built-in writes are idempotent: each command sets a value, adds a
// member or removes one, so a batch written twice leaves what it left once.
func (s *Store) flush(ctx context.Context, batch []op, _ *backend.BatchResult) error {
	var st stages
	// Of several retained writes to one topic in a batch, only the last matters; keeping it
	// alone keeps the stages from reordering an upsert and a delete of the same key.
	// Likewise a message stored and acked from its queue in the same batch (a subscriber that
	// was online acked it at once) is not stored: the stages would add its ID after removing it.
	var lastRetained, queueAcked map[string]int
	for i := range batch {
		switch batch[i].kind {
		case opRetain, opRetainDelete:
			if lastRetained == nil {
				lastRetained = make(map[string]int)
			}
			lastRetained[batch[i].msg.Topic] = i
		case opQueueAck:
			if queueAcked == nil {
				queueAcked = make(map[string]int)
			}
			queueAcked[batch[i].msg.ID] = i
		}
	}
	for i := range batch {
		o := &batch[i]
		switch o.kind {
		case opConnected:
			sec := unixSeconds(o.at)
			st.int(ctx, 0, "hset", s.k.client(o.key), "state", "1", "online_at", sec, "offline_at", "undefined", "node", o.node)
			if o.node != "" {
				st.int(ctx, 0, "hset", s.k.node(o.node), o.key, sec)
			}
		case opDisconnected:
			st.int(ctx, 0, "hset", s.k.client(o.key), "state", "0", "offline_at", unixSeconds(o.at))
			if o.node != "" {
				st.int(ctx, 0, "hdel", s.k.node(o.node), o.key)
			}
		case opStore:
			m := o.msg
			if j, ok := queueAcked[m.ID]; ok && j > i {
				continue
			}
			key := s.k.msg(m.ID)
			st.int(ctx, 0, messageFields("hset", key, m)...)
			set := s.k.topic(m.Topic)
			switch {
			case o.ttl > 0:
				ms := ttlMillis(o.ttl)
				st.int(ctx, 0, "pexpire", key, ms)
				st.add(1, redis.NewIntCmd(ctx, "evalsha", scriptZAddTTL.Hash(), 1, set, m.ID, ms, s.pruneCutoff(m.ID)))
			case s.ttlRules.Load():
				st.int(ctx, 0, "persist", key)
				st.int(ctx, 1, "zadd", set, 1, m.ID)
				st.int(ctx, 1, "persist", set)
			default:
				st.int(ctx, 1, "zadd", set, 1, m.ID)
			}
			st.int(ctx, 2, "zadd", s.k.msgIndex(), 0, m.Topic)
		case opRetain, opRetainDelete:
			m := o.msg
			if lastRetained[m.Topic] != i {
				continue
			}
			key := s.k.retain(m.Topic)
			if o.kind == opRetainDelete {
				st.int(ctx, 0, "zrem", s.k.retainIndex(), m.Topic)
				st.int(ctx, 1, "del", key)
				continue
			}
			st.int(ctx, 0, messageFields("hset", key, m)...)
			if o.ttl > 0 {
				st.int(ctx, 0, "pexpire", key, ttlMillis(o.ttl))
			} else {
				st.int(ctx, 0, "persist", key)
			}
			st.int(ctx, 1, "zadd", s.k.retainIndex(), 0, m.Topic)
		case opQueueAck:
			st.int(ctx, 0, "zrem", s.k.topic(o.msg.Topic), o.msg.ID)
			st.int(ctx, 1, "del", s.k.msg(o.msg.ID))
		case opPosition:
			st.add(0, redis.NewStatusCmd(ctx, "set", s.k.acked(o.key, o.msg.Topic), o.msg.ID))
		case opLatest:
			m := o.msg
			args := []any{"evalsha", scriptLatest.Hash(), 1, s.k.latest(m.Topic), ttlMillis(o.ttl)}
			st.add(0, redis.NewIntCmd(ctx, messageFieldsTo(args, m)...))
			st.int(ctx, 1, "zadd", s.k.latestIndex(), 0, m.Topic)
		case opCommands:
			vals := hook.TemplateValues(o.ev)
			for _, c := range o.cmds.cmds {
				st.add(0, redis.NewCmd(ctx, c.args(s.k.prefix, &vals)...))
			}
		}
	}
	return s.exec(ctx, &st)
}

// exec runs the stages: in one pipeline, or one pipeline per stage when staged.
func (s *Store) exec(ctx context.Context, st *stages) error {
	if !s.staged {
		pipe := s.client.Pipeline()
		n := 0
		for _, cmds := range st {
			for _, c := range cmds {
				_ = pipe.Process(ctx, c) // a Pipeline's Process only queues
				n++
			}
		}
		if n == 0 {
			return nil
		}
		_, _ = pipe.Exec(ctx) // the commands carry their errors
		for _, cmds := range st {
			if err := s.firstError(ctx, cmds); err != nil {
				return err
			}
		}
		return nil
	}
	for _, cmds := range st {
		if len(cmds) == 0 {
			continue
		}
		pipe := s.client.Pipeline()
		for _, c := range cmds {
			_ = pipe.Process(ctx, c)
		}
		_, _ = pipe.Exec(ctx)
		if err := s.firstError(ctx, cmds); err != nil {
			return err // the later stages point at what this one did not write
		}
	}
	return nil
}

// errScriptsReloaded marks a batch that failed because the server had lost the store's
// scripts (a restart, a failover, SCRIPT FLUSH); they are loaded again and the batch retried.
var errScriptsReloaded = errors.New("scripts reloaded")

// firstError returns the first error of cmds, ignoring nil replies (a custom GET of a missing
// key is not a failure), with the command named.
func (s *Store) firstError(ctx context.Context, cmds []redis.Cmder) error {
	for _, c := range cmds {
		err := c.Err()
		if err == nil || errors.Is(err, redis.Nil) {
			continue
		}
		if redis.HasErrorPrefix(err, "NOSCRIPT") {
			if lerr := s.loadScripts(ctx); lerr != nil {
				return fmt.Errorf("redisstore: %s: %w (and loading the scripts: %w)", c.Name(), err, lerr)
			}
			return fmt.Errorf("redisstore: %s: %w: %w", c.Name(), errScriptsReloaded, err)
		}
		return fmt.Errorf("redisstore: %s: %w", c.Name(), err)
	}
	return nil
}

// Message hashes (mqtt:msg:${msgid}, mqtt:retain:${topic}, mqtt:latest:${topic}) hold the
// spec's fields: id, from, qos, topic, retain, payload, ts (milliseconds since the Unix epoch).
func messageFields(cmd, key string, m *hook.Message) []any {
	return messageFieldsTo(make([]any, 0, 16), m, cmd, key)
}

// messageFieldsTo appends pre, then the fields of m, to dst.
func messageFieldsTo(dst []any, m *hook.Message, pre ...any) []any {
	dst = append(dst, pre...)
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	return append(dst, "id", m.ID, "from", m.From, "qos", qosText[min(m.QoS, 3)], "topic", m.Topic,
		"retain", boolText(m.Retain), "payload", payload, "ts", millis(m.Timestamp))
}

var qosText = [...]string{"0", "1", "2", "3"}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		t = time.Now()
	}
	return t.Unix()
}

// ttlMillis is a positive expiry in milliseconds (at least 1), or 0 for none.
func ttlMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return max(d.Milliseconds(), 1)
}

// The store's scripts. Each touches one key, so they run in Cluster mode too.
var (
	// scriptZAddTTL adds a message ID to a topic's sorted set and makes the set live at least
	// ARGV[2] ms more: the set then disappears once its last expiring message has. A set that
	// exists without expiry holds messages without one, and keeps none. A set that expires
	// holds expiring messages only; its IDs below ARGV[3] (when not empty) are removed: they
	// are those of messages surely expired (see pruneCutoff), so that the set of a topic
	// written often and never fetched does not grow without bound.
	scriptZAddTTL = redis.NewScript(`
local added = redis.call('ZADD', KEYS[1], 1, ARGV[1])
local ttl = tonumber(ARGV[2])
local cur = redis.call('PTTL', KEYS[1])
if cur == -1 then
  if added == 1 and redis.call('ZCARD', KEYS[1]) == 1 then
    redis.call('PEXPIRE', KEYS[1], ttl)
    cur = ttl
  end
elseif cur < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if cur > 0 and ARGV[3] ~= '' then
  redis.call('ZREMRANGEBYLEX', KEYS[1], '-', '(' .. ARGV[3])
end
return added`)

	// scriptLatest writes a message into a topic's latest-message hash unless the hash holds a
	// newer one (a greater ID, compared byte by byte); ARGV[1] is the expiry in ms (0: none),
	// ARGV[2..] the field/value pairs, id first.
	scriptLatest = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], 'id')
if cur then
  local new = ARGV[3]
  local n = math.min(#cur, #new)
  local newer = #cur > #new
  for i = 1, n do
    local a, b = string.byte(cur, i), string.byte(new, i)
    if a ~= b then newer = a > b; break end
  end
  if newer then return 0 end
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`)
)

// loadScripts loads the store's scripts (on every master, in Cluster mode).
func (s *Store) loadScripts(ctx context.Context) error {
	for _, sc := range []*redis.Script{scriptZAddTTL, scriptLatest} {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return err
		}
	}
	return nil
}

// pruneCutoff returns the ID below which the IDs of a topic's expiring set may be removed:
// the time part of an hook.IDGenerator ID for longer ago than the longest expired_time and
// pruneSlack (for clock differences between nodes). It returns "" unless id is such an ID:
// IDs of another form say nothing about their age.
func (s *Store) pruneCutoff(id string) string {
	if !hook.IsGeneratedID(id) {
		return ""
	}
	t := time.Now().Add(-time.Duration(s.maxTTL.Load()) - s.pruneSlack)
	if t.UnixNano() <= 0 {
		return ""
	}
	return hook.IDTimePrefix(t)
}
