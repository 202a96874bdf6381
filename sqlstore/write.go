package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
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
	opCustom
)

// op is one queued write. key orders it in the writer. Messages, acks and acked deletes all
// have the key msgStream: one ordered stream, so that mqtt_msg ids grow in the order the
// broker published (fetch returns messages oldest first by id, across topics too), and an
// ack always finds the id of the message it acknowledges (enqueued before it). Client state
// and custom statements are keyed by client ID, retained messages by topic.
type op struct {
	kind   opKind
	key    string
	client string
	node   string
	at     time.Time
	msg    *hook.Message
	filter string        // opAckedDelete
	custom *customAction // opCustom
	vals   *template.Values
}

// size is about how many bytes o holds, for the writer's byte budgets.
func (o op) size() int {
	n := 64 + len(o.key) + len(o.client) + len(o.node) + len(o.filter)
	if o.msg != nil {
		n += o.msg.Size()
	}
	if o.vals != nil {
		n += len(o.vals.ClientID) + len(o.vals.Topic) + len(o.vals.Payload)
	}
	return n
}

// msgStream is the writer key of every op on mqtt_msg and mqtt_acked.
const msgStream = "mqtt_msg"

// maxRowsPerInsert bounds a multi-row INSERT (MySQL: 8 markers a row, 65535 at most).
const maxRowsPerInsert = 1000

// flush writes one batch in one transaction (so that a failed batch leaves nothing behind
// and the writer can retry it, or split it to isolate a bad write).
//
// When the batch fails because one of the store's own tables is missing (an EMQX database
// without it, and no EnsureSchema), the writes into that table fail for good: they are marked
// in res, neither retried (no retry creates a table) nor split one by one. The batch's other
// writes, rolled back with the transaction, are written again (errRolledBack).
func (s *Store) flush(ctx context.Context, batch []op, res *backend.BatchResult) error {
	s.flushCalls.Add(1)
	var err error
	if s.pg != nil {
		err = s.flushPostgres(ctx, batch)
	} else {
		err = s.flushSQL(ctx, batch)
	}
	table := missingTable(err)
	if table == "" {
		return err
	}
	marked := 0
	for i := range batch {
		if batch[i].writes(table) {
			res.Fail(i, err)
			marked++
		}
	}
	switch {
	case marked == 0:
		return err // a custom statement's table: splitting isolates the statement
	case marked == len(batch):
		return nil // every outcome is marked
	}
	return fmt.Errorf("%w: %w", errRolledBack, err)
}

// errRolledBack: the batch's transaction was rolled back because of other writes of the
// batch, which flush marked as failed; the writes it did not mark were not written, and are
// retried.
var errRolledBack = errors.New("rolled back with the failed writes of its batch")

// ownTables are the tables of the store's built-in functions, by the ops that write (or read
// while writing) them.
var ownTables = map[string]func(opKind) bool{
	"mqtt_client": func(k opKind) bool { return k == opConnected || k == opDisconnected },
	"mqtt_msg":    func(k opKind) bool { return k == opMsg || k == opAcked },
	"mqtt_retain": func(k opKind) bool { return k == opRetain || k == opRetainDelete },
	"mqtt_acked":  func(k opKind) bool { return k == opAcked || k == opAckedDelete },
}

// writes reports whether o writes (or reads while writing) the store's own table.
func (o *op) writes(table string) bool {
	f := ownTables[table]
	return f != nil && f(o.kind)
}

