package cassastore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/topic"
)

// batchBytes is the most one unlogged batch carries: Cassandra warns above 5 KiB
// (batch_size_warn_threshold) and fails above 50 KiB. A single statement bigger than that is
// sent alone, not in a batch.
const batchBytes = 5 << 10

// statements are the CQL the store runs, on its keyspace. gocql prepares each on first use
// (per connection) and routes it to a replica of its partition (token-aware policy).
type statements struct {
	insMsg, insMsgBin                  string
	insRetain, insRetainRef, delRetain string
	connected, disconnected, discNode  string
	selAcked, insAcked, delAcked       string
	selSub, insSub, delSub             string
	selClient                          string
	fetch, fetchBin                    string
	selRetain, selRetainRef, selMsgID  string
	selMsgIDBin                        string
	insIndex, selIndex, selIndexRange  string
	insMark, delMark, selMarks         string
}

func newStatements(ks string) statements {
	t := func(name string) string { return ks + "." + name }
	return statements{
		insMsg:        `INSERT INTO ` + t(TableMsg) + ` (topic, msgid, arrived, payload, qos, retain, sender) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`,
		insMsgBin:     `INSERT INTO ` + t(TableMsg) + ` (topic, msgid, arrived, payload_bin, qos, retain, sender) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`,
		insRetain:     `INSERT INTO ` + t(TableRetain) + ` (topic, msgid, arrived, payload, payload_bin, qos, sender) VALUES (?, ?, ?, ?, ?, ?, ?) USING TTL ?`,
		insRetainRef:  `INSERT INTO ` + t(TableRetain) + ` (topic, msgid) VALUES (?, ?) USING TTL ?`,
		delRetain:     `DELETE FROM ` + t(TableRetain) + ` WHERE topic = ?`,
		connected:     `UPDATE ` + t(TableClient) + ` SET state = 1, connected = ?, disconnected = null, node = ? WHERE client_id = ?`,
		disconnected:  `UPDATE ` + t(TableClient) + ` SET state = 0, disconnected = ? WHERE client_id = ?`,
		discNode:      `UPDATE ` + t(TableClient) + ` SET state = 0, disconnected = ?, node = ? WHERE client_id = ?`,
		selAcked:      `SELECT topic, msgid FROM ` + t(TableAcked) + ` WHERE client_id = ?`,
		insAcked:      `INSERT INTO ` + t(TableAcked) + ` (client_id, topic, msgid) VALUES (?, ?, ?)`,
		delAcked:      `DELETE FROM ` + t(TableAcked) + ` WHERE client_id = ? AND topic = ?`,
		selSub:        `SELECT topic, qos FROM ` + t(TableSub) + ` WHERE client_id = ?`,
		insSub:        `INSERT INTO ` + t(TableSub) + ` (client_id, topic, qos) VALUES (?, ?, ?)`,
		delSub:        `DELETE FROM ` + t(TableSub) + ` WHERE client_id = ? AND topic = ?`,
		selClient:     `SELECT connected, disconnected, node, state FROM ` + t(TableClient) + ` WHERE client_id = ?`,
		fetch:         `SELECT topic, msgid, arrived, payload, qos, sender FROM ` + t(TableMsg) + ` WHERE topic = ? AND msgid > ? ORDER BY msgid ASC`,
		fetchBin:      `SELECT topic, msgid, arrived, payload, qos, sender, payload_bin FROM ` + t(TableMsg) + ` WHERE topic = ? AND msgid > ? ORDER BY msgid ASC`,
		selRetain:     `SELECT topic, msgid, arrived, payload, qos, sender, payload_bin FROM ` + t(TableRetain) + ` WHERE topic = ?`,
		selRetainRef:  `SELECT msgid FROM ` + t(TableRetain) + ` WHERE topic = ?`,
		selMsgID:      `SELECT topic, msgid, arrived, payload, qos, sender FROM ` + t(TableMsg) + ` WHERE topic = ? AND msgid = ?`,
		selMsgIDBin:   `SELECT topic, msgid, arrived, payload, qos, sender, payload_bin FROM ` + t(TableMsg) + ` WHERE topic = ? AND msgid = ?`,
		insMark:       `INSERT INTO ` + t(TableWriterMark) + ` (bucket, writer, mark) VALUES ('m', ?, ?) USING TTL ?`,
		delMark:       `DELETE FROM ` + t(TableWriterMark) + ` WHERE bucket = 'm' AND writer = ?`,
		selMarks:      `SELECT writer, mark FROM ` + t(TableWriterMark) + ` WHERE bucket = 'm'`,
		insIndex:      `INSERT INTO ` + t(TableTopicIndex) + ` (bucket, topic) VALUES (?, ?)`,
		selIndex:      `SELECT topic FROM ` + t(TableTopicIndex) + ` WHERE bucket = ?`,
		selIndexRange: `SELECT topic FROM ` + t(TableTopicIndex) + ` WHERE bucket = ? AND topic >= ? AND topic < ?`,
	}
}

