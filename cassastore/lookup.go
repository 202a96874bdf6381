package cassastore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/topic"
)

// matchingTopics returns the topics of kind ("m": stored messages, "r": retained) that a
// wildcard filter matches, from topic_index, without ALLOW FILTERING or a scan: one
// partition per first level (kind/first), read from the filter's literal prefix on (a
// clustering range); a filter whose first level is a wildcard reads the kind's list of first
// levels (the kind's root partition) first, leaving out those that begin with '$'.
func (s *Store) matchingTopics(ctx context.Context, kind, filter string) ([]string, error) {
	levels := strings.Split(filter, "/")
	var firsts []string
	if l := levels[0]; l != "+" && l != "#" {
		firsts = []string{l}
	} else {
		roots, err := s.readIndex(ctx, kind, "")
		if err != nil {
			return nil, err
		}
		for _, r := range roots {
			if !strings.HasPrefix(r, "$") {
				firsts = append(firsts, r)
			}
		}
	}
	prefix := ""
	for i, l := range levels {
		if l == "+" || l == "#" {
			break
		}
		if i > 0 {
			prefix += "/"
		}
		prefix += l
	}
	var mu sync.Mutex
	var out []string
	err := s.parallel(ctx, len(firsts), func(ctx context.Context, i int) error {
		first := firsts[i]
		p := prefix
		if !strings.HasPrefix(p, first) {
			p = ""
		}
		topics, err := s.readIndex(ctx, kind+"/"+first, p)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		for _, tp := range topics {
			if topic.Match(filter, tp) {
				out = append(out, tp)
			}
		}
		return nil
	})
	return out, err
}

// readIndex lists the topics of one topic_index partition, those from prefix on when it is
// set.
func (s *Store) readIndex(ctx context.Context, bucket, prefix string) ([]string, error) {
	var q *gocql.Query
	if prefix == "" {
		q = s.sess.Query(s.q.selIndex, bucket)
	} else {
		q = s.sess.Query(s.q.selIndexRange, bucket, prefix, prefix+"\U0010FFFF")
	}
	iter := q.PageSize(1000).IterContext(ctx)
	var out []string
	var tp string
	for iter.Scan(&tp) {
		out = append(out, tp)
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassastore: read %s: %w", TableTopicIndex, err)
	}
	return out, nil
}

// parallel runs f(0..n-1), Config.Concurrency at a time, and returns the first error.
func (s *Store) parallel(ctx context.Context, n int, f func(ctx context.Context, i int) error) error {
	switch n {
	case 0:
		return nil
	case 1:
		return f(ctx, 0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(ctx, i); err != nil {
				once.Do(func() { first = err; cancel() })
			}
		}()
	}
	wg.Wait()
	return first
}

