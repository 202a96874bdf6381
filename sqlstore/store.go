package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// Dialect is the database a Store talks to.
type Dialect uint8

const (
	// SQLite (modernc.org/sqlite, pure Go) is the zero value: the embedded default.
	SQLite Dialect = iota
	// MySQL is MySQL or MariaDB (github.com/go-sql-driver/mysql).
	MySQL
	// Postgres is PostgreSQL (github.com/jackc/pgx/v5, with its own pool).
	Postgres
)

var dialectNames = [...]string{SQLite: "sqlite", MySQL: "mysql", Postgres: "postgres"}

func (d Dialect) String() string {
	if int(d) < len(dialectNames) {
		return dialectNames[d]
	}
	return fmt.Sprintf("Dialect(%d)", uint8(d))
}

// ParseDialect returns the dialect named s: "sqlite", "mysql" (or "mariadb"), "postgres" (or
// "postgresql", "pgsql", as in EMQX's backend.pgsql keys).
func ParseDialect(s string) (Dialect, error) {
	switch strings.ToLower(s) {
	case "sqlite", "sqlite3":
		return SQLite, nil
	case "mysql", "mariadb":
		return MySQL, nil
	case "postgres", "postgresql", "pgsql":
		return Postgres, nil
	}
	return 0, fmt.Errorf("sqlstore: unknown dialect %q (want sqlite, mysql or postgres)", s)
}

// Sentinel errors callers branch on with errors.Is (besides those of package backend).
var (
	// ErrPayloadNotText: the payload column of an existing EMQX PostgreSQL table is text, and
	// a payload is not valid UTF-8 or holds a NUL byte, so it cannot be stored there. Write
	// returns it at once; Config.MigratePayload converts the column to bytea.
	ErrPayloadNotText = errors.New("payload is not text and the payload column is text")
	// ErrValueTooLong: a client ID, topic, message ID or node name is longer than its
	// column (varchar(64), varchar(255), or an existing table's width): Write refuses the
	// event, which the store counts as failed. It wraps hook.ErrInvalidEvent.
	ErrValueTooLong = fmt.Errorf("value longer than its column: %w", hook.ErrInvalidEvent)
)

// Config configures a Store. The zero value is a SQLite store without a DSN, which Open
// rejects: every other zero field means a default.
type Config struct {
	Dialect Dialect
	// DSN is where the database is:
	//   - Postgres: a pgx/libpq URL or key=value string ("postgres://user:pw@host/db");
	//   - MySQL: a go-sql-driver/mysql DSN ("user:pw@tcp(host:3306)/db");
	//   - SQLite: a file name or "file:" URI. WAL mode, a busy timeout and immediate write
	//     transactions are added unless the DSN sets them. ":memory:" is a private in-memory
	//     database, on a single connection.
	DSN string
	// Options are the pool, batching, queue and retry settings shared by all stores.
	// PoolSize is the connection pool of each dialect.
	Options backend.Options
	// EnsureSchema makes Open create the tables and indexes that are missing (see
	// Store.EnsureSchema).
	EnsureSchema bool
	// MigratePayload lets EnsureSchema convert the text payload columns of existing EMQX
	// PostgreSQL tables to bytea (ALTER TABLE ... TYPE bytea USING convert_to(payload,
	// 'UTF8')), which rewrites the tables. Without it such a table is used as it is, and
	// payloads that are not text are refused with ErrPayloadNotText.
	MigratePayload bool
	// Node is recorded as the node of client states and messages whose event names none.
	Node string
	// PurgeInterval is how often messages older than their rule's expired_time are deleted;
	// default one minute. See Store.PurgeExpired.
	PurgeInterval time.Duration
}

// Store is the SQL backend: one of MySQL, PostgreSQL and SQLite, holding the EMQX tables
// mqtt_client, mqtt_sub, mqtt_msg, mqtt_retain and mqtt_acked.
//
// It implements hook.Backend, hook.Activator, hook.Flusher, backend.StatsReporter,
// backend.ClientStateReader, backend.SubscriptionStore and backend.Pinger. A Store is safe
// for concurrent use. Writes (the WriteActions Prepare returns) are queued and written in
// batches by one backend.Writer; lookups and the methods with a context run at once.
type Store struct {
	cfg  Config
	opts backend.Options
	d    *dialect
	pg   *pgxpool.Pool // Postgres
	db   *sql.DB       // MySQL, SQLite
	own  bool          // Close closes pg or db

	w     *backend.Writer[op]
	stmts sync.Map // SQL text -> *sql.Stmt (MySQL, SQLite)

	// text payload columns of existing EMQX PostgreSQL tables (set by EnsureSchema/Open)
	msgText, retainText atomic.Bool
	// widths of the string columns of the built-in tables, "table.column" -> characters
	// (set by EnsureSchema/Open; nil for SQLite)
	widths atomic.Pointer[map[string]int]
	// noMsgLock: MySQL without the mqtt_msg_lock table (EnsureSchema not run on an older
	// database): message batches are written without it, and a warning logged once.
	noMsgLock     atomic.Bool
	noMsgLockWarn sync.Once

	// testStall, set by tests before the first write, is a statement a batch with messages
	// runs last in its transaction (before COMMIT), so that a test can hold that transaction
	// open by making the statement wait for a lock the test holds.
	testStall string
	// flushCalls counts the writer's calls of flush (the tests check how many a failure costs).
	flushCalls atomic.Uint64

	mu        sync.Mutex
	expiries  atomic.Pointer[expiries] // storing rules' expired_time, copy on write under mu
	purgeStop chan struct{}            // closed by Close; nil until a rule has an expiry
	purgeDone chan struct{}
	closed    bool
}