type opKind uint8

const (
	opStore opKind = iota + 1
	opRetain
	opRetainDelete
	opConnected
	opDisconnected
	opAcked
	opAckedDelete
	opCustom
)

// op is one queued write.
type op struct {
	kind    opKind
	key     string // the writer's ordering key: the topic for messages, else the client
	client  string
	node    string
	at      time.Time
	msg     *hook.Message
	filter  string           // opAckedDelete
	ttl     int              // opStore, opRetain: USING TTL seconds, 0 none
	tracked bool             // opStore: its msgid is among the marks' pending ones
	custom  *customAction    // opCustom
	vals    *template.Values // opCustom
}

func (o *op) size() int {
	n := 48 + len(o.key) + len(o.client) + len(o.node) + len(o.filter)
	if o.msg != nil {
		n += len(o.msg.ID) + len(o.msg.Topic) + len(o.msg.From) + len(o.msg.Payload)
	}
	if o.vals != nil {
		n += len(o.vals.Payload) + len(o.vals.Topic) + len(o.vals.ClientID) + 64
	}
	return n
}

func (s *Store) enqueue(ctx context.Context, o op) error {
	if err := s.w.EnqueueContext(ctx, o); err != nil {
		return fmt.Errorf("cassastore: %w", err)
	}
	return nil
}

// flush writes one batch of the writer:
//
//  1. the topic_index rows the batch's messages need and the store has not written yet, one
//     unlogged batch per index partition, concurrently; an error there retries the batch;
//  2. the ops grouped by ordering key (a topic, or a client): the groups run concurrently
//     (Config.Concurrency statements at most), each group in order. Within a group, runs of
//     message inserts go as single-partition unlogged batches of up to 5 KiB; runs of acks
//     read the client's positions once and write only those that move forward; a retained
//     message replaced or deleted later in the run is not written.
//
// A failed statement marks its ops: FailRetry/FailUnknown errors retry them and every later
// op of the group (order per key); item errors fail them alone and the group goes on.
func (s *Store) flush(ctx context.Context, batch []op, res *backend.BatchResult) error {
	if err := s.writeIndex(ctx, batch); err != nil {
		if f := classify(err); f == backend.FailItem || f == backend.FailBatch {
			s.finishAll(batch, nil) // they fail for good
		}
		return err
	}
	groups := make(map[string][]int)
	var order []string
	for i := range batch {
		k := batch[i].key
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], i)
	}
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, k := range order {
		idx := groups[k]
		if len(order) == 1 {
			s.runGroup(ctx, batch, idx, res, sem)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.runGroup(ctx, batch, idx, res, sem)
		}()
	}
	wg.Wait()
	return nil
}

