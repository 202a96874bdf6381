package mongostore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

type opKind uint8

const (
	opConnected opKind = iota + 1
	opDisconnected
	opMsg
	opRetain
	opRetainDelete
	opAcked
	opAckedDelete
)

// op is one queued write. Messages, acks and acked deletes have the key msgStream: one
// ordered stream, so that a broker's messages get _ids in the order it published them and an
// ack always finds the message it names. Client state is keyed by client ID, retained
// messages by topic.
type op struct {
	kind     opKind
	key      string
	client   string
	node     string
	at       time.Time
	msg      *hook.Message
	filter   string // opAckedDelete
	expireAt time.Time
	format   payloadFormat
}

const msgStream = "mqtt_msg"

func (o op) size() int {
	n := 64 + len(o.key) + len(o.client)
	if o.msg != nil {
		n += o.msg.Size()
	}
	return n
}

func (o op) stream() bool { return o.kind == opMsg || o.kind == opAcked || o.kind == opAckedDelete }

// errLockBusy: the mqtt_msg lock was not free within the flush's time; the batch is retried.
var errLockBusy = errors.New("mqtt_msg lock held by another writer")

// flush writes one batch: its runs of consecutive writes of one kind, in order, each as one
// command. A batch with messages or acks holds the mqtt_msg lock throughout.
func (s *Store) flush(ctx context.Context, batch []op, res *backend.BatchResult) error {
	locked := false
	for i := range batch {
		if batch[i].kind == opMsg || batch[i].kind == opAcked {
			locked = true
			break
		}
	}
	if locked {
		if err := s.acquire(ctx); err != nil {
			return s.wrapf(err, "mongostore: write of %d", len(batch))
		}
		defer s.release()
	}
	ids := map[string]int64{} // msgid -> _id of the messages of this batch
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && sameRun(batch[i].kind, batch[j].kind) {
			j++
		}
		var err error
		switch batch[i].kind {
		case opMsg:
			err = s.insertMsgs(ctx, batch[i:j], i, res, ids)
		case opAcked:
			err = s.writeAcks(ctx, batch[i:j], i, res, ids)
		case opAckedDelete:
			for k := i; k < j; k++ {
				o := &batch[k]
				if _, err = s.acked.DeleteMany(ctx, bson.D{{Key: "clientid", Value: o.client}, {Key: "topic", Value: topicCond(o.filter)}}); err != nil {
					break
				}
			}
		default:
			err = s.writeOthers(ctx, batch[i:j], i, res)
		}
		if err != nil {
			return s.wrapf(err, "mongostore: write of %d", j-i)
		}
		i = j
	}
	return nil
}

// sameRun reports whether writes of kinds a and b go into one command.
func sameRun(a, b opKind) bool {
	other := func(k opKind) bool {
		return k == opConnected || k == opDisconnected || k == opRetain || k == opRetainDelete
	}
	return a == b && a != opAckedDelete || other(a) && other(b)
}

var lockSeq atomic.Uint64

// How long a store keeps the mqtt_msg lock: it keeps it between batches that follow each
// other closely (released lockIdle after the last), but not beyond lockHold from when it
// took it, so that another broker waits lockHold plus a batch at most. While it holds the
// lock it reserves _ids lockReserve at a time: ids reserved under one holding are used only
// under it, so they stay in commit order; the ones left at release are skipped (gaps are
// harmless).
const (
	lockHold    = 50 * time.Millisecond
	lockIdle    = 5 * time.Millisecond
	lockReserve = 1024
)

// msgLock is the store's side of the mqtt_msg lock. All fields are guarded by mu.
type msgLock struct {
	mu     sync.Mutex
	token  string    // the lock document's owner while the store holds it; "" otherwise
	since  time.Time // when it was taken
	inUse  bool      // a flush is using it
	gen    uint64    // bumped by every use, so that a stale idle release does nothing
	next   int64     // reserved _ids [next, end)
	end    int64
	closed bool
}

