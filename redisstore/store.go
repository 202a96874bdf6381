package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// Mode is how the store reaches Redis: the spec's backend.redis.<pool>.type.
type Mode uint8

const (
	Single   Mode = iota // one server (the zero value)
	Sentinel             // a master found through Sentinel
	Cluster              // Redis Cluster
)

var modeNames = [...]string{Single: "single", Sentinel: "sentinel", Cluster: "cluster"}

func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// ParseMode returns the mode named s: "single", "sentinel" or "cluster".
func ParseMode(s string) (Mode, error) {
	for m, name := range modeNames {
		if strings.EqualFold(s, name) {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("redisstore: %w: unknown type %q (want single, sentinel or cluster)", hook.ErrConfig, s)
}

// DefaultChannel is the SUB/UNSUB control channel of the spec (backend.redis.<pool>.channel).
const DefaultChannel = "mqtt_channel"

// Config configures a Store. Every zero field means its default.
type Config struct {
	Mode Mode
	// Addrs is the server (Single, default 127.0.0.1:6379), the seed nodes (Cluster) or the
	// sentinels (Sentinel).
	Addrs []string
	// MasterName is the name the sentinels know the master by (Sentinel only; required).
	MasterName string
	Username   string
	Password   string
	// SentinelPassword authenticates to the sentinels themselves, when they require it.
	SentinelPassword string
	// DB is the database number (Single and Sentinel; a cluster has only 0).
	DB int
	// Prefix is put before every key the store reads or writes, the keys of custom commands
	// included, so that several stores (tenants, tests) can share a server. Default "": the
	// spec's keys exactly.
	Prefix string

	// OnControl, when set, makes the store listen on Channel for the spec's SUB/UNSUB
	// requests: each valid one is recorded in mqtt:sub:${clientid} and then handed to
	// OnControl, which should subscribe or unsubscribe the client in the broker. Calls are made
	// one at a time, in the order the requests arrive, on the store's listener goroutine; an
	// error (or panic) is logged and counted in ControlStats.Failed. Nil: the store does not
	// listen.
	OnControl func(ctx context.Context, c Control) error
	// Channel is the control channel; default DefaultChannel ("mqtt_channel").
	Channel string

	// Options are the pool, batching, queue and retry settings shared by all stores.
	// PoolSize is the connection pool (per node in Cluster mode).
	Options backend.Options
}

// Store is the Redis backend, holding the spec's keys (see the package documentation).
//
// It implements hook.Backend, hook.Activator, hook.Flusher, backend.StatsReporter,
// backend.ClientStateReader, backend.SubscriptionStore and backend.Pinger. A Store is safe for
// concurrent use. Writes (the WriteActions Prepare returns) are queued and written in
// pipelined batches by one backend.Writer; lookups and the methods with a context run at once.
type Store struct {
	cfg    Config
	opts   backend.Options
	log    *slog.Logger
	client redis.UniversalClient
	own    bool // Close closes client
	staged bool // write stages in separate pipelines (Cluster: commands to different nodes are not ordered)
	k      keys

	w *backend.Writer[op]

	// ttlRules is set once a storing rule with an expired_time is activated: from then on
	// writes without one PERSIST the message hashes they write, so that a message stored
	// again without expiry keeps none.
	ttlRules atomic.Bool
	// maxTTL is the longest expired_time of the activated message storing rules
	// (nanoseconds), and pruneSlack how long after it a message is surely expired (see
	// scriptAdd).
	maxTTL     atomic.Int64
	pruneSlack time.Duration

	cmdMu    sync.Mutex
	cmdTable map[string]*redis.CommandInfo // lower-case name → key positions (custom commands under a Prefix)

	ctl *listener // nil without OnControl

	closeOnce sync.Once
	closeErr  error
}

// Open connects to the Redis deployment cfg names and returns a Store. Close releases the
// connections.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	opts := cfg.Options.WithDefaults()
	if len(cfg.Addrs) == 0 {
		switch cfg.Mode {
		case Single:
			cfg.Addrs = []string{"127.0.0.1:6379"}
		default:
			return nil, fmt.Errorf("redisstore: open %v: %w: no addresses", cfg.Mode, hook.ErrConfig)
		}
	}
	var client redis.UniversalClient
	switch cfg.Mode {
	case Single:
		if len(cfg.Addrs) != 1 {
			return nil, fmt.Errorf("redisstore: open single: %w: %d addresses (want one; several are a cluster's seed nodes)", hook.ErrConfig, len(cfg.Addrs))
		}
		client = redis.NewClient(&redis.Options{
			Addr: cfg.Addrs[0], Username: cfg.Username, Password: cfg.Password, DB: cfg.DB,
			PoolSize: opts.PoolSize, DialTimeout: opts.ConnectTimeout, TLSConfig: opts.TLS,
		})
	case Sentinel:
		if cfg.MasterName == "" {
			return nil, fmt.Errorf("redisstore: open sentinel: %w: no MasterName", hook.ErrConfig)
		}
		client = redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.MasterName, SentinelAddrs: cfg.Addrs, SentinelPassword: cfg.SentinelPassword,
			Username: cfg.Username, Password: cfg.Password, DB: cfg.DB,
			PoolSize: opts.PoolSize, DialTimeout: opts.ConnectTimeout, TLSConfig: opts.TLS,
		})
	case Cluster:
		if cfg.DB != 0 {
			return nil, fmt.Errorf("redisstore: open cluster: %w: DB %d (a cluster has only database 0)", hook.ErrConfig, cfg.DB)
		}
		client = redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.Addrs, Username: cfg.Username, Password: cfg.Password,
			PoolSize: opts.PoolSize, DialTimeout: opts.ConnectTimeout, TLSConfig: opts.TLS,
		})
	default:
		return nil, fmt.Errorf("redisstore: open: %w: unknown mode %v", hook.ErrConfig, cfg.Mode)
	}
	s, err := start(ctx, client, cfg)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.own = true
	return s, nil
}