// fetch returns the messages stored on the topics filter matches that are newer than the
// client's ack position on their topic, within opts, oldest first (in msgid order). Each
// topic is one partition read from the position on (msgid > position, a clustering range),
// ascending, a page at a time, stopping at max_returned_count.
func (s *Store) fetch(ctx context.Context, client, filter string, opts hook.OfflineOpts) ([]*hook.Message, error) {
	topics := []string{filter}
	if isWildcard(filter) {
		var err error
		if topics, err = s.matchingTopics(ctx, "m", filter); err != nil {
			return nil, err
		}
	}
	if len(topics) == 0 {
		return nil, nil
	}
	pos := map[string]string{}
	if client != "" {
		var err error
		if pos, err = s.positions(ctx, client); err != nil {
			return nil, fmt.Errorf("cassastore: read %s: %w", TableAcked, err)
		}
	}
	// Messages at or above the writers' low-water mark may have older neighbours not
	// visible yet: they wait for a later fetch (IDs not made by a hook.IDGenerator are not
	// ordered by time and are not held back).
	front, err := s.frontier(ctx)
	if err != nil {
		return nil, fmt.Errorf("cassastore: read %s: %w", TableWriterMark, err)
	}
	var cutoff time.Time
	if opts.TimeRange > 0 {
		cutoff = time.Now().Add(-opts.TimeRange)
	}
	stmt := s.q.fetch
	if s.msgBin {
		stmt = s.q.fetchBin
	}
	page := 500
	if n := opts.MaxReturnedCount; n > 0 && n < page {
		page = n
	}
	var mu sync.Mutex
	var msgs []*hook.Message
	err = s.parallel(ctx, len(topics), func(ctx context.Context, i int) error {
		iter := s.sess.Query(stmt, topics[i], pos[topics[i]]).PageSize(page).IterContext(ctx)
		var got []*hook.Message
		for {
			m, ok := s.scanMessage(iter)
			if !ok {
				break
			}
			if !cutoff.IsZero() && m.Timestamp.Before(cutoff) {
				continue
			}
			if front != "" && m.ID >= front && hook.IsGeneratedID(m.ID) {
				continue
			}
			got = append(got, m)
			if n := opts.MaxReturnedCount; n > 0 && len(got) >= n {
				break
			}
		}
		if err := iter.Close(); err != nil {
			return fmt.Errorf("cassastore: fetch %q: %w", topics[i], err)
		}
		mu.Lock()
		msgs = append(msgs, got...)
		mu.Unlock()
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(msgs, func(a, b *hook.Message) int { return strings.Compare(a.ID, b.ID) })
	if n := opts.MaxReturnedCount; n > 0 && len(msgs) > n {
		msgs = msgs[:n]
	}
	return msgs, nil
}

// scanMessage reads one row of fetch, fetchBin or selMsgID.
func (s *Store) scanMessage(iter *gocql.Iter) (*hook.Message, bool) {
	var (
		m       hook.Message
		at      time.Time
		payload string
		bin     []byte
		qos     int
	)
	dest := []any{&m.Topic, &m.ID, &at, &payload, &qos, &m.From}
	if len(iter.Columns()) == 7 {
		dest = append(dest, &bin)
	}
	if !iter.Scan(dest...) {
		return nil, false
	}
	if bin != nil {
		m.Payload = bin
	} else {
		m.Payload = []byte(payload)
	}
	m.QoS, m.Timestamp = byte(qos), at
	return &m, true
}

// retained returns the retained messages on the topics filter matches, by topic: each
// topic's retain row, or for a row that holds only a msgid (written by EMQX, or in a keyspace
// without this store's retain columns), the message that msgid names in msg.
func (s *Store) retained(ctx context.Context, filter string) ([]*hook.Message, error) {
	topics := []string{filter}
	if isWildcard(filter) {
		var err error
		if topics, err = s.matchingTopics(ctx, "r", filter); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	var msgs []*hook.Message
	err := s.parallel(ctx, len(topics), func(ctx context.Context, i int) error {
		m, err := s.retainedOn(ctx, topics[i])
		if err != nil {
			return fmt.Errorf("cassastore: retained message on %q: %w", topics[i], err)
		}
		if m != nil {
			m.Retain = true
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(msgs, func(a, b *hook.Message) int { return strings.Compare(a.Topic, b.Topic) })
	return msgs, nil
}

func (s *Store) retainedOn(ctx context.Context, tp string) (*hook.Message, error) {
	var id string
	if s.retainFull {
		var (
			m       hook.Message
			at      time.Time
			payload *string
			bin     []byte
			qos     *int
		)
		err := s.sess.Query(s.q.selRetain, tp).ScanContext(ctx, &m.Topic, &m.ID, &at, &payload, &qos, &m.From, &bin)
		if errors.Is(err, gocql.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if qos != nil { // written by this store
			switch {
			case bin != nil:
				m.Payload = bin
			case payload != nil:
				m.Payload = []byte(*payload)
			default:
				m.Payload = []byte{}
			}
			m.QoS, m.Timestamp = byte(*qos), at
			return &m, nil
		}
		id = m.ID
	} else {
		err := s.sess.Query(s.q.selRetainRef, tp).ScanContext(ctx, &id)
		if errors.Is(err, gocql.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
	}
	stmt := s.q.selMsgID
	if s.msgBin {
		stmt = s.q.selMsgIDBin
	}
	iter := s.sess.Query(stmt, tp, id).IterContext(ctx)
	m, _ := s.scanMessage(iter)
	if err := iter.Close(); err != nil {
		return nil, err
	}
	return m, nil
}

// subscriptions returns the client's stored subscriptions (sub), by topic.
func (s *Store) subscriptions(ctx context.Context, clientID string) ([]hook.Subscription, error) {
	iter := s.sess.Query(s.q.selSub, clientID).IterContext(ctx)
	var subs []hook.Subscription
	var tp string
	var qos int
	for iter.Scan(&tp, &qos) {
		subs = append(subs, hook.Subscription{Topic: tp, QoS: byte(qos)})
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassastore: read %s: %w", TableSub, err)
	}
	return subs, nil
}

// ClientState implements backend.ClientStateReader (client).
func (s *Store) ClientState(ctx context.Context, clientID string) (backend.ClientState, error) {
	var (
		on, off time.Time
		node    string
		state   int
	)
	err := s.sess.Query(s.q.selClient, clientID).ScanContext(ctx, &on, &off, &node, &state)
	if errors.Is(err, gocql.ErrNotFound) {
		return backend.ClientState{}, fmt.Errorf("cassastore: client %q: %w", clientID, hook.ErrNotFound)
	}
	if err != nil {
		return backend.ClientState{}, fmt.Errorf("cassastore: client state %q: %w", clientID, err)
	}
	return backend.ClientState{ClientID: clientID, Online: state == 1, Node: node, OnlineAt: on, OfflineAt: off}, nil
}

// AddSubscription implements backend.SubscriptionStore: an insert into sub.
func (s *Store) AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error {
	if err := s.exec(ctx, s.q.insSub, clientID, sub.Topic, int(sub.QoS)); err != nil {
		return fmt.Errorf("cassastore: add subscription %q %q: %w", clientID, sub.Topic, err)
	}
	return nil
}

// DeleteSubscription implements backend.SubscriptionStore: a delete from sub.
func (s *Store) DeleteSubscription(ctx context.Context, clientID, tp string) error {
	if err := s.exec(ctx, s.q.delSub, clientID, tp); err != nil {
		return fmt.Errorf("cassastore: delete subscription %q %q: %w", clientID, tp, err)
	}
	return nil
}
