package cassastore

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// The spec's table names (EMQX 4.x "Cassandra 消息存储"), and the topic index this store adds.
const (
	TableClient     = "client"
	TableSub        = "sub"
	TableMsg        = "msg"
	TableRetain     = "retain"
	TableAcked      = "acked"
	TableTopicIndex = "topic_index" // not EMQX's: wildcard fetch and retained lookup
)

// Config configures a Store. The zero value of each field means its default.
type Config struct {
	// Hosts are the contact points, "host" or "host:port" (EMQX's nodes). Default 127.0.0.1.
	Hosts []string
	// Port is the CQL port of hosts given without one; default 9042.
	Port int
	// Keyspace holds the tables; default "mqtt" (EMQX's keyspace).
	Keyspace string
	// Username and Password authenticate (PasswordAuthenticator) when Username is set. The
	// password never appears in errors, logs or a printed Config.
	Username, Password string
	// Consistency of reads and writes; default (the zero value, which is ANY, never useful
	// here) LOCAL_QUORUM (see the package doc).
	Consistency gocql.Consistency
	// ConnsPerHost is the connections per node (EMQX's pool size); default Options.PoolSize.
	ConnsPerHost int
	// ReconnectInterval is how often a node that is down is tried again (EMQX's
	// auto_reconnect, in seconds there); default 1s.
	ReconnectInterval time.Duration
	// Replication is the replication map of the keyspace EnsureSchema creates; default
	// {'class': 'SimpleStrategy', 'replication_factor': 1}, as the spec's CREATE KEYSPACE.
	Replication string
	// Node is the broker's node name, recorded in client.node when an event carries none.
	Node string
	// EnsureSchema creates the keyspace and tables that are missing, and adds this store's
	// columns (payload_bin, the retained message's columns) to existing tables.
	EnsureSchema bool
	// Concurrency bounds the statements one flush runs at once; default 32.
	Concurrency int
	// Cluster, when set, is called on the gocql cluster configuration before the session is
	// made (an AddressTranslator, a HostFilter, TLS options...).
	Cluster func(*gocql.ClusterConfig)
	// Options are the shared options (batching, queue, retry, timeouts, TLS, logger).
	Options backend.Options
}

// String implements fmt.Stringer so that a Config printed with %v or %+v hides the password.
func (c Config) String() string {
	pw := ""
	if c.Password != "" {
		pw = "REDACTED"
	}
	cons := "default"
	if c.Consistency != 0 {
		cons = c.Consistency.String()
	}
	return fmt.Sprintf("cassastore.Config{Hosts:%q Port:%d Keyspace:%q Username:%q Password:%s Consistency:%s EnsureSchema:%v}",
		c.Hosts, c.Port, c.Keyspace, c.Username, pw, cons, c.EnsureSchema)
}

// GoString hides the password from %#v too.
func (c Config) GoString() string { return c.String() }

var identRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,47}$`)

// Store is the Cassandra store. It is safe for concurrent use.
type Store struct {
	cfg    Config
	opts   backend.Options
	sess   *gocql.Session
	q      statements
	w      *backend.Writer[op]
	closed atomic.Bool

	// Columns found at Open: payload_bin in msg and retain (binary payloads), and the
	// message columns of retain (else retained messages are kept the EMQX way: retain holds
	// the msgid, msg the message).
	msgBin, retainBin, retainFull bool

	indexOK bool // topic_index exists: wildcard fetches and retained lookups are answered
	marksOK bool // writer_mark exists: fetches stop at the writers' low-water mark
	marks   *marks
	indexed sync.Map // topic_index rows already written (never deleted)
	lastTS  atomic.Int64
}

// Open connects to Cassandra, creates the schema when cfg.EnsureSchema is set, checks the
// tables, and starts the writer.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	opts := cfg.Options.WithDefaults()
	if len(cfg.Hosts) == 0 {
		cfg.Hosts = []string{"127.0.0.1"}
	}
	if cfg.Port == 0 {
		cfg.Port = 9042
	}
	if cfg.Keyspace == "" {
		cfg.Keyspace = "mqtt"
	}
	if !identRE.MatchString(cfg.Keyspace) {
		return nil, fmt.Errorf("cassastore: %w: keyspace %q (letters, digits and _, 48 at most)", hook.ErrConfig, cfg.Keyspace)
	}
	if cfg.Consistency == 0 {
		cfg.Consistency = gocql.LocalQuorum
	}
	if cfg.ConnsPerHost <= 0 {
		cfg.ConnsPerHost = opts.PoolSize
	}
	if cfg.ReconnectInterval <= 0 {
		cfg.ReconnectInterval = time.Second
	}
	if cfg.Replication == "" {
		cfg.Replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	cfg.Keyspace = strings.ToLower(cfg.Keyspace) // CQL folds unquoted names
	s := &Store{cfg: cfg, opts: opts, marks: newMarks()}
	if cfg.EnsureSchema {
		// The keyspace may not exist yet: a session without one creates it.
		boot, err := s.newSession("")
		if err != nil {
			return nil, err
		}
		s.sess = boot
		err = s.EnsureSchema(ctx)
		boot.Close()
		if err != nil {
			return nil, redact(err, cfg.Password)
		}
	}
	sess, err := s.newSession(cfg.Keyspace)
	if err != nil {
		return nil, err
	}
	s.sess = sess
	if err := s.open(ctx); err != nil {
		sess.Close()
		return nil, redact(err, cfg.Password)
	}
	s.q = newStatements(cfg.Keyspace)
	s.w = backend.NewWriter(backend.WriterConfig[op]{
		Store:   "cassastore",
		Options: opts,
		Flush:   s.flush,
		Key:     func(o op) string { return o.key },
		Size:    func(o op) int { return o.size() },
		// Unlogged batches are single-partition and kept under Cassandra's batch warning
		// (5 KiB) by flush itself; a writer batch is many statements run concurrently, so
		// its bound is the statements in flight, not a Cassandra limit.
		Classify: classify,
	})
	return s, nil
}

// newSession connects to the cluster, with keyspace as the session's keyspace (the one
// custom statements name tables in) unless it is "".
func (s *Store) newSession(keyspace string) (*gocql.Session, error) {
	cfg, opts := s.cfg, s.opts
	cl := gocql.NewCluster(cfg.Hosts...)
	cl.Port = cfg.Port
	cl.Keyspace = keyspace
	cl.Consistency = cfg.Consistency
	cl.NumConns = cfg.ConnsPerHost
	cl.ConnectTimeout = opts.ConnectTimeout
	cl.Timeout = opts.QueryTimeout
	cl.ReconnectInterval = cfg.ReconnectInterval
	cl.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.RoundRobinHostPolicy(), gocql.ShuffleReplicas())
	// The writer retries (counted, in order per key); the driver tries once.
	cl.RetryPolicy = &gocql.SimpleRetryPolicy{NumRetries: 0}
	cl.Logger = slogLogger{opts.Logger}
	if cfg.Username != "" {
		cl.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}
	if opts.TLS != nil {
		cl.SslOpts = &gocql.SslOptions{Config: opts.TLS.Clone(), EnableHostVerification: !opts.TLS.InsecureSkipVerify}
	}
	if cfg.Cluster != nil {
		cfg.Cluster(cl)
	}
	sess, err := cl.CreateSession()
	if err != nil {
		return nil, fmt.Errorf("cassastore: connect to %v: %w", cfg.Hosts, redact(err, cfg.Password))
	}
	return sess, nil
}

// open reads which tables and columns exist.
func (s *Store) open(ctx context.Context) error {
	cols, err := s.columns(ctx)
	if err != nil {
		return err
	}
	for _, tb := range []string{TableClient, TableSub, TableMsg, TableRetain, TableAcked} {
		if cols[tb] == nil {
			return fmt.Errorf("cassastore: %w: table %s.%s does not exist (Config.EnsureSchema creates it)", hook.ErrConfig, s.cfg.Keyspace, tb)
		}
	}
	s.msgBin = cols[TableMsg]["payload_bin"]
	s.retainBin = cols[TableRetain]["payload_bin"]
	s.retainFull = s.retainBin && cols[TableRetain]["payload"] && cols[TableRetain]["arrived"] && cols[TableRetain]["qos"] && cols[TableRetain]["sender"]
	if cols[TableTopicIndex] == nil {
		s.opts.Logger.Warn("cassastore: no topic_index table: wildcard fetches and retained lookups are refused (Config.EnsureSchema creates it)",
			"keyspace", s.cfg.Keyspace)
	} else {
		s.indexOK = true
	}
	s.marksOK = cols[TableWriterMark] != nil
	return nil
}

// columns returns the columns of each table of the keyspace, from system_schema.
func (s *Store) columns(ctx context.Context) (map[string]map[string]bool, error) {
	out := make(map[string]map[string]bool)
	iter := s.sess.Query(`SELECT table_name, column_name FROM system_schema.columns WHERE keyspace_name = ?`, s.cfg.Keyspace).IterContext(ctx)
	var tb, col string
	for iter.Scan(&tb, &col) {
		if out[tb] == nil {
			out[tb] = make(map[string]bool)
		}
		out[tb][col] = true
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassastore: read system_schema.columns: %w", err)
	}
	return out, nil
}

// schema is the CREATE TABLE of each table: the spec's, plus payload_bin (msg, retain), the
// retained message's columns (retain) and topic_index.
func schema(ks string) [][2]string {
	return [][2]string{
		{TableClient, `CREATE TABLE IF NOT EXISTS ` + ks + `.client (client_id text PRIMARY KEY, connected timestamp, disconnected timestamp, node text, state int)`},
		{TableSub, `CREATE TABLE IF NOT EXISTS ` + ks + `.sub (client_id text, topic text, qos int, PRIMARY KEY (client_id, topic))`},
		{TableMsg, `CREATE TABLE IF NOT EXISTS ` + ks + `.msg (topic text, msgid text, arrived timestamp, payload text, qos int, retain int, sender text, payload_bin blob, PRIMARY KEY (topic, msgid)) WITH CLUSTERING ORDER BY (msgid DESC)`},
		{TableRetain, `CREATE TABLE IF NOT EXISTS ` + ks + `.retain (topic text PRIMARY KEY, msgid text, arrived timestamp, payload text, qos int, sender text, payload_bin blob)`},
		{TableAcked, `CREATE TABLE IF NOT EXISTS ` + ks + `.acked (client_id text, topic text, msgid text, PRIMARY KEY (client_id, topic))`},
		{TableTopicIndex, `CREATE TABLE IF NOT EXISTS ` + ks + `.topic_index (bucket text, topic text, PRIMARY KEY (bucket, topic))`},
		{TableWriterMark, `CREATE TABLE IF NOT EXISTS ` + ks + `.writer_mark (bucket text, writer text, mark text, PRIMARY KEY (bucket, writer))`},
	}
}

// addedColumns are the columns this store adds to the spec's tables, which EnsureSchema adds
// to an existing EMQX keyspace (ALTER TABLE ... ADD: existing rows and EMQX's queries are
// unaffected).
var addedColumns = []struct{ table, column, typ string }{
	{TableMsg, "payload_bin", "blob"},
	{TableRetain, "arrived", "timestamp"},
	{TableRetain, "payload", "text"},
	{TableRetain, "qos", "int"},
	{TableRetain, "sender", "text"},
	{TableRetain, "payload_bin", "blob"},
}

// EnsureSchema creates the keyspace (Config.Replication) and the tables that are missing, and
// adds this store's columns to existing tables, waiting for schema agreement. Tables and
// columns that exist are left as they are.
func (s *Store) EnsureSchema(ctx context.Context) error {
	ks := s.cfg.Keyspace
	exec := func(stmt string) error {
		if err := s.sess.Query(stmt).ExecContext(ctx); err != nil {
			return fmt.Errorf("cassastore: %s: %w", stmt, err)
		}
		return nil
	}
	var name string
	err := s.sess.Query(`SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).ScanContext(ctx, &name)
	if errors.Is(err, gocql.ErrNotFound) {
		err = exec(`CREATE KEYSPACE IF NOT EXISTS ` + ks + ` WITH replication = ` + s.cfg.Replication + ` AND durable_writes = true`)
	}
	if err != nil {
		return fmt.Errorf("cassastore: keyspace %s: %w", ks, err)
	}
	cols, err := s.columns(ctx)
	if err != nil {
		return err
	}
	changed := false
	for _, tb := range schema(ks) {
		if cols[tb[0]] != nil {
			continue
		}
		if err := exec(tb[1]); err != nil {
			return err
		}
		changed = true
	}
	for _, c := range addedColumns {
		if cols[c.table] == nil || cols[c.table][c.column] {
			continue // created above with it, or there already
		}
		if err := exec(`ALTER TABLE ` + ks + `.` + c.table + ` ADD ` + c.column + ` ` + c.typ); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		if err := s.sess.AwaitSchemaAgreement(ctx); err != nil {
			return fmt.Errorf("cassastore: schema agreement: %w", err)
		}
	}
	return nil
}