// Open connects to the database cfg names and returns a Store, creating the schema first if
// cfg.EnsureSchema. Close releases the connections.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.DSN == "" {
		return nil, fmt.Errorf("sqlstore: open %v: %w: empty DSN", cfg.Dialect, hook.ErrConfig)
	}
	opts := cfg.Options.WithDefaults()
	s := &Store{cfg: cfg, opts: opts, own: true}
	var err error
	switch cfg.Dialect {
	case Postgres:
		s.pg, err = openPostgres(ctx, cfg.DSN, opts)
	case MySQL:
		s.db, err = openMySQL(cfg.DSN, opts)
	case SQLite:
		s.db, err = openSQLite(cfg.DSN, opts)
	default:
		err = fmt.Errorf("%w: unknown dialect %v", hook.ErrConfig, cfg.Dialect)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlstore: open %v: %w", cfg.Dialect, err)
	}
	if err := s.start(ctx); err != nil {
		s.closeDB()
		return nil, err
	}
	return s, nil
}

// OpenPool returns a PostgreSQL Store on pool, which the caller keeps: Close does not close
// it. cfg.Dialect and cfg.DSN are ignored.
func OpenPool(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, fmt.Errorf("sqlstore: open postgres: %w: nil pool", hook.ErrConfig)
	}
	if err := checkBoundParams(pool.Config().ConnConfig); err != nil {
		return nil, err
	}
	cfg.Dialect = Postgres
	s := &Store{cfg: cfg, opts: cfg.Options.WithDefaults(), pg: pool}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// OpenDB returns a MySQL or SQLite Store (as cfg.Dialect says) on db, which the caller keeps:
// Close does not close it. cfg.DSN is ignored. A SQLite db should be in WAL mode with a busy
// timeout, as Open sets up.
func OpenDB(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	if db == nil {
		return nil, fmt.Errorf("sqlstore: open %v: %w: nil db", cfg.Dialect, hook.ErrConfig)
	}
	if cfg.Dialect != MySQL && cfg.Dialect != SQLite {
		return nil, fmt.Errorf("sqlstore: open %v: %w: OpenDB is for MySQL and SQLite (PostgreSQL: OpenPool)", cfg.Dialect, hook.ErrConfig)
	}
	s := &Store{cfg: cfg, opts: cfg.Options.WithDefaults(), db: db}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// checkBoundParams refuses pgx's simple protocol, in which pgx writes the arguments into the
// statement text as literals: every value must reach the server as a bound parameter.
func checkBoundParams(cc *pgx.ConnConfig) error {
	if cc.DefaultQueryExecMode == pgx.QueryExecModeSimpleProtocol {
		return fmt.Errorf("sqlstore: open postgres: %w: default_query_exec_mode=simple_protocol would splice values into statement text; use the default mode", hook.ErrConfig)
	}
	return nil
}

func openPostgres(ctx context.Context, dsn string, opts backend.Options) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hook.ErrConfig, err)
	}
	if err := checkBoundParams(pc.ConnConfig); err != nil {
		return nil, err
	}
	pc.MaxConns = int32(opts.PoolSize)
	if pc.ConnConfig.ConnectTimeout == 0 {
		pc.ConnConfig.ConnectTimeout = opts.ConnectTimeout
	}
	if opts.TLS != nil {
		pc.ConnConfig.TLSConfig = opts.TLS
		pc.ConnConfig.Fallbacks = nil
	}
	return pgxpool.NewWithConfig(ctx, pc)
}