// missingTable returns the name (without schema) of the table whose absence err reports:
// PostgreSQL 42P01 (relation "x" does not exist), MySQL 1146 (Table 'db.x' doesn't exist),
// SQLite "no such table: x"; "" for any other error.
func missingTable(err error) string {
	if err == nil {
		return ""
	}
	var name string
	var pe *pgconn.PgError
	var me *mysql.MySQLError
	switch {
	case errors.As(err, &pe) && pe.Code == "42P01":
		_, rest, _ := strings.Cut(pe.Message, `"`)
		name, _, _ = strings.Cut(rest, `"`)
	case errors.As(err, &me) && me.Number == 1146:
		_, rest, _ := strings.Cut(me.Message, "'")
		name, _, _ = strings.Cut(rest, "'")
	default:
		_, rest, ok := strings.Cut(err.Error(), "no such table: ")
		if !ok {
			return ""
		}
		name, _, _ = strings.Cut(rest, " ")
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// flushPostgres sends the batch as one pipeline (one round trip, one implicit transaction:
// pgx sends a single Sync after the batch's statements): each run of message inserts as one
// INSERT ... SELECT FROM unnest(arrays), every other write as its statement. A batch with
// messages first takes the advisory lock of mqtt_msg (msgLock), held until that transaction
// ends, so that message ids become visible in id order whatever the number of writers.
//
// The message inserts go first without ON CONFLICT DO NOTHING, which costs about a third of
// their speed; if one then hits the unique msgid index (a batch written again after an
// unknown outcome), the whole pipeline has rolled back and is sent again with it.
func (s *Store) flushPostgres(ctx context.Context, batch []op) error {
	err := s.sendPostgres(ctx, batch, false)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.TableName == "mqtt_msg" {
		err = s.sendPostgres(ctx, batch, true)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: %s: %w", describeBatch(batch), err)
	}
	return nil
}

func (s *Store) sendPostgres(ctx context.Context, batch []op, onConflict bool) error {
	conn, err := s.pg.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	b := &pgx.Batch{}
	msgs, rest := arrange(batch)
	if len(msgs) > 0 {
		b.Queue(s.d.msgLock)
	}
	for i := 0; i < len(msgs); i += maxRowsPerInsert {
		s.queueMsgs(b, msgs[i:min(i+maxRowsPerInsert, len(msgs))], onConflict)
	}
	for i := range rest {
		for _, st := range s.statements(&rest[i]) {
			if st.adhoc {
				if err := pgFitArgs(ctx, conn.Conn(), st); err != nil {
					return err
				}
			}
			b.Queue(st.sql, st.args...)
		}
	}
	if len(msgs) > 0 && s.testStall != "" {
		b.Queue(s.testStall)
	}
	return conn.SendBatch(ctx, b).Close()
}

func (s *Store) queueMsgs(b *pgx.Batch, ops []op, onConflict bool) {
	q := s.d.msgInsert
	if s.msgText.Load() {
		q = s.d.msgInsertTxt
	}
	if onConflict {
		q += " ON CONFLICT DO NOTHING"
	}
	n := len(ops)
	msgid, sender, topics := make([]string, n), make([]string, n), make([]string, n)
	qos, retain := make([]int32, n), make([]int32, n)
	arrived := make([]time.Time, n)
	for i := range ops {
		m := ops[i].msg
		msgid[i], sender[i], topics[i] = m.ID, m.From, m.Topic
		qos[i], retain[i] = int32(m.QoS), boolInt(m.Retain)
		arrived[i] = ops[i].at.UTC()
	}
	if s.msgText.Load() {
		payload := make([]string, n)
		for i := range ops {
			payload[i] = string(ops[i].msg.Payload)
		}
		b.Queue(q, msgid, sender, topics, qos, retain, payload, arrived)
		return
	}
	payload := make([][]byte, n)
	for i := range ops {
		payload[i] = nonNil(ops[i].msg.Payload)
	}
	b.Queue(q, msgid, sender, topics, qos, retain, payload, arrived)
}

// nonNil keeps an empty payload an empty value rather than NULL.
func nonNil(p []byte) []byte {
	if p == nil {
		return []byte{}
	}
	return p
}

// flushSQL writes the batch in one transaction: MySQL with a multi-row INSERT for each run of
// messages, SQLite with a prepared single-row INSERT per message; other writes with their
// (prepared) statements. On MySQL a transaction with messages first locks the row of
// mqtt_msg_lock (msgLock), so that message ids become visible in id order whatever the number
// of writers; SQLite has one writer at a time by construction.
func (s *Store) flushSQL(ctx context.Context, batch []op) error {
	isMySQL := s.cfg.Dialect == MySQL
	msgs := hasMessages(batch)
	lock := isMySQL && msgs && !s.noMsgLock.Load()
	if isMySQL && msgs && !lock {
		s.noMsgLockWarn.Do(func() {
			s.opts.Logger.Warn("table mqtt_msg_lock is missing (run EnsureSchema): with several brokers writing mqtt_msg, a subscriber may skip messages",
				"store", "sqlstore/mysql")
		})
		if len(batch) <= maxRowsPerInsert && allMessages(batch) && s.testStall == "" {
			// One statement is atomic on its own: no BEGIN and COMMIT round trips.
			q, args := s.mysqlMsgInsert(batch)
			if _, err := s.db.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("sqlstore: write %d messages: %w", len(batch), err)
			}
			return nil
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlstore: %s: begin: %w", describeBatch(batch), err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if lock {
		if err := s.lockMsgs(ctx, tx); err != nil {
			return fmt.Errorf("sqlstore: %s: %w", describeBatch(batch), err)
		}
	}
	if isMySQL {
		var msgs []op
		msgs, batch = arrange(batch)
		for i := 0; i < len(msgs); i += maxRowsPerInsert {
			run := msgs[i:min(i+maxRowsPerInsert, len(msgs))]
			q, args := s.mysqlMsgInsert(run)
			if _, err := tx.ExecContext(ctx, q, args...); err != nil {
				return fmt.Errorf("sqlstore: write %d messages: %w", len(run), err)
			}
		}
	}
	for i := 0; i < len(batch); {
		o := &batch[i]
		if n := ackRun(batch[i:]); n > 1 && isMySQL {
			for _, st := range s.ackedGrouped(batch[i : i+n]) {
				if err := s.txExec(ctx, tx, st); err != nil {
					return fmt.Errorf("sqlstore: write %d acks of %s: %w", n, o.client, err)
				}
			}
			i += n
			continue
		}
		// SQLite: a run of messages through one prepared statement (unless it could not be
		// prepared at open, for lack of a mqtt_msg table: then the generic path below).
		if ps, ok := s.stmts.Load(s.d.msgInsert); ok && o.kind == opMsg {
			stx := tx.StmtContext(ctx, ps.(*sql.Stmt))
			var args []any
			for ; i < len(batch) && batch[i].kind == opMsg; i++ {
				args = s.msgArgs(args[:0], &batch[i])
				if _, err := stx.ExecContext(ctx, args...); err != nil {
					return fmt.Errorf("sqlstore: write (%s): %w", batch[i].describe(), err)
				}
			}
			continue
		}
		for _, st := range s.statements(o) {
			if err := s.txExec(ctx, tx, st); err != nil {
				return fmt.Errorf("sqlstore: write (%s): %w", o.describe(), err)
			}
		}
		i++
	}
	if msgs && s.testStall != "" {
		if _, err := tx.ExecContext(ctx, s.testStall); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlstore: %s: commit: %w", describeBatch(batch), err)
	}
	return nil
}

// lockMsgs locks the one row of mqtt_msg_lock (MySQL) until tx ends: a transaction that
// inserts into mqtt_msg waits for another to commit first, so that ids are assigned in
// commit order. Without the row, a locking read would take a gap lock, which does not
// exclude another: that is an error.
func (s *Store) lockMsgs(ctx context.Context, tx *sql.Tx) error {
	var row *sql.Row
	if ps, ok := s.stmts.Load(s.d.msgLock); ok {
		row = tx.StmtContext(ctx, ps.(*sql.Stmt)).QueryRowContext(ctx)
	} else {
		row = tx.QueryRowContext(ctx, s.d.msgLock)
	}
	var id int64
	if err := row.Scan(&id); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return errors.New("lock mqtt_msg: table mqtt_msg_lock has no row 1 (EnsureSchema inserts it)")
		}
		return fmt.Errorf("lock mqtt_msg: %w", err)
	}
	return nil
}