// acquire makes sure the store holds the mqtt_msg lock for a flush: the lock it holds from
// an earlier batch if taken less than lockHold ago, or a new one. A lock is taken by
// inserting its document, whose _id the server keeps unique (the one primitive atomic on
// every MongoDB-compatible server, FerretDB included); one older than its lease (a writer
// that died) is taken over.
func (s *Store) acquire(ctx context.Context) error {
	l := &s.mlock
	l.mu.Lock()
	l.gen++
	if l.token != "" && time.Since(l.since) < lockHold {
		l.inUse = true
		l.mu.Unlock()
		return nil
	}
	yield := l.token != ""
	old := l.token
	l.token, l.next, l.end = "", 0, 0
	l.mu.Unlock()
	if yield { // held for lockHold: let a waiting broker have it before taking it again
		s.deleteLock(old)
		t := time.NewTimer(3 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", errLockBusy, ctx.Err())
		case <-t.C:
		}
	}
	token := fmt.Sprintf("%s-%d", s.owner, lockSeq.Add(1))
	for {
		_, err := s.lock.InsertOne(ctx, bson.D{{Key: "_id", Value: ColMsg}, {Key: "owner", Value: token},
			{Key: "until", Value: bson.NewDateTimeFromTime(time.Now().Add(s.lease))}})
		if err == nil {
			break
		}
		if !mongo.IsDuplicateKeyError(err) {
			return fmt.Errorf("lock %s: %w", ColMsg, err)
		}
		var cur struct {
			Owner string    `bson:"owner"`
			Until time.Time `bson:"until"`
		}
		if err := s.lock.FindOne(ctx, bson.D{{Key: "_id", Value: ColMsg}}).Decode(&cur); err == nil {
			switch {
			case strings.HasPrefix(cur.Owner, s.owner+"-"):
				// This store's own lock, which it does not hold: taken by an insert whose
				// answer was lost, or left by a release that failed (the server was
				// unreachable). Its flushes take the lock one at a time (one ordered
				// stream), so nothing uses it: take it back at once rather than wait for
				// its lease.
				s.opts.Logger.Debug("taking back a lost mqtt_msg lock of this store", "store", "mongostore", "owner", cur.Owner)
				if _, err := s.lock.DeleteOne(ctx, bson.D{{Key: "_id", Value: ColMsg}, {Key: "owner", Value: cur.Owner}}); err != nil {
					return fmt.Errorf("lock %s: %w", ColMsg, err)
				}
				continue
			case time.Now().After(cur.Until):
				s.opts.Logger.Warn("taking over an expired mqtt_msg lock (a writer died holding it?)", "store", "mongostore", "owner", cur.Owner, "until", cur.Until)
				_, _ = s.lock.DeleteOne(ctx, bson.D{{Key: "_id", Value: ColMsg}, {Key: "owner", Value: cur.Owner}})
				continue
			}
		}
		t := time.NewTimer(time.Duration(500+rand.IntN(1500)) * time.Microsecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", errLockBusy, ctx.Err())
		case <-t.C:
		}
	}
	l.mu.Lock()
	l.token, l.since, l.inUse = token, time.Now(), true
	closed := l.closed
	l.mu.Unlock()
	if closed {
		s.releaseNow()
	}
	return nil
}

// release ends a flush's use of the lock: the lock is kept for lockIdle, for the next batch.
func (s *Store) release() {
	l := &s.mlock
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inUse = false
	l.gen++
	if l.closed {
		go s.releaseNow()
		return
	}
	gen := l.gen
	time.AfterFunc(lockIdle, func() {
		l.mu.Lock()
		if l.gen != gen || l.inUse || l.token == "" {
			l.mu.Unlock()
			return
		}
		token := l.token
		l.token, l.next, l.end = "", 0, 0
		l.mu.Unlock()
		s.deleteLock(token)
	})
}

// releaseNow gives the lock back at once if the store holds it and no flush uses it (Close).
func (s *Store) releaseNow() {
	l := &s.mlock
	l.mu.Lock()
	l.closed = true
	if l.token == "" || l.inUse {
		l.mu.Unlock()
		return
	}
	token := l.token
	l.token, l.next, l.end = "", 0, 0
	l.gen++
	l.mu.Unlock()
	s.deleteLock(token)
}

func (s *Store) deleteLock(token string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.QueryTimeout)
	defer cancel()
	if _, err := s.lock.DeleteOne(ctx, bson.D{{Key: "_id", Value: ColMsg}, {Key: "owner", Value: token}}); err != nil {
		s.opts.Logger.Warn("mqtt_msg lock not released; it expires after its lease", "store", "mongostore", "lease", s.lease, "error", err)
	}
}

// nextIDs returns the first of n _ids of mqtt_msg, from those reserved under the lock the
// store holds, reserving more ($inc on the counter) when they run out.
func (s *Store) nextIDs(ctx context.Context, n int) (int64, error) {
	l := &s.mlock
	l.mu.Lock()
	if l.end-l.next >= int64(n) {
		first := l.next
		l.next += int64(n)
		l.mu.Unlock()
		return first, nil
	}
	l.mu.Unlock()
	k := max(n, lockReserve)
	var doc struct {
		Seq int64 `bson:"seq"`
	}
	err := s.seq.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: ColMsg}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "seq", Value: int64(k)}}}},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&doc)
	if err != nil {
		return 0, fmt.Errorf("reserve %d ids: %w", k, err)
	}
	first := doc.Seq - int64(k) + 1
	l.mu.Lock()
	l.next, l.end = first+int64(n), doc.Seq+1
	l.mu.Unlock()
	return first, nil
}