// writeIndex writes the topic_index rows of the batch's messages not written before.
func (s *Store) writeIndex(ctx context.Context, batch []op) error {
	if !s.indexOK {
		return nil
	}
	var rows map[string][]string // bucket -> topics
	var keys []string
	for i := range batch {
		o := &batch[i]
		var kind string
		switch {
		case o.kind == opStore:
			kind = "m"
		case o.kind == opRetain:
			kind = "r"
		default:
			continue
		}
		for _, e := range indexEntries(kind, o.msg.Topic) {
			k := e[0] + "\x00" + e[1]
			if _, ok := s.indexed.Load(k); ok {
				continue
			}
			if rows == nil {
				rows = make(map[string][]string)
			}
			if !contains(rows[e[0]], e[1]) {
				rows[e[0]] = append(rows[e[0]], e[1])
				keys = append(keys, k)
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for bucket, topics := range rows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b := s.newBatch()
			n := 0
			for _, tp := range topics {
				if n > 0 && n+len(tp) > batchBytes {
					if err := b.ExecContext(ctx); err != nil {
						mu.Lock()
						first = cmp(first, err)
						mu.Unlock()
						return
					}
					b, n = s.newBatch(), 0
				}
				b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: s.q.insIndex, Args: []any{bucket, tp}, Idempotent: true})
				n += len(bucket) + len(tp) + 16
			}
			if err := b.ExecContext(ctx); err != nil {
				mu.Lock()
				first = cmp(first, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return fmt.Errorf("cassastore: write %s: %w", TableTopicIndex, first)
	}
	for _, k := range keys {
		s.indexed.Store(k, struct{}{})
	}
	return nil
}

func cmp(first, err error) error {
	if first == nil {
		return err
	}
	return first
}

// indexEntries are the topic_index rows that let a wildcard filter find topic, for kind "m"
// (stored messages) or "r" (retained): (kind, first level) in the kind's root partition, and
// (kind/first level, topic).
func indexEntries(kind, tp string) [2][2]string {
	first, _, _ := strings.Cut(tp, "/")
	return [2][2]string{{kind, first}, {kind + "/" + first, tp}}
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *Store) newBatch() *gocql.Batch {
	b := s.sess.Batch(gocql.UnloggedBatch)
	b.WithTimestamp(s.timestamp())
	return b
}

// exec runs one idempotent statement with the store's write timestamp.
func (s *Store) exec(ctx context.Context, stmt string, args ...any) error {
	return s.sess.Query(stmt, args...).WithTimestamp(s.timestamp()).Idempotent(true).ExecContext(ctx)
}

// runGroup writes the ops of one ordering key, in order.
func (s *Store) runGroup(ctx context.Context, batch []op, idx []int, res *backend.BatchResult, sem chan struct{}) {
	acquire := func() { sem <- struct{}{} }
	release := func() { <-sem }
	for j := 0; j < len(idx); {
		o := &batch[idx[j]]
		// The run of ops of the same kind that can be written together.
		end := j + 1
		switch o.kind {
		case opStore, opAcked:
			for end < len(idx) && batch[idx[end]].kind == o.kind {
				end++
			}
		case opRetain, opRetainDelete:
			for end < len(idx) && (batch[idx[end]].kind == opRetain || batch[idx[end]].kind == opRetainDelete) {
				end++
			}
		}
		run := idx[j:end]
		acquire()
		failedAt, err := s.writeRun(ctx, batch, run, res)
		release()
		if err != nil {
			switch classify(err) {
			case backend.FailRetry, backend.FailUnknown:
				for _, i := range idx[j+failedAt:] {
					res.Retry(i, err)
				}
				return
			}
			// Item errors: writeRun marked the failed ops; the group goes on.
		}
		j = end
	}
}

// writeRun writes a run of ops of one key. It returns nil when all were written (or marked
// failed), else the index in run of the first op not known to be written and the error, which
// the caller turns into retries (retryable errors) or, for an item error, which writeRun has
// marked already.
func (s *Store) writeRun(ctx context.Context, batch []op, run []int, res *backend.BatchResult) (int, error) {
	o := &batch[run[0]]
	switch o.kind {
	case opStore:
		return s.writeMessages(ctx, batch, run, res)
	case opRetain, opRetainDelete:
		last := &batch[run[len(run)-1]] // the earlier ones are replaced: only the last counts
		var err error
		if last.kind == opRetainDelete {
			err = s.exec(ctx, s.q.delRetain, last.msg.Topic)
		} else {
			err = s.writeRetained(ctx, last)
		}
		return 0, s.itemErr(err, run, res)
	case opAcked:
		return 0, s.itemErr(s.writeAcks(ctx, batch, run), run, res)
	case opAckedDelete:
		return 0, s.itemErr(s.deleteAcks(ctx, o.client, o.filter), run, res)
	case opConnected:
		return 0, s.itemErr(s.exec(ctx, s.q.connected, o.at, o.node, o.client), run, res)
	case opDisconnected:
		var err error
		if o.node == "" {
			err = s.exec(ctx, s.q.disconnected, o.at, o.client)
		} else {
			err = s.exec(ctx, s.q.discNode, o.at, o.node, o.client)
		}
		return 0, s.itemErr(err, run, res)
	case opCustom:
		var args []any
		for _, st := range o.custom.stmts {
			args = st.Args(args[:0], o.vals)
			if err := s.exec(ctx, st.Text(), args...); err != nil {
				return 0, s.itemErr(fmt.Errorf("cassastore: %s: %s: %w", o.custom.rule, st.Source(), err), run, res)
			}
		}
	}
	return 0, nil
}

// itemErr marks the ops of run failed when err is an item error, and returns err.
func (s *Store) itemErr(err error, run []int, res *backend.BatchResult) error {
	if err == nil {
		return nil
	}
	if f := classify(err); f == backend.FailItem || f == backend.FailBatch {
		for _, i := range run {
			res.Fail(i, err)
		}
	}
	return err
}

// msgArgs are the arguments of insMsg or insMsgBin for m.
func (s *Store) msgStmt(m *hook.Message, ttl int) (string, []any) {
	stmt, payload := s.q.insMsg, any(string(m.Payload))
	if !utf8.Valid(m.Payload) {
		stmt, payload = s.q.insMsgBin, m.Payload
	}
	return stmt, []any{m.Topic, m.ID, arrived(m), payload, int(m.QoS), b2i(m.Retain), m.From, ttl}
}

func arrived(m *hook.Message) time.Time {
	if m.Timestamp.IsZero() {
		return time.Now()
	}
	return m.Timestamp
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// writeMessages inserts a run of messages of one topic: single-partition unlogged batches of
// up to batchBytes; a batch that fails for an item is written again statement by statement so
// that the bad message fails alone.
func (s *Store) writeMessages(ctx context.Context, batch []op, run []int, res *backend.BatchResult) (int, error) {
	for start := 0; start < len(run); {
		end, n := start, 0
		for end < len(run) {
			sz := batch[run[end]].size()
			if end > start && n+sz > batchBytes {
				break
			}
			n += sz
			end++
		}
		chunk := run[start:end]
		var err error
		if len(chunk) == 1 {
			o := &batch[chunk[0]]
			stmt, args := s.msgStmt(o.msg, o.ttl)
			err = s.exec(ctx, stmt, args...)
		} else {
			b := s.newBatch()
			for _, i := range chunk {
				stmt, args := s.msgStmt(batch[i].msg, batch[i].ttl)
				b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true})
			}
			err = b.ExecContext(ctx)
		}
		if err == nil {
			s.finishAll(batch, chunk)
		} else {
			if f := classify(err); f == backend.FailRetry || f == backend.FailUnknown {
				return start, err
			}
			s.finishAll(batch, chunk) // written one by one below, or failed
			if len(chunk) == 1 {
				res.Fail(chunk[0], fmt.Errorf("cassastore: message %s on %q: %w", batch[chunk[0]].msg.ID, batch[chunk[0]].msg.Topic, err))
			} else {
				for k, i := range chunk {
					stmt, args := s.msgStmt(batch[i].msg, batch[i].ttl)
					if err := s.exec(ctx, stmt, args...); err != nil {
						if f := classify(err); f == backend.FailRetry || f == backend.FailUnknown {
							return start + k, err
						}
						res.Fail(i, fmt.Errorf("cassastore: message %s on %q: %w", batch[i].msg.ID, batch[i].msg.Topic, err))
					}
				}
			}
		}
		start = end
	}
	return 0, nil
}

// finishAll tells the marks that the messages of batch at idx (every one if idx is nil) left
// the queue.
func (s *Store) finishAll(batch []op, idx []int) {
	if !s.marksOK {
		return
	}
	var ids []string
	add := func(o *op) {
		if o.kind == opStore && o.tracked {
			ids = append(ids, o.msg.ID)
		}
	}
	if idx == nil {
		for i := range batch {
			add(&batch[i])
		}
	} else {
		for _, i := range idx {
			add(&batch[i])
		}
	}
	if len(ids) > 0 {
		s.marks.finish(ids...)
	}
}

// writeRetained upserts the retained message of o's topic: the whole message in retain (this
// store's columns), or, in a keyspace without them, the message in msg and its msgid in
// retain, the EMQX way.
func (s *Store) writeRetained(ctx context.Context, o *op) error {
	m := o.msg
	if !s.retainFull {
		stmt, args := s.msgStmt(m, o.ttl)
		if err := s.exec(ctx, stmt, args...); err != nil {
			return err
		}
		return s.exec(ctx, s.q.insRetainRef, m.Topic, m.ID, o.ttl)
	}
	var text, bin any = string(m.Payload), nil
	if !utf8.Valid(m.Payload) {
		text, bin = nil, m.Payload
	}
	return s.exec(ctx, s.q.insRetain, m.Topic, m.ID, arrived(m), text, bin, int(m.QoS), m.From, o.ttl)
}

// positions reads the client's ack positions (acked), by topic.
func (s *Store) positions(ctx context.Context, client string) (map[string]string, error) {
	pos := make(map[string]string)
	iter := s.sess.Query(s.q.selAcked, client).IterContext(ctx)
	var tp, id string
	for iter.Scan(&tp, &id) {
		pos[tp] = id
	}
	if err := iter.Close(); err != nil {
		return nil, err
	}
	return pos, nil
}

// writeAcks moves the client's positions forward to the highest msgid acked per topic in the
// run: it reads them (one partition) and writes those that grow, in one unlogged batch of
// the client's partition. A position never moves back, whatever the order of the acks.
func (s *Store) writeAcks(ctx context.Context, batch []op, run []int) error {
	client := batch[run[0]].client
	want := make(map[string]string)
	var topics []string
	for _, i := range run {
		m := batch[i].msg
		if cur, ok := want[m.Topic]; !ok {
			topics = append(topics, m.Topic)
			want[m.Topic] = m.ID
		} else if m.ID > cur {
			want[m.Topic] = m.ID
		}
	}
	pos, err := s.positions(ctx, client)
	if err != nil {
		return err
	}
	b := s.newBatch()
	for _, tp := range topics {
		if id := want[tp]; id > pos[tp] {
			b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: s.q.insAcked, Args: []any{client, tp, id}, Idempotent: true})
		}
	}
	switch len(b.Entries) {
	case 0:
		return nil
	case 1:
		e := b.Entries[0]
		return s.exec(ctx, e.Stmt, e.Args...)
	}
	return b.ExecContext(ctx)
}

