package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	opPubsubAck                      // on_message_acked_for_pubsub
	opLatestAck                      // on_message_acked_for_keep_latest
	opLatest                         // on_message_store_keep_latest
	opCommands                       // custom commands
)

// op is one queued write.
type op struct {
	kind   opKind
	key    string // the writer's ordering key: the topic of message writes and acks, else the client ID
	client string // the client of client writes and acks
	node   string
	at     time.Time
	msg    *hook.Message
	ttl    time.Duration
	cmds   *commandAction // opCommands
	ev     hook.Event     // opCommands
}

// size is about how many bytes o holds, for the writer's byte budgets.
func (o op) size() int {
	n := 64 + len(o.key) + len(o.client) + len(o.node)
	if o.msg != nil {
		n += o.msg.Size()
	}
	return n
}

// Write stages. A batch is written as three stages, each complete before the next starts, so
// that whatever points at a key is written after the key, and removed before it:
//
//	stage 0: message, retained and latest hashes; client state; keep_latest positions;
//	         custom commands; removals from the retained index and from a topic's sorted set
//	stage 1: additions to a topic's sorted set; the retained and latest indexes; deletions
//	         of retained and message hashes
//	stage 2: additions to the message topic index (after the sorted set it points at)
//
// On one server (Single, Sentinel) the stages go in one pipeline, which Redis runs in order.
// In Cluster mode the keys of one stage live on several nodes, which run their parts of a
// pipeline independently, so each stage is its own pipeline. The order is what lets a lookup
// drop index entries and set members whose key is gone without losing a concurrent write
// (see unindexStale). The pubsub positions are moved last, once the stages are written (see
// movePositions): they name messages of the sorted sets.
const numStages = 3

// stages collects a batch's commands by stage.
type stages [numStages][]redis.Cmder

func (st *stages) int(ctx context.Context, stage int, args ...any) {
	st[stage] = append(st[stage], redis.NewIntCmd(ctx, args...))
}

func (st *stages) add(stage int, c redis.Cmder) { st[stage] = append(st[stage], c) }

