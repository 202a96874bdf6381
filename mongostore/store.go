package mongostore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// The collections, named as in the spec (and emqx_backend_mongo), plus the two the store adds
// to order mqtt_msg across brokers (see "Several brokers on one database" in the package doc).
const (
	ColClient = "mqtt_client"
	ColSub    = "mqtt_sub"
	ColMsg    = "mqtt_msg"
	ColRetain = "mqtt_retain"
	ColAcked  = "mqtt_acked"
	// ColSeq holds one document, {_id: "mqtt_msg", seq: N}: the last mqtt_msg _id given out.
	ColSeq = "mqtt_seq"
	// ColLock holds the lock document of mqtt_msg writes while a writer holds it.
	ColLock = "mqtt_lock"
)

// Config configures a Store. URI and Database are required; every other zero value means a
// default.
type Config struct {
	// URI is a MongoDB connection string ("mongodb://host:27017/?replicaSet=rs0"). Its
	// credentials are never written to errors or logs.
	URI string
	// Database is the database holding the collections (the spec's "mqtt").
	Database string
	// Client, when set, is used instead of connecting to URI; Close leaves it open.
	Client *mongo.Client
	// ClientOptions, when set, are applied after URI (pool settings, TLS, write concern...).
	ClientOptions *options.ClientOptions
	// Options are the batching, queue, retry and timeout settings shared by all stores.
	// PoolSize is the driver's maximum pool size.
	Options backend.Options
	// Unacknowledged writes messages, retained messages, acks and client states without
	// waiting for the server's acknowledgement (EMQX's w_mode = unsafe; the default, safe, is
	// acknowledged). Faster, and blind: a write the server refuses, or loses in a failover or
	// a restart, is counted as a success and never retried; and the order of mqtt_msg _ids
	// across brokers is no longer guaranteed (a batch may not be visible yet when the next
	// writer takes the lock), so a subscriber may skip a message. The lock and the _id
	// counter stay acknowledged. On a server that answers unacknowledged writes (FerretDB,
	// whose answers the driver would then read as those of the next commands), Open logs a
	// warning and writes acknowledged (Store.Unacknowledged reports which).
	Unacknowledged bool
	// EnsureSchema makes Open create the collections and indexes that are missing.
	EnsureSchema bool
	// Node is recorded as the node of client states and messages whose event names none.
	Node string
	// SweepInterval is how often the sweeper deletes expired messages where the server has no
	// TTL index (FerretDB); default one minute.
	SweepInterval time.Duration
	// LockLease is how long a writer may hold the mqtt_msg lock before another writer takes
	// it over (a broker that died holding it); default 30s, and at least twice
	// Options.QueryTimeout.
	LockLease time.Duration
}

// Store is the MongoDB backend, holding the spec's collections mqtt_client, mqtt_sub,
// mqtt_msg, mqtt_retain and mqtt_acked.
//
// It implements hook.Backend, hook.Activator, hook.Flusher, backend.StatsReporter,
// backend.ClientStateReader, backend.SubscriptionStore and backend.Pinger, and is safe for
// concurrent use.
type Store struct {
	cfg                                           Config
	opts                                          backend.Options
	client                                        *mongo.Client
	own                                           bool
	db                                            *mongo.Database
	msg, retain, acked, clientCol, sub, seq, lock *mongo.Collection
	unack                                         bool // msg, retain, acked and clientCol write unacknowledged

	w       *backend.Writer[op]
	owner   string // this store's lock token prefix
	mlock   msgLock
	secrets []string // the password(s) of the connection, removed from every error text
	lease   time.Duration

	// expiry
	expiring  atomic.Bool // some activated storing rule has an expired_time
	ttlNative atomic.Bool // the server has TTL indexes (else the sweeper runs)
	expOnce   sync.Once
	expErr    error

	mu        sync.Mutex
	sweepStop chan struct{}
	sweepDone chan struct{}
	closed    bool
}

