package timescale

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/topic"
	"github.com/mqttstore/mqttstore/tsdb"
)

// Config configures a Store.
type Config struct {
	// DSN is a pgx connection string (postgres://user:password@host:port/database?...).
	// Ignored when Pool is set.
	DSN string
	// Pool is a pool of the caller's to use (and not close); nil: the Store opens one from
	// DSN with Options.PoolSize connections.
	Pool *pgxpool.Pool
	// Templates are the statement templates (emqx_backend_timescale.tmpl). Required.
	Templates *template.Set[template.TimescaleTemplate]
	// Options are the writer's settings.
	Options backend.Options
}

// Store is a TimescaleDB (PostgreSQL) sink: a hook.Backend whose one function,
// on_message_publish, turns each message into the INSERT statements of the templates of its
// topic and runs them in batches. It is safe for concurrent use.
type Store struct {
	cfg     Config
	opts    backend.Options
	pool    *pgxpool.Pool
	ownPool bool
	w       *backend.Writer[item]
	once    sync.Once
}

// item is one message's statements, or why it has none.
type item struct {
	key   string
	stmts []template.TimescaleInsert
	err   error
}

// Open returns a Store running its statements on cfg.Pool, or on a pool it opens from
// cfg.DSN (connecting lazily: a server that is down is retried by the writer).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Templates == nil {
		return nil, fmt.Errorf("timescale: %w: no templates (Config.Templates)", hook.ErrConfig)
	}
	s := &Store{cfg: cfg, opts: cfg.Options.WithDefaults(), pool: cfg.Pool}
	if s.pool == nil {
		pc, err := pgxpool.ParseConfig(cfg.DSN)
		if err != nil {
			return nil, fmt.Errorf("timescale: %w: %w", hook.ErrConfig, err)
		}
		if pc.ConnConfig.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
			return nil, fmt.Errorf("timescale: %w: the simple protocol splices arguments into statements; the sink binds them", hook.ErrConfig)
		}
		pc.MaxConns = int32(s.opts.PoolSize)
		if pc.ConnConfig.ConnectTimeout == 0 {
			pc.ConnConfig.ConnectTimeout = s.opts.ConnectTimeout
		}
		if s.opts.TLS != nil {
			pc.ConnConfig.TLSConfig = s.opts.TLS
			pc.ConnConfig.Fallbacks = nil
		}
		// A pooled connection the server (or the network) closed while it was idle would
		// take the next batch and lose its answer: an unknown outcome, a failed batch.
		// Such a connection is dropped before use, and the batch runs on another.
		pc.PrepareConn = func(_ context.Context, c *pgx.Conn) (bool, error) {
			return !peerClosed(c.PgConn().Conn()), nil
		}
		if s.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
			return nil, fmt.Errorf("timescale: %w: %w", hook.ErrConfig, err)
		}
		s.ownPool = true
	}
	s.w = backend.NewWriter(backend.WriterConfig[item]{
		Store:    "timescale",
		Options:  s.opts,
		Flush:    s.flush,
		Key:      func(it item) string { return it.key },
		Classify: classify,
		// The templates' statements are plain INSERTs: run twice, they store two rows.
		NotIdempotent: true,
	})
	return s, nil
}

// Prepare accepts on_message_publish at message.publish and nothing else.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	if err := tsdb.CheckRule(r); err != nil {
		return nil, err
	}
	return &publish{s: s, rule: r.Name}, nil
}

type publish struct {
	s    *Store
	rule string
}

// Write renders the message's statements and enqueues them; a message its templates do not
// apply to is enqueued as a failure, counted and logged by the writer.
func (a *publish) Write(ctx context.Context, e hook.Event) error {
	m, err := tsdb.PublishedMessage(e)
	if err != nil {
		return err
	}
	return a.s.w.EnqueueContext(ctx, a.s.render(a.rule, m))
}