// flush writes a batch. Its built-in writes are idempotent: each command sets a value, adds a
// member (keeping the order it was first given) or removes one, and positions only move
// forward, so a batch written twice leaves what it left once.
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
	var (
		adds      map[string]int // topic → its scriptAdd call in addArgs
		addArgs   [][]any        // evalsha, sha, 1, key, horizon, then (id, ttl) pairs
		positions []*posUpdate
		byKey     map[string]*posUpdate
	)
	for i := range batch {
		o := &batch[i]
		switch o.kind {
		case opConnected:
			sec := unixSeconds(o.at)
			st.int(ctx, 0, "hset", s.k.client(o.client), "state", "1", "online_at", sec, "offline_at", "undefined", "node", o.node)
			if o.node != "" {
				st.int(ctx, 0, "hset", s.k.node(o.node), o.client, sec)
			}
		case opDisconnected:
			st.int(ctx, 0, "hset", s.k.client(o.client), "state", "0", "offline_at", unixSeconds(o.at))
			if o.node != "" {
				st.int(ctx, 0, "hdel", s.k.node(o.node), o.client)
			}
		case opStore:
			m := o.msg
			if j, ok := queueAcked[m.ID]; ok && j > i {
				continue
			}
			key := s.k.msg(m.ID)
			st.int(ctx, 0, messageFields("hset", key, m)...)
			switch {
			case o.ttl > 0:
				st.int(ctx, 0, "pexpire", key, ttlMillis(o.ttl))
			case s.ttlRules.Load():
				st.int(ctx, 0, "persist", key)
			}
			// The messages of a topic join its sorted set in one call of scriptAdd, which
			// gives them their order (see there); its command is made once the batch is read.
			j, ok := adds[m.Topic]
			if !ok {
				if adds == nil {
					adds = make(map[string]int)
				}
				j = len(addArgs)
				adds[m.Topic] = j
				addArgs = append(addArgs, []any{"evalsha", scriptAdd.Hash(), 1, s.k.topic(m.Topic), ttlMillis(time.Duration(s.maxTTL.Load())), ttlMillis(s.pruneSlack)})
				st.int(ctx, 2, "zadd", s.k.msgIndex(), 0, m.Topic)
			}
			addArgs[j] = append(addArgs[j], m.ID, ttlMillis(o.ttl))
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
		case opPubsubAck:
			key := s.k.acked(o.client, o.msg.Topic)
			p := byKey[key]
			if p == nil {
				if byKey == nil {
					byKey = make(map[string]*posUpdate)
				}
				p = &posUpdate{key: key, set: s.k.topic(o.msg.Topic)}
				byKey[key] = p
				positions = append(positions, p)
			}
			p.ids = append(p.ids, o.msg.ID)
		case opLatestAck:
			st.add(0, redis.NewIntCmd(ctx, "evalsha", scriptForward.Hash(), 1, s.k.acked(o.client, o.msg.Topic), o.msg.ID))
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
	for _, args := range addArgs {
		st.int(ctx, 1, args...) // the commands of a stage commute: where they go in it does not matter
	}
	if err := s.exec(ctx, &st); err != nil {
		return err
	}
	return s.movePositions(ctx, positions)
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

// luaBefore is a Lua function, put at the head of the scripts that compare message IDs:
// before(a, b) is true when a sorts before b byte by byte (Lua's own < follows the server's
// locale).
const luaBefore = `
local function before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
`

// The store's scripts. Each touches one key, so they run in Cluster mode too.
var (
	// scriptAdd adds the IDs of messages to their topic's sorted set, in the order given,
	// each with a score of the server's own: its clock in microseconds, or one more than the
	// greatest score in the set if that is later. Scores are thus given in the order the
	// writes reach Redis, whichever broker sent them, and grow as long as the set exists;
	// an ID already in the set keeps its score (a batch written again changes nothing).
	// ARGV[1] is the longest expired_time of the store's rules in ms, ARGV[2] the slack after
	// it, then come (ID, expiry in ms or 0) pairs.
	//
	// Expiry: a message without one makes the set persist (it holds a message that must
	// stay). Otherwise the set lives at least as long as the longest expiry given: a new
	// set gets it, an expiring one is extended to it; a set that exists without expiry holds
	// messages without one, and keeps none. In an expiring set the members whose score is
	// older than the longest expiry and the slack are removed: their messages are surely
	// gone, and the set of a topic written often and never fetched must not grow without
	// bound. Score 1 (the spec's, given by other writers) is never removed that way.
	scriptAdd = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local nxt = now
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= nxt then nxt = tonumber(top[2]) + 1 end
local added, persist, ttl = 0, false, 0
for i = 3, #ARGV, 2 do
  local d = tonumber(ARGV[i+1])
  if d == 0 then persist = true elseif d > ttl then ttl = d end
  if redis.call('ZADD', KEYS[1], 'NX', string.format('%.0f', nxt), ARGV[i]) == 1 then
    nxt = nxt + 1
    added = added + 1
  end
end
local cur = redis.call('PTTL', KEYS[1])
if persist then
  if cur > 0 then redis.call('PERSIST', KEYS[1]) end
  return added
end
if cur == -1 then
  if added > 0 and redis.call('ZCARD', KEYS[1]) == added then
    redis.call('PEXPIRE', KEYS[1], ttl)
    cur = ttl
  end
elseif cur < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
if cur > 0 then
  local horizon = (math.max(tonumber(ARGV[1]), ttl) + tonumber(ARGV[2])) * 1000
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '(1', '(' .. string.format('%.0f', now - horizon))
end
return added`)

	// scriptPage returns, with their scores, up to ARGV[3] members of a topic's sorted set
	// that come after member ARGV[1] in the set's order (score, then ID), or from the first
	// when ARGV[1] is empty. If ARGV[1] is not in the set: after where it was, by its score
	// ARGV[2] (the previous page's last member, removed since), or from the first when
	// ARGV[2] is empty too (a position whose message is gone).
	scriptPage = redis.NewScript(luaBefore + `
local start = 0
if ARGV[1] ~= '' then
  local r = redis.call('ZRANK', KEYS[1], ARGV[1])
  if r then
    start = r + 1
  elseif ARGV[2] ~= '' then
    start = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[2])
    for _, m in ipairs(redis.call('ZRANGE', KEYS[1], ARGV[2], ARGV[2], 'BYSCORE')) do
      if not before(m, ARGV[1]) then break end
      start = start + 1
    end
  end
end
return redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1, 'WITHSCORES')`)

	// scriptSwap sets KEYS[1] to ARGV[2] if it holds ARGV[1] (a missing key holds ""), and
	// returns 1; else it changes nothing and returns 0.
	scriptSwap = redis.NewScript(`