// OpenClient returns a Store on client, which the caller keeps: Close does not close it.
// cfg's connection fields (Mode, Addrs, MasterName, Username, passwords, DB) are ignored;
// a *redis.ClusterClient is used as a cluster.
func OpenClient(ctx context.Context, client redis.UniversalClient, cfg Config) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("redisstore: open: %w: nil client", hook.ErrConfig)
	}
	return start(ctx, client, cfg)
}

func start(ctx context.Context, client redis.UniversalClient, cfg Config) (*Store, error) {
	opts := cfg.Options.WithDefaults()
	if cfg.Channel == "" {
		cfg.Channel = DefaultChannel
	}
	s := &Store{cfg: cfg, opts: opts, log: opts.Logger.With("store", "redisstore"), client: client, k: keys{cfg.Prefix},
		pruneSlack: time.Minute}
	if _, ok := client.(*redis.ClusterClient); ok {
		s.cfg.Mode = Cluster
		s.staged = true
	}
	if err := s.Ping(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: open %v: %w", s.cfg.Mode, err)
	}
	if err := s.loadScripts(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: open %v: load scripts: %w", s.cfg.Mode, err)
	}
	if cfg.Prefix != "" {
		// Custom commands get the prefix on their key arguments, found in the server's
		// command table. A failure here only matters to rules with commands (Prepare says so).
		if err := s.loadCommandTable(ctx); err != nil {
			s.log.Warn("cannot read the command table; custom commands will be refused under a key prefix", "error", err)
		}
	}
	s.w = backend.NewWriter(backend.WriterConfig[op]{
		Store:   "redisstore",
		Options: opts,
		Flush:   s.flush,
		Key:     func(o op) string { return o.key },
		Ping:    s.Ping,
		Size:    op.size,
		Classify: func(err error) backend.Failure {
			if transient(err) {
				return backend.FailRetry
			}
			return backend.FailItem
		},
	})
	if cfg.OnControl != nil {
		s.ctl = s.listen(cfg.Channel, cfg.OnControl)
	}
	return s, nil
}

// Client returns the store's go-redis client.
func (s *Store) Client() redis.UniversalClient { return s.client }

// Mode returns how the store reaches Redis.
func (s *Store) Mode() Mode { return s.cfg.Mode }

// Close stops the control listener, writes out what is queued (giving up when ctx is done)
// and closes the connections if Open made them. Closing again returns the first result.
func (s *Store) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		if s.ctl != nil {
			s.ctl.close()
		}
		s.closeErr = s.w.Close(ctx)
		if s.own {
			if err := s.client.Close(); err != nil && s.closeErr == nil {
				s.closeErr = fmt.Errorf("redisstore: close: %w", err)
			}
		}
	})
	return s.closeErr
}

// Flush returns once every write queued before the call has been written or has failed, or
// ctx is done.
func (s *Store) Flush(ctx context.Context) error { return s.w.Flush(ctx) }

// Stats returns the write counters.
func (s *Store) Stats() backend.Stats { return s.w.Stats() }