// Session returns the gocql session the store uses.
func (s *Store) Session() *gocql.Session { return s.sess }

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Keyspace returns the keyspace of the store's tables.
func (s *Store) Keyspace() string { return s.cfg.Keyspace }

// Ping implements backend.Pinger: it reads one row of system.local.
func (s *Store) Ping(ctx context.Context) error {
	var v string
	if err := s.sess.Query(`SELECT release_version FROM system.local`).ScanContext(ctx, &v); err != nil {
		return fmt.Errorf("cassastore: ping: %w", err)
	}
	return nil
}

// Flush implements hook.Flusher.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.w.Flush(ctx); err != nil {
		return fmt.Errorf("cassastore: flush: %w", err)
	}
	if s.marks.on.Load() {
		// Other brokers' fetches see at once what this flush made visible.
		if err := s.publishMark(ctx); err != nil {
			return fmt.Errorf("cassastore: flush: publish the writer mark: %w", err)
		}
	}
	return nil
}

// Stats implements backend.StatsReporter: the writer's counters.
func (s *Store) Stats() backend.Stats { return s.w.Stats() }

// Close drains the write queue within ctx and closes the session.
func (s *Store) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	err := s.w.Close(ctx)
	s.closeMarks(ctx)
	s.sess.Close()
	if err != nil {
		return fmt.Errorf("cassastore: close: %w", err)
	}
	return nil
}