// arrange returns the messages of batch and its other writes, each in batch order, so that
// a batch's messages go in one multi-row statement however acks interleave them (a
// subscriber acking as messages arrive makes batches of message, ack, message, ack...).
// Moving messages ahead keeps every dependency: of the writes sharing their stream, only an
// ack reads mqtt_msg, and it comes after the message it acknowledges. It copies only when
// messages and other writes are both present.
func arrange(batch []op) (msgs, rest []op) {
	n := 0
	for i := range batch {
		if batch[i].kind == opMsg {
			n++
		}
	}
	switch n {
	case 0:
		return nil, batch
	case len(batch):
		return batch, nil
	}
	msgs, rest = make([]op, 0, n), make([]op, 0, len(batch)-n)
	for i := range batch {
		if batch[i].kind == opMsg {
			msgs = append(msgs, batch[i])
		} else {
			rest = append(rest, batch[i])
		}
	}
	return msgs, rest
}

// ackRun is the number of acks (opAcked) that start ops.
func ackRun(ops []op) int {
	n := 0
	for n < len(ops) && ops[n].kind == opAcked {
		n++
	}
	return n
}

// ackedGrouped returns the statements of a run of acks on MySQL: one per client (and per
// maxRowsPerInsert of its acks) instead of one round trip per ack, with the time of the
// client's last ack. Their effect is that of the acks one by one: each (client, topic)
// position moves forward to the greatest of its acknowledged messages.
func (s *Store) ackedGrouped(acks []op) []stmt {
	var out []stmt
	byClient := map[string][]string{}
	var clients []string
	last := map[string]time.Time{}
	for i := range acks {
		c := acks[i].client
		if _, ok := byClient[c]; !ok {
			clients = append(clients, c)
		}
		byClient[c] = append(byClient[c], acks[i].msg.ID)
		last[c] = acks[i].at
	}
	for _, c := range clients {
		ids := byClient[c]
		for len(ids) > 0 {
			chunk := ids[:min(len(ids), maxRowsPerInsert)]
			ids = ids[len(chunk):]
			args := make([]any, 0, 2+len(chunk))
			args = append(args, c, s.d.timeArg(last[c]))
			for _, id := range chunk {
				args = append(args, id)
			}
			markers := strings.Repeat("?,", len(chunk))
			out = append(out, stmt{sql: fmt.Sprintf(s.d.ackedMany, markers[:len(markers)-1]), args: args})
		}
	}
	return out
}