// Ping checks that Redis answers (every master, in Cluster mode).
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	if c, ok := s.client.(*redis.ClusterClient); ok {
		return c.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			if err := n.Ping(ctx).Err(); err != nil {
				return fmt.Errorf("redisstore: ping %s: %w", n.Options().Addr, err)
			}
			return nil
		})
	}
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// queryContext bounds ctx by Options.QueryTimeout unless it has an earlier deadline.
func (s *Store) queryContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= s.opts.QueryTimeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.opts.QueryTimeout)
}

// ClientState reads mqtt:client:${clientid}. An unknown client gives an error wrapping
// hook.ErrNotFound.
func (s *Store) ClientState(ctx context.Context, clientID string) (backend.ClientState, error) {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	h, err := s.client.HGetAll(ctx, s.k.client(clientID)).Result()
	if err != nil {
		return backend.ClientState{}, fmt.Errorf("redisstore: client state of %q: %w", clientID, err)
	}
	if len(h) == 0 {
		return backend.ClientState{}, fmt.Errorf("redisstore: client state of %q: %w", clientID, hook.ErrNotFound)
	}
	st := backend.ClientState{ClientID: clientID, Online: h["state"] == "1", Node: h["node"]}
	st.OnlineAt = parseTime(h["online_at"])
	st.OfflineAt = parseTime(h["offline_at"])
	return st, nil
}

// AddSubscription records a subscription in mqtt:sub:${clientid} (HSET), replacing the QoS of
// the same topic filter.
func (s *Store) AddSubscription(ctx context.Context, clientID string, sub hook.Subscription) error {
	if sub.QoS > 2 {
		return fmt.Errorf("redisstore: add subscription %q of %q: invalid QoS %d", sub.Topic, clientID, sub.QoS)
	}
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	if err := s.client.HSet(ctx, s.k.sub(clientID), sub.Topic, int(sub.QoS)).Err(); err != nil {
		return fmt.Errorf("redisstore: add subscription %q of %q: %w", sub.Topic, clientID, err)
	}
	return nil
}

// DeleteSubscription removes a topic filter from mqtt:sub:${clientid} (HDEL); removing one
// that is not there is not an error.
func (s *Store) DeleteSubscription(ctx context.Context, clientID, topic string) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	if err := s.client.HDel(ctx, s.k.sub(clientID), topic).Err(); err != nil {
		return fmt.Errorf("redisstore: delete subscription %q of %q: %w", topic, clientID, err)
	}
	return nil
}

// transient reports whether a write error is worth retrying: the network's (backend's
// IsTransient), and Redis's own passing states.
func transient(err error) bool {
	if backend.IsTransient(err) || errors.Is(err, errScriptsReloaded) || errors.Is(err, errContended) {
		return true
	}
	for _, prefix := range []string{"LOADING", "READONLY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "BUSY", "OOM", "NOSCRIPT", "NOREPLICAS", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, prefix) {
			return true
		}
	}
	return redis.IsMaxClientsError(err)
}

// parseTime reads a Unix time in seconds (online_at, offline_at as the spec writes them) or
// milliseconds (ts); "undefined", "" and garbage give the zero time.
func parseTime(v string) time.Time {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	if n < 1e11 { // seconds: 1e11 s is the year 5138, 1e11 ms is 1973
		return time.Unix(n, 0)
	}
	return time.UnixMilli(n)
}

// ConfigFromPool returns the Config of an EMQX 4.x Redis pool (backend.redis.<pool>.* in
// emqx_backend_redis.conf, read with backend.LoadConfig): type (single, sentinel, cluster),
// server (comma-separated), sentinel (the master name), database, password, pool_size and
// channel. Other settings are left zero (defaults); the caller adds OnControl, Prefix and
// Options beyond the pool size.
func ConfigFromPool(p *backend.Pool) (Config, error) {
	var cfg Config
	var err error
	if cfg.Mode, err = ParseMode(p.String("type", "single")); err != nil {
		return cfg, err
	}
	cfg.Addrs = p.List("server")
	cfg.MasterName = p.String("sentinel", "")
	cfg.Password = p.String("password", "")
	cfg.Channel = p.String("channel", "")
	if cfg.DB, err = p.Int("database", 0); err != nil {
		return cfg, err // a *backend.ConfigError (hook.ErrConfig) naming the setting
	}
	if cfg.Options.PoolSize, err = p.Int("pool_size", 0); err != nil {
		return cfg, err
	}
	return cfg, nil
}

var (
	_ hook.Backend              = (*Store)(nil)
	_ hook.Activator            = (*Store)(nil)
	_ hook.Flusher              = (*Store)(nil)
	_ backend.StatsReporter     = (*Store)(nil)
	_ backend.ClientStateReader = (*Store)(nil)
	_ backend.SubscriptionStore = (*Store)(nil)
	_ backend.Pinger            = (*Store)(nil)
)