// timestamp returns a write timestamp (microseconds) greater than every one this store gave
// before: two writes of one cell in quick succession never tie (Cassandra would then keep the
// greater value, not the later one).
func (s *Store) timestamp() int64 {
	now := time.Now().UnixMicro()
	for {
		last := s.lastTS.Load()
		next := max(now, last+1)
		if s.lastTS.CompareAndSwap(last, next) {
			return next
		}
	}
}

// redact removes the password from an error's text.
func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), password, "REDACTED"))
}

// ttlSeconds is expired_time as USING TTL: whole seconds, rounded up, and one more, since
// Cassandra counts from the second the write reached it (truncated): a message never
// disappears before its expired_time.
func ttlSeconds(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d+time.Second-1)/time.Second) + 1
}

func itoa(n int) string { return strconv.Itoa(n) }

// slogLogger hands the driver's log lines to the store's logger, Info and Debug at Debug
// level (the driver's connection chatter).
type slogLogger struct {
	l interface {
		Error(msg string, args ...any)
		Warn(msg string, args ...any)
		Debug(msg string, args ...any)
	}
}

func logArgs(fields []gocql.LogField) []any {
	args := make([]any, 0, 2*len(fields)+2)
	args = append(args, "driver", "gocql")
	for _, f := range fields {
		args = append(args, f.Name, f.Value.Any())
	}
	return args
}

func (l slogLogger) Error(msg string, fields ...gocql.LogField) {
	l.l.Error("cassastore: gocql: "+msg, logArgs(fields)...)
}
func (l slogLogger) Warning(msg string, fields ...gocql.LogField) {
	l.l.Warn("cassastore: gocql: "+msg, logArgs(fields)...)
}
func (l slogLogger) Info(msg string, fields ...gocql.LogField) {
	l.l.Debug("cassastore: gocql: "+msg, logArgs(fields)...)
}
func (l slogLogger) Debug(msg string, fields ...gocql.LogField) {
	l.l.Debug("cassastore: gocql: "+msg, logArgs(fields)...)
}