func hasMessages(batch []op) bool {
	for i := range batch {
		if batch[i].kind == opMsg {
			return true
		}
	}
	return false
}

func allMessages(batch []op) bool {
	for i := range batch {
		if batch[i].kind != opMsg {
			return false
		}
	}
	return true
}

// mysqlMsgInsert is the multi-row INSERT of msgs (all opMsg).
func (s *Store) mysqlMsgInsert(msgs []op) (string, []any) {
	args := make([]any, 0, 8*len(msgs))
	var q strings.Builder
	q.Grow(len(s.d.msgInsert) + len(msgs)*18 + 32)
	q.WriteString(s.d.msgInsert)
	for k := range msgs {
		if k > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?,?,?,?,?,?,?,?)")
		args = s.msgArgs(args, &msgs[k])
	}
	// A duplicate msgid (a retried batch) changes nothing; unlike INSERT IGNORE this does not
	// turn other errors (a too-long topic) into warnings.
	q.WriteString(" ON DUPLICATE KEY UPDATE id = id")
	return q.String(), args
}

// txExec runs st in tx, through the statement start prepared for it (database/sql prepares
// it again on the transaction's connection, once per connection), or directly for a custom
// statement, whose text the user chose.
func (s *Store) txExec(ctx context.Context, tx *sql.Tx, st stmt) error {
	if ps, ok := s.stmts.Load(st.sql); ok && !st.adhoc {
		_, err := tx.StmtContext(ctx, ps.(*sql.Stmt)).ExecContext(ctx, st.args...)
		return err
	}
	_, err := tx.ExecContext(ctx, st.sql, st.args...)
	return err
}

// prepareWrites prepares the statements of the built-in writes before the writer starts: a
// transaction must not wait for a second connection to prepare one (an in-memory SQLite
// database has only one). A statement that cannot be prepared (a store used for custom
// statements only, without the EMQX tables) is left out and run unprepared.
func (s *Store) prepareWrites(ctx context.Context) {
	if s.db == nil {
		return
	}
	d := s.d
	qs := []string{d.connected, d.disconnected, d.retainUpsert, d.retainDelete, d.acked, d.ackedDelete, d.ackedMatch}
	if s.cfg.Dialect == SQLite {
		qs = append(qs, d.msgInsert)
	}
	for _, q := range qs {
		if _, err := s.prepared(ctx, q); err != nil {
			s.opts.Logger.Debug("statement not prepared", "store", "sqlstore/"+s.cfg.Dialect.String(), "statement", firstLine(q), "error", err)
		}
	}
	if s.cfg.Dialect == MySQL {
		_, err := s.prepared(ctx, d.msgLock)
		var me *mysql.MySQLError
		s.noMsgLock.Store(errors.As(err, &me) && me.Number == 1146) // no such table
	}
}