// msgDoc is a message's document in mqtt_msg.
func msgDoc(id int64, o *op) bson.D {
	m := o.msg
	d := bson.D{
		{Key: "_id", Value: id},
		{Key: "topic", Value: m.Topic},
		{Key: "msgid", Value: m.ID},
		{Key: "sender", Value: m.From},
		{Key: "node", Value: o.node},
		{Key: "qos", Value: int32(m.QoS)},
		{Key: "retain", Value: m.Retain},
		{Key: "payload", Value: payloadValue(m.Payload, o.format)},
		{Key: "arrived", Value: bson.NewDateTimeFromTime(o.at)},
	}
	if !o.expireAt.IsZero() {
		d = append(d, bson.E{Key: "expire_at", Value: bson.NewDateTimeFromTime(o.expireAt)})
	}
	return d
}

// insertMsgs inserts a run of messages (batch[off:off+len(run)]) with one unordered
// InsertMany. A duplicate msgid (a batch written again after an unknown outcome, or a message
// stored by two rules) is success for that message; another error of one document fails it.
func (s *Store) insertMsgs(ctx context.Context, run []op, off int, res *backend.BatchResult, ids map[string]int64) error {
	first, err := s.nextIDs(ctx, len(run))
	if err != nil {
		return err
	}
	docs := make([]any, len(run))
	for k := range run {
		docs[k] = msgDoc(first+int64(k), &run[k])
	}
	_, err = s.msg.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	failed := map[int]bool{}
	if err != nil {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			return err
		}
		for _, we := range bwe.WriteErrors {
			failed[we.Index] = true
			switch {
			case we.Code == 11000 || we.Code == 11001:
				// stored before: its _id is the earlier one, looked up by acks
			case transient(we):
				res.Retry(off+we.Index, fmt.Errorf("message %s: %w", run[we.Index].msg.ID, we))
			default:
				res.Fail(off+we.Index, fmt.Errorf("message %s on %q: %w", run[we.Index].msg.ID, run[we.Index].msg.Topic, we))
			}
		}
	}
	for k := range run {
		if !failed[k] {
			ids[run[k].msg.ID] = first + int64(k)
		}
	}
	return nil
}

// writeAcks moves the positions of a run of acks: each to the _id of the acked message, if
// greater ($max: a position never moves back). An ack of a message not in mqtt_msg (not
// stored, or not yet written by another broker) changes nothing.
func (s *Store) writeAcks(ctx context.Context, run []op, off int, res *backend.BatchResult, ids map[string]int64) error {
	var missing []string
	for k := range run {
		if _, ok := ids[run[k].msg.ID]; !ok {
			missing = append(missing, run[k].msg.ID)
		}
	}
	if len(missing) > 0 {
		cur, err := s.msg.Find(ctx, bson.D{{Key: "msgid", Value: bson.D{{Key: "$in", Value: missing}}}},
			options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "msgid", Value: 1}}))
		if err != nil {
			return fmt.Errorf("find acked messages: %w", err)
		}
		var found []struct {
			ID    any    `bson:"_id"`
			MsgID string `bson:"msgid"`
		}
		if err := cur.All(ctx, &found); err != nil {
			return fmt.Errorf("find acked messages: %w", err)
		}
		for _, f := range found {
			ids[f.MsgID] = toInt64(f.ID)
		}
	}
	// One update per position: the greatest _id acked on it in the run ($max is commutative).
	type pos struct{ client, topic string }
	best := map[pos]int{} // -> index in run of the ack with the greatest _id
	var order []pos
	for k := range run {
		id, ok := ids[run[k].msg.ID]
		if !ok {
			continue
		}
		p := pos{run[k].client, run[k].msg.Topic}
		if b, seen := best[p]; !seen {
			best[p] = k
			order = append(order, p)
		} else if ids[run[b].msg.ID] < id {
			best[p] = k
		}
	}
	var models []mongo.WriteModel
	var index []int // models[i] is run[index[i]]
	for _, p := range order {
		k := best[p]
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: positionID(p.client, p.topic)}}).
			SetUpdate(bson.D{
				{Key: "$max", Value: bson.D{{Key: "mongo_id", Value: ids[run[k].msg.ID]}}},
				{Key: "$set", Value: bson.D{{Key: "clientid", Value: p.client}, {Key: "topic", Value: p.topic}}},
			}).
			SetUpsert(true))
		index = append(index, k)
	}
	if len(models) == 0 {
		return nil
	}
	err := s.bulkWrite(ctx, s.acked, models, off, index, &ackResult{s: s, ctx: ctx, run: run, off: off, ids: ids, res: res}, false)
	return err
}