// Open connects to the server cfg names and returns a Store, creating the schema first if
// cfg.EnsureSchema. Close releases the connection.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Database == "" {
		return nil, fmt.Errorf("mongostore: open: %w: no database", hook.ErrConfig)
	}
	opts := cfg.Options.WithDefaults()
	s := &Store{cfg: cfg, opts: opts, client: cfg.Client}
	s.secrets = secretsOf(cfg)
	if s.client == nil {
		if cfg.URI == "" && cfg.ClientOptions == nil {
			return nil, fmt.Errorf("mongostore: open: %w: no URI", hook.ErrConfig)
		}
		co := options.Client()
		if cfg.URI != "" {
			co.ApplyURI(cfg.URI)
		}
		if cfg.ClientOptions != nil {
			mergeClientOptions(co, cfg.ClientOptions)
		}
		if co.MaxPoolSize == nil {
			co.SetMaxPoolSize(uint64(opts.PoolSize))
		}
		if co.ConnectTimeout == nil {
			co.SetConnectTimeout(opts.ConnectTimeout)
		}
		if co.ServerSelectionTimeout == nil {
			co.SetServerSelectionTimeout(opts.ConnectTimeout)
		}
		if opts.TLS != nil && co.TLSConfig == nil {
			co.SetTLSConfig(opts.TLS)
		}
		if err := co.Validate(); err != nil {
			return nil, s.wrapf(fmt.Errorf("%w: %w", hook.ErrConfig, err), "mongostore: open")
		}
		c, err := mongo.Connect(co)
		if err != nil {
			return nil, s.wrapf(fmt.Errorf("%w: %w", hook.ErrConfig, err), "mongostore: open")
		}
		s.client, s.own = c, true
	}
	s.db = s.client.Database(cfg.Database)
	s.collections(false)
	s.owner = newToken()
	s.lease = cfg.LockLease
	if s.lease <= 0 {
		s.lease = 30 * time.Second
	}
	s.lease = max(s.lease, 2*opts.QueryTimeout)
	if err := s.start(ctx); err != nil {
		if s.own {
			_ = s.client.Disconnect(context.Background())
		}
		return nil, err
	}
	return s, nil
}

// mergeClientOptions sets on dst the fields of src that are set.
func mergeClientOptions(dst, src *options.ClientOptions) {
	if src.Auth != nil {
		dst.Auth = src.Auth
	}
	if src.Hosts != nil {
		dst.Hosts = src.Hosts
	}
	if src.ReplicaSet != nil {
		dst.ReplicaSet = src.ReplicaSet
	}
	if src.Direct != nil {
		dst.Direct = src.Direct
	}
	if src.MaxPoolSize != nil {
		dst.MaxPoolSize = src.MaxPoolSize
	}
	if src.MinPoolSize != nil {
		dst.MinPoolSize = src.MinPoolSize
	}
	if src.TLSConfig != nil {
		dst.TLSConfig = src.TLSConfig
	}
	if src.WriteConcern != nil {
		dst.WriteConcern = src.WriteConcern
	}
	if src.ReadPreference != nil {
		dst.ReadPreference = src.ReadPreference
	}
	if src.ConnectTimeout != nil {
		dst.ConnectTimeout = src.ConnectTimeout
	}
	if src.ServerSelectionTimeout != nil {
		dst.ServerSelectionTimeout = src.ServerSelectionTimeout
	}
	if src.LocalThreshold != nil {
		dst.LocalThreshold = src.LocalThreshold
	}
	if src.HeartbeatInterval != nil {
		dst.HeartbeatInterval = src.HeartbeatInterval
	}
	if src.MaxConnIdleTime != nil {
		dst.MaxConnIdleTime = src.MaxConnIdleTime
	}
	if src.Timeout != nil {
		dst.Timeout = src.Timeout
	}
}

// collections sets the store's collections, those it writes through unacknowledged if unack.
func (s *Store) collections(unack bool) {
	var co []options.Lister[options.CollectionOptions]
	if unack {
		co = append(co, options.Collection().SetWriteConcern(writeconcern.Unacknowledged()))
	}
	s.msg, s.retain, s.acked = s.db.Collection(ColMsg, co...), s.db.Collection(ColRetain, co...), s.db.Collection(ColAcked, co...)
	s.clientCol, s.sub = s.db.Collection(ColClient, co...), s.db.Collection(ColSub)
	s.seq, s.lock = s.db.Collection(ColSeq), s.db.Collection(ColLock)
	s.unack = unack
}

