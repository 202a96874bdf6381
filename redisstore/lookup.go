package redisstore

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// subLookup is on_subscribe_lookup: HGETALL mqtt:sub:${clientid}.
type subLookup struct {
	s *Store
}

func (l *subLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	var client string
	switch ev := e.(type) {
	case *hook.SessionCreatedEvent:
		if ev == nil {
			return hook.Result{}, fmt.Errorf("redisstore: on_subscribe_lookup: nil event %T: %w", e, hook.ErrInvalidEvent)
		}
		client = ev.ClientID
	case *hook.ConnectedEvent:
		if ev == nil {
			return hook.Result{}, fmt.Errorf("redisstore: on_subscribe_lookup: nil event %T: %w", e, hook.ErrInvalidEvent)
		}
		client = ev.ClientID
	default:
		return hook.Result{}, fmt.Errorf("redisstore: on_subscribe_lookup cannot answer %T: %w", e, hook.ErrInvalidEvent)
	}
	ctx, cancel := l.s.queryContext(ctx)
	defer cancel()
	key := l.s.k.sub(client)
	h, err := l.s.client.HGetAll(ctx, key).Result()
	if err != nil {
		return hook.Result{}, fmt.Errorf("redisstore: HGETALL %s: %w", key, err)
	}
	var res hook.Result
	for filter, v := range h {
		qos, err := strconv.ParseUint(v, 10, 8)
		if err != nil || qos > 2 {
			return hook.Result{}, fmt.Errorf("redisstore: %s field %q: QoS %q is not 0, 1 or 2", key, filter, v)
		}
		res.Subscriptions = append(res.Subscriptions, hook.Subscription{Topic: filter, QoS: byte(qos)})
	}
	slices.SortFunc(res.Subscriptions, func(a, b hook.Subscription) int { return strings.Compare(a.Topic, b.Topic) })
	return res, nil
}

// subscribed returns the client and the topic filter of a session.subscribed event, without a
// shared-subscription prefix ($share/<group>/, $queue/): the filter messages are matched with.
func subscribed(e hook.Event) (client, filter string, err error) {
	ev, ok := e.(*hook.SubscribedEvent)
	if !ok || ev == nil {
		return "", "", fmt.Errorf("redisstore: lookup cannot answer %T: %w", e, hook.ErrInvalidEvent)
	}
	if err := topic.ValidateFilter(ev.Topic); err != nil {
		return "", "", fmt.Errorf("redisstore: lookup for %q: %w", ev.ClientID, err)
	}
	_, filter, _ = topic.ParseShared(ev.Topic)
	return ev.ClientID, filter, nil
}

// retainLookup is on_retain_lookup.
type retainLookup struct {
	s *Store
}

func (l *retainLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	_, filter, err := subscribed(e)
	if err != nil {
		return hook.Result{}, err
	}
	ctx, cancel := l.s.queryContext(ctx)
	defer cancel()
	msgs, err := l.s.retained(ctx, filter)
	if err != nil {
		return hook.Result{}, fmt.Errorf("redisstore: retained messages for %q: %w", filter, err)
	}
	return hook.Result{Retained: msgs}, nil
}

// retained returns the retained messages whose topics match filter, in topic order.
func (s *Store) retained(ctx context.Context, filter string) ([]*hook.Message, error) {
	topics, wild, err := s.topicsFor(ctx, s.k.retainIndex(), filter)
	if err != nil {
		return nil, err
	}
	hashes, err := s.hgetAll(ctx, topics, s.k.retain)
	if err != nil {
		return nil, err
	}
	var out []*hook.Message
	var gone []string
	for i, h := range hashes {
		m := s.decode(s.k.retain(topics[i]), h)
		if m == nil {
			gone = append(gone, topics[i])
			continue
		}
		out = append(out, m)
	}
	if wild && len(gone) > 0 {
		s.unindexStale(ctx, s.k.retainIndex(), gone, s.k.retain)
	}
	return out, nil
}

// fetchLookup is on_message_fetch_for_queue and on_message_fetch_for_pubsub.
type fetchLookup struct {
	s      *Store
	pubsub bool // read after the client's acked position of each topic
	opts   hook.OfflineOpts
}

func (l *fetchLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	client, filter, err := subscribed(e)
	if err != nil {
		return hook.Result{}, err
	}
	ctx, cancel := l.s.queryContext(ctx)
	defer cancel()
	msgs, err := l.s.fetch(ctx, client, filter, l.pubsub, l.opts)
	if err != nil {
		return hook.Result{}, fmt.Errorf("redisstore: messages for %q on %q: %w", client, filter, err)
	}
	return hook.Result{Offline: msgs}, nil
}