func (s *Store) render(rule string, m *hook.Message) item {
	fail := func(err error) item {
		return item{key: m.Topic, err: fmt.Errorf("rule %s, message %s on %q: %w", rule, m.ID, m.Topic, err)}
	}
	var tbuf [4]*template.TimescaleTemplate
	ts := s.cfg.Templates.Select(tbuf[:0], m.Topic, topic.Match)
	if len(ts) == 0 {
		return fail(errors.New("no template for the topic"))
	}
	v := tsdb.Values(m)
	it := item{key: m.Topic}
	for _, t := range ts {
		var err error
		if it.stmts, err = t.Render(it.stmts, &v); err != nil {
			return fail(err)
		}
	}
	return it
}

// errRolledBack: the batch's implicit transaction was rolled back because of a statement of
// another message, which flush marked as failed; this message was not written.
var errRolledBack = errors.New("rolled back with a failed statement of its batch")

// classify: rolled-back writes, connections that could not be made and connections that
// failed before sending are retried; a statement's own error splits the batch; a connection
// lost mid-batch is an unknown outcome (failed, the INSERTs not being idempotent).
func classify(err error) backend.Failure {
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	switch {
	case errors.Is(err, errRolledBack):
		return backend.FailRetry
	case errors.As(err, &pe):
		switch pe.Code[:2] {
		case "08", "53", "57", "40": // connection, resources, shutdown, serialization/deadlock
			return backend.FailRetry
		}
		return backend.FailItem
	case errors.As(err, &ce): // no connection, so nothing sent: the server is down
		return backend.FailRetry
	case pgconn.SafeToRetry(err): // nothing was sent
		return backend.FailRetry
	}
	return backend.FailUnknown
}

// flush runs the batch's statements as one pgx.Batch: one round trip, one implicit
// transaction. When a statement fails, nothing of the batch is stored: the message it came
// from fails and the others are run again.
func (s *Store) flush(ctx context.Context, batch []item, res *backend.BatchResult) error {
	b := &pgx.Batch{}
	var owner []int // item of each queued statement
	for i := range batch {
		if batch[i].err != nil {
			res.Fail(i, batch[i].err)
			continue
		}
		for _, st := range batch[i].stmts {
			b.Queue(st.SQL, st.Args...)
			owner = append(owner, i)
		}
	}
	if len(owner) == 0 {
		return nil
	}
	br := s.pool.SendBatch(ctx, b)
	var failedAt = -1
	var err error
	for k := range owner {
		if _, err = br.Exec(); err != nil {
			failedAt = k
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return nil
	}
	// A value the server refused (SQLSTATE class 22 or 23) is refused when its statement
	// runs, so the statement that failed is the one Exec reported. Errors of the statement
	// itself (class 42: a missing table, bad SQL) may come while pgx prepares the batch's
	// statements, before any runs: those split the batch until the statement's messages
	// fail alone.
	var pe *pgconn.PgError
	if failedAt < 0 || !errors.As(err, &pe) || !dataError(pe.Code) {
		return err
	}
	bad := owner[failedAt]
	res.Fail(bad, fmt.Errorf("statement %s: %w", stmtOf(batch, owner, failedAt).Name, err))
	return fmt.Errorf("%w: %w", errRolledBack, err)
}

// stmtOf returns the k-th statement queued.
func stmtOf(batch []item, owner []int, k int) template.TimescaleInsert {
	i := owner[k]
	first := k
	for first > 0 && owner[first-1] == i {
		first--
	}
	return batch[i].stmts[k-first]
}

// dataError reports whether SQLSTATE code is about the values bound (data exceptions,
// integrity constraint violations) rather than the statement.
func dataError(code string) bool {
	return strings.HasPrefix(code, "22") || strings.HasPrefix(code, "23")
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Flush returns once everything enqueued before it is written or counted.
func (s *Store) Flush(ctx context.Context) error { return s.w.Flush(ctx) }

// Stats returns the write counters.
func (s *Store) Stats() backend.Stats { return s.w.Stats() }

// Close writes out the queue (giving up when ctx is done) and closes the pool it opened.
func (s *Store) Close(ctx context.Context) error {
	err := s.w.Close(ctx)
	s.once.Do(func() {
		if s.ownPool {
			s.pool.Close()
		}
	})
	return err
}