// positionID is the _id of the store's mqtt_acked document for a client and topic: the
// length of the client ID, ':', the client ID, '/', the topic (unambiguous whatever they
// hold). Keyed by _id, a position is found through the primary key, which FerretDB uses
// (it scans the collection for any other filter); the document also holds the spec's
// clientid and topic fields, by which everything reads it.
func positionID(client, topic string) string {
	return strconv.Itoa(len(client)) + ":" + client + "/" + topic
}

// maxBulk bounds the writes of one BulkWrite command. FerretDB v1 (on SQLite) was seen to
// stall, past any timeout, on one command updating a hundred or more existing documents, and
// its upserts scan the collection: small commands keep each round trip short. MongoDB takes
// 100,000; 50 costs it little.
const maxBulk = 50

// bulkWrite runs models (models[i] is batch[off+index[i]]) on col in commands of maxBulk,
// marking per-write outcomes in res (see markBulk). With ordered, a failure stops it: the
// writes after the failed one are retried. An error that is not per-write is returned for
// the writes not yet done.
func (s *Store) bulkWrite(ctx context.Context, col *mongo.Collection, models []mongo.WriteModel, off int, index []int, res marker, ordered bool) error {
	for c := 0; c < len(models); c += maxBulk {
		e := min(c+maxBulk, len(models))
		_, err := col.BulkWrite(ctx, models[c:e], options.BulkWrite().SetOrdered(ordered))
		if err == nil {
			continue
		}
		if err := s.markBulk(err, off, index[c:e], res, ordered); err != nil {
			return err
		}
		if ordered {
			for _, k := range index[e:] {
				res.Retry(off+k, errors.New("not written: an earlier write of its batch failed"))
			}
			return errStopped
		}
	}
	return nil
}

// errStopped: an ordered bulk write stopped at a failed write; every later write is marked.
var errStopped = errors.New("stopped at a failed write")

// writeOthers writes a run of client states and retained messages with one ordered
// BulkWrite (the order of one key's writes is kept).
func (s *Store) writeOthers(ctx context.Context, run []op, off int, res *backend.BatchResult) error {
	type group struct {
		col    *mongo.Collection
		models []mongo.WriteModel
		index  []int
	}
	// Consecutive writes on one collection go in one command.
	var groups []*group
	for k := range run {
		col, m := s.otherModel(&run[k])
		if len(groups) == 0 || groups[len(groups)-1].col != col {
			groups = append(groups, &group{col: col})
		}
		g := groups[len(groups)-1]
		g.models, g.index = append(g.models, m), append(g.index, k)
	}
	for gi, g := range groups {
		err := s.bulkWrite(ctx, g.col, g.models, off, g.index, &otherResult{s: s, ctx: ctx, run: run, off: off, res: res}, true)
		if err == nil {
			continue
		}
		// the groups after this one were not written: retry them
		for _, later := range groups[gi+1:] {
			for _, k := range later.index {
				res.Retry(off+k, errors.New("not written: an earlier write of its batch failed"))
			}
		}
		if errors.Is(err, errStopped) {
			return nil // every write of the run is marked or done
		}
		return err
	}
	return nil
}

// otherModel returns the collection and the write of a client state or retained message.
// Client states are upserted by _id = client ID, retained messages by _id = topic (besides
// their clientid and topic fields): a primary-key upsert, which two writers racing cannot
// turn into two documents even where upserts are not atomic (FerretDB), and which FerretDB
// finds without scanning the collection. A retained message is deleted by its topic field,
// so that a document EMQX wrote (ObjectId _id) goes too.
func (s *Store) otherModel(o *op) (*mongo.Collection, mongo.WriteModel) {
	switch o.kind {
	case opRetainDelete:
		return s.retain, mongo.NewDeleteManyModel().SetFilter(bson.D{{Key: "topic", Value: o.msg.Topic}})
	case opRetain:
		return s.retain, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: o.msg.Topic}}).SetUpsert(true).SetUpdate(otherUpdate(o))
	}
	return s.clientCol, mongo.NewUpdateOneModel().SetFilter(bson.D{{Key: "_id", Value: o.client}}).SetUpsert(true).SetUpdate(otherUpdate(o))
}