local cur = redis.call('GET', KEYS[1]) or ''
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`)

	// scriptForward sets KEYS[1] to ARGV[1] unless it holds an ID that does not sort before
	// it (byte by byte): a keep_latest position only moves forward.
	scriptForward = redis.NewScript(luaBefore + `
local cur = redis.call('GET', KEYS[1])
if cur and not before(cur, ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
return 1`)

	// scriptLatest writes a message into a topic's latest-message hash unless the hash holds a
	// newer one (a greater ID, compared byte by byte); ARGV[1] is the expiry in ms (0: none),
	// ARGV[2..] the field/value pairs, id first.
	scriptLatest = redis.NewScript(luaBefore + `
local cur = redis.call('HGET', KEYS[1], 'id')
if cur and before(ARGV[3], cur) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return 1`)

	scripts = []*redis.Script{scriptAdd, scriptPage, scriptSwap, scriptForward, scriptLatest}
)

// loadScripts loads the store's scripts (on every master, in Cluster mode).
func (s *Store) loadScripts(ctx context.Context) error {
	for _, sc := range scripts {
		if err := sc.Load(ctx, s.client).Err(); err != nil {
			return err
		}
	}
	return nil
}

// posUpdate is the pubsub position of one client on one topic (key, in mqtt:acked), and the
// IDs of the messages of the topic's sorted set (set) the client acked in a batch.
type posUpdate struct {
	key, set string
	ids      []string
	// Read by movePositions:
	cur      string   // the position
	curScore *float64 // the score of its message; nil when not in the set
	best     string   // the acked ID furthest in the set's order; "" if none is in the set
	score    float64  // its score
}

// errContended marks a batch whose positions other writers kept moving; it is retried.
var errContended = errors.New("contended")

// maxSwaps bounds how many times movePositions reads a position again because another
// writer moved it between the read and the swap.
const maxSwaps = 10

// movePositions moves each pubsub position to the acked message furthest in its topic's
// order (score, then ID), unless the position is already at or after it: positions only move
// forward, whatever order acks arrive in and however many brokers write. Each swap is atomic
// on the position's key alone (scriptSwap: set if unchanged since read), so that it works in
// Cluster mode, where the position and the topic's set live on different nodes; the scores
// compared are read from the set before, and never change while a member stays. An acked
// message that is not in the set (never stored there, or expired) does not move the
// position; a position whose message is no longer in the set is moved by any ack of one
// that is.
func (s *Store) movePositions(ctx context.Context, ups []*posUpdate) error {
	for attempt := 1; len(ups) > 0; attempt++ {
		if attempt > maxSwaps {
			return fmt.Errorf("redisstore: %w: %d acked positions moved by other writers %d times in a row", errContended, len(ups), maxSwaps)
		}
		behind, err := s.readPositions(ctx, ups)
		if err != nil {
			return err
		}
		if ups, err = s.swapPositions(ctx, behind); err != nil {
			return err
		}
	}
	return nil
}

// readPositions reads each position and the scores of its acked messages and of its own, and
// returns those to move.
func (s *Store) readPositions(ctx context.Context, ups []*posUpdate) ([]*posUpdate, error) {
	pipe := s.client.Pipeline()
	gets := make([]*redis.StringCmd, len(ups))
	scores := make([]*redis.SliceCmd, len(ups))
	for i, u := range ups {
		gets[i] = pipe.Get(ctx, u.key)
		args := append(make([]any, 0, 2+len(u.ids)), "zmscore", u.set)
		for _, id := range u.ids {
			args = append(args, id)
		}
		scores[i] = redis.NewSliceCmd(ctx, args...)
		_ = pipe.Process(ctx, scores[i])
	}
	_, _ = pipe.Exec(ctx) // the commands carry their errors
	var move, unknown []*posUpdate
	for i, u := range ups {
		if err := gets[i].Err(); err != nil && !errors.Is(err, redis.Nil) {
			return nil, fmt.Errorf("redisstore: get %s: %w", u.key, err)
		}
		vals, err := scores[i].Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: zmscore %s: %w", u.set, err)
		}
		u.cur, u.curScore, u.best = gets[i].Val(), nil, ""
		for j, v := range vals {
			sc, ok := parseScore(v)
			if !ok {
				continue
			}
			if u.best == "" || after(sc, u.ids[j], u.score, u.best) {
				u.best, u.score = u.ids[j], sc
			}
			if u.ids[j] == u.cur {
				u.curScore = &sc
			}
		}
		switch {
		case u.best == "" || u.best == u.cur:
			// nothing to move to
		case u.cur != "" && !slices.Contains(u.ids, u.cur):
			unknown = append(unknown, u)
		default:
			move = append(move, u)
		}
	}
	if len(unknown) == 0 {
		return move, nil
	}
	// The score of each position that is not one of the acked messages.
	pipe = s.client.Pipeline()
	cmds := make([]*redis.SliceCmd, len(unknown))
	for i, u := range unknown {
		cmds[i] = redis.NewSliceCmd(ctx, "zmscore", u.set, u.cur)
		_ = pipe.Process(ctx, cmds[i])
	}
	_, _ = pipe.Exec(ctx)
	for i, u := range unknown {
		vals, err := cmds[i].Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: zmscore %s: %w", u.set, err)
		}
		if sc, ok := parseScore(vals[0]); ok {
			u.curScore = &sc
		}
		move = append(move, u)
	}
	return move, nil
}

// swapPositions moves the positions read behind their best acked message, and returns those
// another writer changed since they were read.
func (s *Store) swapPositions(ctx context.Context, ups []*posUpdate) ([]*posUpdate, error) {
	pipe := s.client.Pipeline()
	var swapped []*posUpdate
	var cmds []redis.Cmder
	for _, u := range ups {
		if u.curScore != nil && !after(u.score, u.best, *u.curScore, u.cur) {
			continue // already at or after every acked message
		}
		c := redis.NewIntCmd(ctx, "evalsha", scriptSwap.Hash(), 1, u.key, u.cur, u.best)
		_ = pipe.Process(ctx, c)
		swapped = append(swapped, u)
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		return nil, nil
	}
	_, _ = pipe.Exec(ctx)
	if err := s.firstError(ctx, cmds); err != nil {
		return nil, err
	}
	var again []*posUpdate
	for i, c := range cmds {
		if c.(*redis.IntCmd).Val() == 0 {
			again = append(again, swapped[i]) // moved by another writer since the read
		}
	}
	return again, nil
}

// after reports whether the member (score a, ID x) comes after (b, y) in a sorted set.
func after(a float64, x string, b float64, y string) bool {
	return a > b || a == b && x > y
}

// parseScore reads a score of a ZMSCORE reply; false for a member not in the set.
func parseScore(v any) (float64, bool) {
	switch v := v.(type) {
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil
	case float64:
		return v, true
	case int64:
		return float64(v), true
	}
	return 0, false
}
