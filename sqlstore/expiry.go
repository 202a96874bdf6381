package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/topic"
)

// SQL has no native TTL, so a publish rule's expired_time works in two ways:
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

func (s *Store) addExpiry(filter string, ttl time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := append(slices.Clone(s.expiryRules()), expiry{filter: filter, ttl: ttl})
	s.expiries.Store(&e)
	if ttl > 0 && s.purgeStop == nil && !s.closed {
		s.purgeStop, s.purgeDone = make(chan struct{}), make(chan struct{})
		go s.purgeLoop(s.purgeStop, s.purgeDone)
	}
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