// otherUpdate is the update of a client state or retained message.
func otherUpdate(o *op) bson.D {
	var set bson.D
	switch o.kind {
	case opConnected:
		set = bson.D{{Key: "clientid", Value: o.client}, {Key: "state", Value: int32(1)}, {Key: "node", Value: o.node},
			{Key: "online_at", Value: bson.NewDateTimeFromTime(o.at)}, {Key: "offline_at", Value: nil}}
	case opDisconnected:
		set = bson.D{{Key: "clientid", Value: o.client}, {Key: "state", Value: int32(0)}, {Key: "node", Value: o.node},
			{Key: "offline_at", Value: bson.NewDateTimeFromTime(o.at)}}
	case opRetain:
		m := o.msg
		set = bson.D{{Key: "topic", Value: m.Topic}, {Key: "msgid", Value: m.ID}, {Key: "sender", Value: m.From},
			{Key: "node", Value: o.node}, {Key: "qos", Value: int32(m.QoS)},
			{Key: "payload", Value: payloadValue(m.Payload, o.format)}, {Key: "arrived", Value: bson.NewDateTimeFromTime(o.at)}}
	}
	return bson.D{{Key: "$set", Value: set}}
}

// otherResult: a duplicate key on an upsert by _id is either two writers racing where
// upserts are not atomic (the other inserted the document between this one's look and its
// insert), or the unique index on clientid or topic holding a document the store did not key
// by _id (an EMQX database's, with an ObjectId). Either way the document is there: it is
// updated by its clientid or topic field instead. If that finds nothing (deleted meanwhile),
// the write is retried.
type otherResult struct {
	s   *Store
	ctx context.Context
	run []op
	off int
	res *backend.BatchResult
}

func (r *otherResult) Retry(i int, err error) { r.res.Retry(i, err) }
func (r *otherResult) Fail(i int, err error)  { r.res.Fail(i, err) }
func (r *otherResult) Duplicate(i int, err error) {
	o := &r.run[i-r.off]
	col, filter := r.s.clientCol, bson.D{{Key: "clientid", Value: o.client}}
	if o.kind == opRetain {
		col, filter = r.s.retain, bson.D{{Key: "topic", Value: o.msg.Topic}}
	}
	ur, uerr := col.UpdateOne(r.ctx, filter, otherUpdate(o))
	switch {
	case uerr != nil:
		r.res.Retry(i, uerr)
	case ur.MatchedCount == 0 && !r.s.unack:
		r.res.Retry(i, err)
	}
}

// markBulk marks the outcome of a BulkWrite's models (models[i] is batch[off+index[i]]): a
// duplicate key (two upserts racing on a unique index) or a transient error retries the
// write, another error fails it. With ordered, the models after the failed one were not run:
// they are retried. Errors that are not per-write are returned.
func (s *Store) markBulk(err error, off int, index []int, res marker, ordered bool) error {
	if err == nil {
		return nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return err
	}
	last := -1
	for _, we := range bwe.WriteErrors {
		i := off + index[we.Index]
		if we.Code == 11000 || we.Code == 11001 {
			res.Duplicate(i, we)
		} else if transient(we) {
			res.Retry(i, we)
		} else {
			res.Fail(i, we)
		}
		last = max(last, we.Index)
	}
	if ordered {
		for k := last + 1; k < len(index); k++ {
			res.Retry(off+index[k], errors.New("not written: an earlier write of its batch failed"))
		}
	}
	return nil
}

// marker is where bulkWrite marks outcomes: a BatchResult, with what a duplicate key means.
type marker interface {
	Retry(i int, err error)
	Fail(i int, err error)
	Duplicate(i int, err error)
}

// ackResult: a duplicate key on a position's upsert by _id is a unique {clientid, topic}
// index (made by an older version of the store, or by hand) holding a position the store did
// not key by _id: that document is moved instead ($max, by clientid and topic).
type ackResult struct {
	s   *Store
	ctx context.Context
	run []op
	off int
	ids map[string]int64
	res *backend.BatchResult
}

func (r *ackResult) Retry(i int, err error) { r.res.Retry(i, err) }
func (r *ackResult) Fail(i int, err error)  { r.res.Fail(i, err) }
func (r *ackResult) Duplicate(i int, err error) {
	o := &r.run[i-r.off]
	_, uerr := r.s.acked.UpdateOne(r.ctx, bson.D{{Key: "clientid", Value: o.client}, {Key: "topic", Value: o.msg.Topic}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "mongo_id", Value: r.ids[o.msg.ID]}}}})
	if uerr != nil {
		r.res.Retry(i, uerr)
	}
}