// deleteAcks deletes the client's positions on the topics filter matches: one row for a
// topic name, else the client's rows read and matched.
func (s *Store) deleteAcks(ctx context.Context, client, filter string) error {
	if !isWildcard(filter) {
		return s.exec(ctx, s.q.delAcked, client, filter)
	}
	pos, err := s.positions(ctx, client)
	if err != nil {
		return err
	}
	b := s.newBatch()
	for tp := range pos {
		if topic.Match(filter, tp) {
			b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: s.q.delAcked, Args: []any{client, tp}, Idempotent: true})
		}
	}
	if len(b.Entries) == 0 {
		return nil
	}
	return b.ExecContext(ctx)
}

func isWildcard(filter string) bool { return strings.ContainsAny(filter, "+#") }

// classify tells the writer what an error of a statement means: the node's timeouts and
// overload, and connection errors, are retried (the statements are idempotent: an insert
// keyed by msgid, an upsert of a position or a state); invalid statements or values fail
// the item; a missing table or a permission fails the batch.
func classify(err error) backend.Failure {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping, gocql.ErrCodeTruncate,
			gocql.ErrCodeReadTimeout, gocql.ErrCodeReadFailure:
			return backend.FailRetry
		case gocql.ErrCodeWriteTimeout, gocql.ErrCodeWriteFailure, gocql.ErrCodeServer, gocql.ErrCodeUnprepared:
			return backend.FailUnknown
		case gocql.ErrCodeUnauthorized, gocql.ErrCodeCredentials, gocql.ErrCodeConfig:
			return backend.FailBatch
		case gocql.ErrCodeInvalid, gocql.ErrCodeSyntax:
			if strings.Contains(re.Message(), "unconfigured table") || strings.Contains(re.Message(), "does not exist") {
				return backend.FailBatch
			}
			return backend.FailItem
		}
		return backend.FailItem
	}
	var me gocql.MarshalError
	if errors.As(err, &me) {
		return backend.FailItem
	}
	// The driver's own errors without a server answer: no connection, timeouts, closed
	// connections, the session closing, the writer's deadline.
	return backend.FailUnknown
}
