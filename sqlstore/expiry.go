package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// SQL has no native TTL, so a storing rule's expired_time, once activated (Activate), works
// in two ways:
//   - Fetch never returns a message older than the expired_time of the rule(s) that stored
//     it: the shortest positive one among the storing rules whose filter matches its topic;
//   - a purge, every Config.PurgeInterval (and on PurgeExpired), deletes those messages, in
//     chunks of purgeBatch rows, using the arrived index.

// purgeBatch bounds the rows one DELETE of the purge removes, so that it holds its locks briefly.
const purgeBatch = 10000

// expiry is a storing rule (on_message_publish, on_message_store): its topic filter ("" for
// all) and expired_time (0: messages do not expire).
type expiry struct {
	filter string
	ttl    time.Duration
}

type expiries []expiry

func (s *Store) expiryRules() expiries {
	if p := s.expiries.Load(); p != nil {
		return *p
	}
	return nil
}

// Activate applies the store state of the actions of one registration, which Prepare does
// not touch: the expired_time of each storing rule (on_message_publish, on_message_store)
// becomes part of what Fetch filters and the purge deletes, and the purge starts with the
// first positive one. Dispatcher.Register calls it once every rule has prepared; a store
// used without a dispatcher calls it with the actions it prepared. Activating the same rule
// twice changes nothing. It fails (changing nothing) when the store is closed or an action
// is not one this store prepared.
func (s *Store) Activate(ctx context.Context, actions []hook.Action) error {
	var add []expiry
	for _, a := range actions {
		var mine bool
		switch a := a.(type) {
		case *writeAction:
			mine = a.s == s
			if mine && a.exp != nil {
				add = append(add, *a.exp)
			}
		case *customAction:
			mine = a.s == s
		case *subLookup:
			mine = a.s == s
		case *retainLookup:
			mine = a.s == s
		case *fetchLookup:
			mine = a.s == s
		}
		if !mine {
			return fmt.Errorf("sqlstore: %w: action %T was not prepared by this store", hook.ErrConfig, a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("sqlstore: %w", hook.ErrClosed)
	}
	cur := s.expiryRules()
	next := slices.Clone(cur)
	for _, x := range add {
		if !slices.Contains(next, x) {
			next = append(next, x)
		}
	}
	if len(next) == len(cur) {
		return nil
	}
	s.expiries.Store(&next)
	if s.purgeStop == nil && slices.ContainsFunc(next, func(x expiry) bool { return x.ttl > 0 }) {
		s.purgeStop, s.purgeDone = make(chan struct{}), make(chan struct{})
		go s.purgeLoop(s.purgeStop, s.purgeDone)
	}
	return nil
}

// longest returns the longest expired_time, and whether every storing rule has one (so that
// nothing older than it is wanted).
func (e expiries) longest() (ttl time.Duration, all bool) {
	all = len(e) > 0
	for _, x := range e {
		if x.ttl <= 0 {
			all = false
		}
		ttl = max(ttl, x.ttl)
	}
	return ttl, all
}

func matches(filter, t string) bool { return filter == "" || topic.Match(filter, t) }

// expired reports whether a message on topic t that arrived at has expired at now.
func (e expiries) expired(t string, arrived, now time.Time) bool {
	var ttl time.Duration
	for _, x := range e {
		if x.ttl > 0 && (ttl == 0 || x.ttl < ttl) && matches(x.filter, t) {
			ttl = x.ttl
		}
	}
	return ttl > 0 && arrived.Add(ttl).Before(now)
}

func (s *Store) purgeLoop(stop, done chan struct{}) {
	defer close(done)
	every := s.cfg.PurgeInterval
	if every <= 0 {
		every = time.Minute
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // Close stops a purge in progress
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if n, err := s.PurgeExpired(ctx); err != nil {
			s.opts.Logger.Warn("purge of expired messages failed", "store", "sqlstore/"+s.cfg.Dialect.String(), "deleted", n, "error", err)
		}
	}
}

// PurgeExpired deletes the messages of mqtt_msg that have outlived the expired_time of the
// storing rules whose filter matches their topic, and returns how many it deleted. The store
// runs it every Config.PurgeInterval once a rule has an expired_time.
func (s *Store) PurgeExpired(ctx context.Context) (int64, error) {
	now := time.Now()
	var total int64
	seen := map[expiry]bool{}
	for _, x := range s.expiryRules() {
		if x.ttl <= 0 || seen[x] {
			continue
		}
		seen[x] = true
		var q strings.Builder
		args := []any{s.d.timeArg(now.Add(-x.ttl))}
		cond := func() {
			q.WriteString("arrived < " + s.d.ph(1))
			if x.filter != "" {
				q.WriteString(" AND ")
				args = s.topicCond(&q, args, "topic", planFilter(x.filter))
			}
		}
		if s.cfg.Dialect == MySQL {
			q.WriteString("DELETE FROM mqtt_msg WHERE ")
			cond()
			fmt.Fprintf(&q, " LIMIT %d", purgeBatch)
		} else {
			q.WriteString("DELETE FROM mqtt_msg WHERE id IN (SELECT id FROM mqtt_msg WHERE ")
			cond()
			fmt.Fprintf(&q, " LIMIT %d)", purgeBatch)
		}
		for {
			qctx, cancel := s.queryContext(ctx)
			n, err := s.exec(qctx, q.String(), args...)
			cancel()
			total += n
			if err != nil {
				return total, fmt.Errorf("sqlstore: purge messages of %q older than %v: %w", x.filter, x.ttl, err)
			}
			if n < purgeBatch {
				break
			}
		}
	}
	return total, nil
}