// answersUnacknowledged reports whether the server is one known to answer unacknowledged
// writes (OP_MSG with moreToCome), which the driver does not read: the answer is then read
// as that of the next command on the connection, and every later answer on it is shifted
// (a Find gets "database response does not contain a cursor", or another command's
// documents). FerretDB 1.24 does; its buildInfo has ferretdbVersion.
func (s *Store) answersUnacknowledged(ctx context.Context) (bool, error) {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	var bi bson.Raw
	if err := s.client.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&bi); err != nil {
		return false, err
	}
	_, err := bi.LookupErr("ferretdbVersion")
	return err == nil, nil
}

func (s *Store) start(ctx context.Context) error {
	if err := s.Ping(ctx); err != nil {
		return s.wrapf(err, "mongostore: open")
	}
	if s.cfg.Unacknowledged {
		bad, err := s.answersUnacknowledged(ctx)
		if err != nil {
			return s.wrapf(err, "mongostore: open: buildInfo")
		}
		if bad {
			s.opts.Logger.Warn("w_mode = unsafe ignored: writes are acknowledged; the server (FerretDB) answers unacknowledged writes, which would put the connection's later answers out of step",
				"store", "mongostore")
		} else {
			s.collections(true)
		}
	}
	if s.cfg.EnsureSchema {
		if err := s.EnsureSchema(ctx); err != nil {
			return err
		}
	}
	s.w = backend.NewWriter(backend.WriterConfig[op]{
		Store:    "mongostore",
		Options:  s.opts,
		Flush:    s.flush,
		Key:      func(o op) string { return o.key },
		Ping:     s.Ping,
		Size:     func(o op) int { return o.size() },
		MaxBatch: maxWriteBatch,
		Classify: classify,
	})
	return nil
}

// maxWriteBatch is the server's maxWriteBatchSize: the most operations in one write command.
const maxWriteBatch = 100000

// classify says what a write error means for the writes of a batch not marked otherwise.
// Every write is idempotent (inserts keyed by msgid, upserts and deletes by key), so an
// unknown outcome is retried as a refused one.
func classify(err error) backend.Failure {
	if transient(err) {
		return backend.FailRetry
	}
	return backend.FailItem
}

// transientCodes are server error codes of passing conditions: shutdown, step-down, not
// primary, interrupted, time limits, network errors reported by a mongos, write conflicts.
var transientCodes = []int{6, 7, 89, 91, 112, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 50, 63, 150, 202, 251}

func transient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, errLockBusy) || backend.IsTransient(err) || mongo.IsNetworkError(err) || mongo.IsTimeout(err) ||
		errors.Is(err, mongo.ErrClientDisconnected) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		if se.HasErrorLabel("RetryableWriteError") || se.HasErrorLabel("TransientTransactionError") {
			return true
		}
		for _, c := range transientCodes {
			if se.HasErrorCode(c) {
				return true
			}
		}
	}
	return false
}

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	if err := s.client.Ping(ctx, nil); err != nil {
		return s.wrapf(err, "mongostore: ping")
	}
	return nil
}

// Flush returns once every write queued before the call has been written (or has failed and
// been counted), or ctx is done.
func (s *Store) Flush(ctx context.Context) error { return s.w.Flush(ctx) }

// Stats returns the write counters.
func (s *Store) Stats() backend.Stats { return s.w.Stats() }

// Close writes out the queue (giving up when ctx is done), stops the sweeper, and closes the
// connection the Store opened.
func (s *Store) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("mongostore: close: %w", hook.ErrClosed)
	}
	s.closed = true
	stop, done := s.sweepStop, s.sweepDone
	s.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
	err := s.w.Close(ctx)
	s.releaseNow()
	if s.own {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = s.client.Disconnect(dctx)
	}
	return err
}

// Unacknowledged reports whether the store writes without waiting for the server's
// acknowledgement: Config.Unacknowledged (w_mode = unsafe), unless the server cannot take
// unacknowledged writes (FerretDB), which Open logs.
func (s *Store) Unacknowledged() bool { return s.unack }

// Database returns the database the store writes.
func (s *Store) Database() *mongo.Database { return s.db }

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