func openMySQL(dsn string, opts backend.Options) (*sql.DB, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hook.ErrConfig, err)
	}
	if mc.Timeout == 0 {
		mc.Timeout = opts.ConnectTimeout
	}
	if opts.TLS != nil {
		mc.TLS = opts.TLS
	}
	// Values are always bound by the server; times are bound as UTC text and read either as
	// time.Time or as text, so parseTime and loc do not matter.
	mc.InterpolateParams = false
	mc.MultiStatements = false
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hook.ErrConfig, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(opts.PoolSize)
	db.SetMaxIdleConns(opts.PoolSize)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

func openSQLite(dsn string, opts backend.Options) (*sql.DB, error) {
	memory := dsn == ":memory:" || strings.Contains(dsn, "mode=memory")
	var add []string
	if !strings.Contains(dsn, "busy_timeout") && !strings.Contains(dsn, "_timeout=") {
		add = append(add, fmt.Sprintf("_pragma=busy_timeout(%d)", opts.QueryTimeout.Milliseconds()))
	}
	if !memory && !strings.Contains(dsn, "journal_mode") && !strings.Contains(dsn, "_journal") {
		add = append(add, "_pragma=journal_mode(WAL)")
	}
	if !strings.Contains(dsn, "synchronous") && !strings.Contains(dsn, "_sync") {
		add = append(add, "_pragma=synchronous(NORMAL)") // durable in WAL mode up to the last checkpoint of a power loss
	}
	if !strings.Contains(dsn, "_txlock") {
		// Write transactions take the write lock at BEGIN, so they wait (busy_timeout) rather
		// than fail when upgrading from a read lock.
		add = append(add, "_txlock=immediate")
	}
	if len(add) > 0 {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		dsn += sep + strings.Join(add, "&")
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", hook.ErrConfig, err)
	}
	if memory {
		db.SetMaxOpenConns(1) // each connection would have a database of its own
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	} else {
		db.SetMaxOpenConns(opts.PoolSize)
		db.SetMaxIdleConns(opts.PoolSize)
	}
	return db, nil
}

// start checks the connection, applies the schema if asked, detects the payload columns
// and starts the writer.
func (s *Store) start(ctx context.Context) error {
	s.d = dialects[s.cfg.Dialect]
	if err := s.Ping(ctx); err != nil {
		return fmt.Errorf("sqlstore: open %v: %w", s.cfg.Dialect, err)
	}
	if s.cfg.EnsureSchema {
		if err := s.EnsureSchema(ctx); err != nil {
			return err
		}
	} else if err := s.inspect(ctx); err != nil {
		return err
	}
	s.prepareWrites(ctx)
	s.w = backend.NewWriter(backend.WriterConfig[op]{
		Store:   "sqlstore/" + s.cfg.Dialect.String(),
		Options: s.opts,
		Flush:   s.flush,
		Key:     func(o op) string { return o.key },
		Ping:    s.Ping,
		Size:    op.size,
		Classify: func(err error) backend.Failure {
			if errors.Is(err, errRolledBack) || s.d.transient(err) {
				return backend.FailRetry
			}
			return backend.FailItem
		},
	})
	return nil
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.cfg.Dialect }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	var err error
	if s.pg != nil {
		err = s.pg.Ping(ctx)
	} else {
		err = s.db.PingContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("sqlstore: ping %v: %w", s.cfg.Dialect, err)
	}
	return nil
}

// Flush returns once every write queued before the call has been written (or has failed and
// been counted), or ctx is done.
func (s *Store) Flush(ctx context.Context) error {
	return s.w.Flush(ctx) // its errors name the store ("sqlstore/<dialect>: ...")
}

// Stats returns the write counters.
func (s *Store) Stats() backend.Stats { return s.w.Stats() }

// Close writes out the queue (giving up when ctx is done), stops the expiry purge, and
// closes the connections the Store opened.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("sqlstore: close: %w", hook.ErrClosed)
	}
	s.closed = true
	stop, done := s.purgeStop, s.purgeDone
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	err := s.w.Close(ctx) // its errors name the store ("sqlstore/<dialect>: ...")
	s.closeDB()
	return err
}

func (s *Store) closeDB() {
	s.stmts.Range(func(q, ps any) bool {
		ps.(*sql.Stmt).Close()
		s.stmts.Delete(q)
		return true
	})
	if !s.own {
		return
	}
	if s.pg != nil {
		s.pg.Close()
	}
	if s.db != nil {
		s.db.Close()
	}
}

// queryContext bounds ctx by Options.QueryTimeout (an earlier deadline of ctx stays).
func (s *Store) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.QueryTimeout)
}

func (s *Store) node(n string) string {
	if n == "" {
		return s.cfg.Node
	}
	return n
}

var _ interface {
	hook.Backend
	hook.Activator
	hook.Flusher
	backend.StatsReporter
	backend.ClientStateReader
	backend.SubscriptionStore
	backend.Pinger
} = (*Store)(nil)