// fetchPage is how many message IDs a fetch reads from a topic's sorted set at a time.
const fetchPage = 1000

// cursor is a fetch's position in one topic's sorted set.
type cursor struct {
	topic string
	after string // the member the next page follows ("": from the first)
	score string // its score, if known ("" for a position read from mqtt:acked)
	n     int    // messages taken
	msgs  []*hook.Message
}

// fetch returns the stored messages on topics matching filter: all of them (queue), or those
// after client's acked position on each topic (pubsub); within opts. Each topic's messages
// come in the order of its sorted set (the order they reached Redis); topics are merged by
// message ID, so that the messages of one writer come oldest first.
func (s *Store) fetch(ctx context.Context, client, filter string, pubsub bool, opts hook.OfflineOpts) ([]*hook.Message, error) {
	topics, wild, err := s.topicsFor(ctx, s.k.msgIndex(), filter)
	if err != nil || len(topics) == 0 {
		return nil, err
	}
	curs := make([]*cursor, len(topics))
	for i, t := range topics {
		curs[i] = &cursor{topic: t}
	}
	if pubsub {
		pos, err := s.positions(ctx, client, topics)
		if err != nil {
			return nil, err
		}
		for i, p := range pos {
			curs[i].after = p
		}
	}
	limit := opts.MaxReturnedCount
	page := fetchPage
	if limit > 0 {
		page = min(page, limit)
	}
	var since time.Time
	if opts.TimeRange > 0 {
		since = time.Now().Add(-opts.TimeRange)
	}
	var (
		stale = make(map[string][]any) // topic → IDs whose hash is gone (expired, or acked from the queue)
		gone  []string                 // topics whose sorted set is gone (wildcard lookups)
		all   = curs
	)
	reloaded := false
	for round := 0; len(curs) > 0; round++ {
		pipe := s.client.Pipeline()
		pages := make([]*redis.StringSliceCmd, len(curs))
		var exists []*redis.IntCmd
		for i, c := range curs {
			pages[i] = redis.NewStringSliceCmd(ctx, "evalsha", scriptPage.Hash(), 1, s.k.topic(c.topic), c.after, c.score, page)
			_ = pipe.Process(ctx, pages[i])
			if round == 0 && wild {
				exists = append(exists, pipe.Exists(ctx, s.k.topic(c.topic)))
			}
		}
		_, _ = pipe.Exec(ctx)
		var failed error
		for _, p := range pages {
			if err := p.Err(); err != nil && !errors.Is(err, redis.Nil) {
				failed = err
				break
			}
		}
		if failed != nil {
			if redis.HasErrorPrefix(failed, "NOSCRIPT") && !reloaded {
				// The server lost the scripts (a restart, a failover): load them, read again.
				reloaded = true
				if err := s.loadScripts(ctx); err != nil {
					return nil, fmt.Errorf("%w (and loading the scripts: %w)", failed, err)
				}
				round--
				continue
			}
			return nil, failed
		}
		for i, e := range exists {
			if e.Val() == 0 {
				gone = append(gone, curs[i].topic)
			}
		}
		var ids []string
		for _, p := range pages {
			v := p.Val()
			for j := 0; j+1 < len(v); j += 2 {
				ids = append(ids, v[j])
			}
		}
		hashes, err := s.hgetAll(ctx, ids, s.k.msg)
		if err != nil {
			return nil, err
		}
		var next []*cursor
		for i, c := range curs {
			got := pages[i].Val()
			for j := 0; j+1 < len(got); j += 2 {
				id := got[j]
				h := hashes[0]
				hashes = hashes[1:]
				m := s.decode(s.k.msg(id), h)
				switch {
				case m == nil:
					stale[c.topic] = append(stale[c.topic], id)
				case !since.IsZero() && m.Timestamp.Before(since):
				default:
					m.ID = id
					c.msgs = append(c.msgs, m)
					c.n++
				}
			}
			if len(got) == 2*page && (limit <= 0 || c.n < limit) {
				c.after, c.score = got[len(got)-2], got[len(got)-1]
				next = append(next, c)
			}
		}
		curs = next
	}
	if len(stale) > 0 {
		// Safe: a message's ID joins the set only after its hash is written (see the stages).
		pipe := s.client.Pipeline()
		for t, ids := range stale {
			pipe.ZRem(ctx, s.k.topic(t), ids...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			s.log.Warn("cannot remove the IDs of expired messages from their topics' sets", "error", err)
		}
	}
	if len(gone) > 0 {
		s.unindexStale(ctx, s.k.msgIndex(), gone, s.k.topic)
	}
	lists := make([][]*hook.Message, len(all))
	for i, c := range all {
		lists[i] = c.msgs
	}
	return mergeByID(lists, limit), nil
}

// mergeByID merges lists, keeping the order of each, taking the smallest ID among their
// heads each time; at most limit messages (0: all).
func mergeByID(lists [][]*hook.Message, limit int) []*hook.Message {
	h := make(msgHeap, 0, len(lists))
	total := 0
	for _, l := range lists {
		if len(l) > 0 {
			h = append(h, l)
			total += len(l)
		}
	}
	if limit > 0 {
		total = min(total, limit)
	}
	if len(h) == 1 {
		return h[0][:total]
	}
	heap.Init(&h)
	out := make([]*hook.Message, 0, total)
	for len(out) < total {
		l := h[0]
		out = append(out, l[0])
		if len(l) == 1 {
			heap.Pop(&h)
		} else {
			h[0] = l[1:]
			heap.Fix(&h, 0)
		}
	}
	return out
}

// msgHeap is a heap of non-empty message lists, by the ID of their first message.
type msgHeap [][]*hook.Message

func (h msgHeap) Len() int           { return len(h) }
func (h msgHeap) Less(i, j int) bool { return h[i][0].ID < h[j][0].ID }
func (h msgHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *msgHeap) Push(x any)        { *h = append(*h, x.([]*hook.Message)) }
func (h *msgHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// positions returns client's acked position (a message ID, or "") on each topic.
func (s *Store) positions(ctx context.Context, client string, topics []string) ([]string, error) {
	out := make([]string, 0, len(topics))
	for chunk := range slices.Chunk(topics, pipelineChunk) {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.StringCmd, len(chunk))
		for i, t := range chunk {
			cmds[i] = pipe.Get(ctx, s.k.acked(client, t))
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		for _, c := range cmds {
			out = append(out, c.Val())
		}
	}
	return out, nil
}

// latestLookup is on_message_fetch_for_keep_latest.
type latestLookup struct {
	s    *Store
	opts hook.OfflineOpts
}

func (l *latestLookup) Lookup(ctx context.Context, e hook.Event) (hook.Result, error) {
	client, filter, err := subscribed(e)
	if err != nil {
		return hook.Result{}, err
	}
	ctx, cancel := l.s.queryContext(ctx)
	defer cancel()
	msgs, err := l.s.latest(ctx, client, filter, l.opts)
	if err != nil {
		return hook.Result{}, fmt.Errorf("redisstore: latest messages for %q on %q: %w", client, filter, err)
	}
	return hook.Result{Offline: msgs}, nil
}

// latest returns the latest message of each topic matching filter that is newer than client's
// position on it, oldest first.
func (s *Store) latest(ctx context.Context, client, filter string, opts hook.OfflineOpts) ([]*hook.Message, error) {
	topics, wild, err := s.topicsFor(ctx, s.k.latestIndex(), filter)
	if err != nil || len(topics) == 0 {
		return nil, err
	}
	hashes, err := s.hgetAll(ctx, topics, s.k.latest)
	if err != nil {
		return nil, err
	}
	pos, err := s.positions(ctx, client, topics)
	if err != nil {
		return nil, err
	}
	var since time.Time
	if opts.TimeRange > 0 {
		since = time.Now().Add(-opts.TimeRange)
	}
	var out []*hook.Message
	var gone []string
	for i, h := range hashes {
		m := s.decode(s.k.latest(topics[i]), h)
		switch {
		case m == nil:
			gone = append(gone, topics[i])
		case pos[i] != "" && m.ID <= pos[i]:
		case !since.IsZero() && m.Timestamp.Before(since):
		default:
			out = append(out, m)
		}
	}
	if wild && len(gone) > 0 {
		s.unindexStale(ctx, s.k.latestIndex(), gone, s.k.latest)
	}
	sortByID(out)
	if n := opts.MaxReturnedCount; n > 0 && len(out) > n {
		out = out[:n]
	}
	return out, nil
}

func sortByID(ms []*hook.Message) {
	slices.SortStableFunc(ms, func(a, b *hook.Message) int { return cmp.Compare(a.ID, b.ID) })
}

// pipelineChunk bounds the commands of one lookup pipeline.
const pipelineChunk = 1000

// hgetAll returns HGETALL of the key of each name, in order (an empty map for a missing key).
func (s *Store) hgetAll(ctx context.Context, names []string, key func(string) string) ([]map[string]string, error) {
	out := make([]map[string]string, 0, len(names))
	for chunk := range slices.Chunk(names, pipelineChunk) {
		pipe := s.client.Pipeline()
		cmds := make([]*redis.MapStringStringCmd, len(chunk))
		for i, n := range chunk {
			cmds[i] = pipe.HGetAll(ctx, key(n))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
		for _, c := range cmds {
			out = append(out, c.Val())
		}
	}
	return out, nil
}

// decode makes a message of a message hash; nil for an empty (missing) hash, and for a
// corrupt one, which is logged.
func (s *Store) decode(key string, h map[string]string) *hook.Message {
	if len(h) == 0 {
		return nil
	}
	qos, err := strconv.ParseUint(h["qos"], 10, 8)
	if err != nil || qos > 2 {
		s.log.Warn("skipping a stored message with an invalid QoS", "key", key, "qos", h["qos"])
		return nil
	}
	return &hook.Message{
		ID:        h["id"],
		From:      h["from"],
		Topic:     h["topic"],
		QoS:       byte(qos),
		Retain:    h["retain"] == "true" || h["retain"] == "1",
		Payload:   []byte(h["payload"]),
		Timestamp: parseTime(h["ts"]),
	}
}

// topicsFor returns the topics a lookup of filter reads: the filter itself when it has no
// wildcard, otherwise the topics of index in the range of the filter's literal prefix that
// match it (wild is then true).
func (s *Store) topicsFor(ctx context.Context, index, filter string) (topics []string, wild bool, err error) {
	if !strings.ContainsAny(filter, "+#") {
		return []string{filter}, false, nil
	}
	lo, hi := lexRange(filter)
	for {
		page, err := s.client.ZRangeByLex(ctx, index, &redis.ZRangeBy{Min: lo, Max: hi, Count: indexPage}).Result()
		if err != nil {
			return nil, true, fmt.Errorf("ZRANGEBYLEX %s: %w", index, err)
		}
		for _, t := range page {
			if topic.Match(filter, t) {
				topics = append(topics, t)
			}
		}
		if len(page) < indexPage {
			return topics, true, nil
		}
		lo = "(" + page[len(page)-1]
	}
}

// indexPage is how many index members a wildcard lookup reads at a time.
const indexPage = 5000

// lexRange returns the ZRANGEBYLEX bounds of the topics a wildcard filter can match: those
// starting with the levels before its first wildcard ("a/b/" for "a/b/+/c"), plus, for
// "a/b/#", the parent "a/b". A filter starting with a wildcard gives the whole index.
func lexRange(filter string) (lo, hi string) {
	i := 0 // end of the literal levels
	for {
		j := strings.IndexByte(filter[i:], '/')
		level := filter[i:]
		if j >= 0 {
			level = filter[i : i+j]
		}
		if level == "+" || level == "#" {
			if i == 0 {
				return "-", "+"
			}
			prefix := filter[:i] // ends with '/'
			lo = "[" + prefix
			if level == "#" {
				lo = "[" + prefix[:len(prefix)-1]
			}
			// Every string starting with prefix is below prefix with its last byte, '/',
			// raised to '0'.
			return lo, "(" + prefix[:len(prefix)-1] + "0"
		}
		if j < 0 {
			return "[" + filter, "[" + filter // no wildcard (callers do not get here)
		}
		i += j + 1
	}
}

// unindexStale removes topics whose data key (dataKey(topic)) is gone from index, then puts
// back those whose key exists again. Writers add the data key before the index entry (see
// the write stages), so a concurrent write either lands before the check, which then puts
// its entry back, or after the removal, and adds the entry itself. Failures are logged: the
// entries stay, and the next lookup tries again.
func (s *Store) unindexStale(ctx context.Context, index string, topics []string, dataKey func(string) string) {
	members := make([]any, len(topics))
	for i, t := range topics {
		members[i] = t
	}
	if err := s.client.ZRem(ctx, index, members...).Err(); err != nil {
		s.log.Warn("cannot remove stale topics from an index", "index", index, "error", err)
		return
	}
	pipe := s.client.Pipeline()
	exists := make([]*redis.IntCmd, len(topics))
	for i, t := range topics {
		exists[i] = pipe.Exists(ctx, dataKey(t))
	}
	_, err := pipe.Exec(ctx)
	var back []redis.Z
	for i, e := range exists {
		if err != nil || e.Val() != 0 {
			back = append(back, redis.Z{Member: topics[i]}) // when unsure, put it back
		}
	}
	if len(back) > 0 {
		if err := s.client.ZAdd(ctx, index, back...).Err(); err != nil {
			s.log.Error("cannot put topics back into an index; wildcard lookups miss them until they are written again",
				"index", index, "topics", len(back), "error", err)
		}
	}
}