// prepared returns the store-wide prepared statement for q (database/sql prepares it again
// on each connection that runs it, once).
func (s *Store) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if ps, ok := s.stmts.Load(q); ok {
		return ps.(*sql.Stmt), nil
	}
	ps, err := s.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(q, ps); loaded {
		ps.Close()
		return prev.(*sql.Stmt), nil
	}
	return ps, nil
}

func (s *Store) msgArgs(args []any, o *op) []any {
	m := o.msg
	args = append(args, m.ID, m.From)
	if s.d.hasNode {
		args = append(args, nullString(s.node(m.Node)))
	}
	return append(args, m.Topic, int32(m.QoS), boolInt(m.Retain), nonNil(m.Payload), s.d.timeArg(o.at))
}

// stmt is one statement of a write with its arguments.
type stmt struct {
	sql   string
	args  []any
	adhoc bool // a custom statement: not cached as a prepared statement
}

// statements returns what o runs, in order.
func (s *Store) statements(o *op) []stmt {
	d := s.d
	one := func(q string, args ...any) []stmt { return []stmt{{sql: q, args: args}} }
	switch o.kind {
	case opConnected:
		return one(d.connected, o.client, nullString(o.node), d.timeArg(o.at))
	case opDisconnected:
		return one(d.disconnected, o.client, nullString(o.node), d.timeArg(o.at))
	case opMsg: // SQLite (PostgreSQL and MySQL batch runs of messages)
		return one(d.msgInsert, s.msgArgs(nil, o)...)
	case opRetain:
		m := o.msg
		var payload any = nonNil(m.Payload)
		if s.retainText.Load() {
			payload = string(m.Payload)
		}
		if d.hasNode {
			return one(d.retainUpsert, m.Topic, m.ID, m.From, nullString(s.node(m.Node)), int32(m.QoS), payload, d.timeArg(o.at))
		}
		return one(d.retainUpsert, m.Topic, m.ID, m.From, int32(m.QoS), payload, d.timeArg(o.at))
	case opRetainDelete:
		return one(d.retainDelete, o.msg.Topic)
	case opAcked:
		return one(d.acked, o.client, o.msg.Topic, d.timeArg(o.at), o.msg.ID)
	case opAckedDelete:
		p := planFilter(o.filter)
		if p.exact {
			return one(d.ackedDelete, o.client, o.filter)
		}
		return one(d.ackedMatch, o.client, d.matchArg(p))
	case opCustom:
		out := make([]stmt, len(o.custom.stmts))
		for i, cs := range o.custom.stmts {
			out[i] = stmt{sql: cs.Text(), args: cs.Args(nil, o.vals), adhoc: true}
		}
		return out
	}
	panic(fmt.Sprintf("sqlstore: unknown write kind %d", o.kind))
}

// describeBatch names a batch in an error message: its write when it has one (as when the
// writer has isolated a failing write), else its size.
func describeBatch(batch []op) string {
	if len(batch) == 1 {
		return "write (" + batch[0].describe() + ")"
	}
	return fmt.Sprintf("write of %d", len(batch))
}

// describe names o in an error message.
func (o *op) describe() string {
	switch o.kind {
	case opConnected:
		return "client connected " + o.client
	case opDisconnected:
		return "client disconnected " + o.client
	case opRetain:
		return "retain on " + o.msg.Topic
	case opRetainDelete:
		return "retain delete on " + o.msg.Topic
	case opAcked:
		return "ack of " + o.msg.ID + " by " + o.client
	case opAckedDelete:
		return "acked delete of " + o.filter + " for " + o.client
	case opCustom:
		return "rule " + o.custom.rule
	case opMsg:
		return "message " + o.msg.ID
	}
	return "write"
}

// textPayload checks that p can be stored in a text column.
func textPayload(p []byte) error {
	if !utf8.Valid(p) {
		return fmt.Errorf("%w: invalid UTF-8", ErrPayloadNotText)
	}
	if bytes.IndexByte(p, 0) >= 0 {
		return fmt.Errorf("%w: NUL byte", ErrPayloadNotText)
	}
	return nil
}
