package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/examples/mochihook"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/redisstore"
	"github.com/mqttstore/mqttstore/sqlstore"
)

// defaultConfig is the configuration without -config: SQLite, and the spec's MySQL/PostgreSQL
// rule list; defaultRedisConfig is the one for -store redis: the spec's Redis rule list.
var (
	//go:embed default.conf
	defaultConfig []byte
	//go:embed default-redis.conf
	defaultRedisConfig []byte
)

// config is what the flags say.
type config struct {
	Listen     string // TCP address of the MQTT listener
	Node       string
	ConfigFile string // EMQX backend configuration; "" means defaultConfig (or defaultRedisConfig)
	// Store and DSN, when set, replace the store and the connection of the configuration's
	// only pool, keeping its rules.
	Store string
	DSN   string
	// EnsureSchema creates the missing tables (SQL stores).
	EnsureSchema bool
	Logger       *slog.Logger
}

// The kinds of store this broker runs.
const (
	kindSQLite   = "sqlite"
	kindPostgres = "postgres"
	kindMySQL    = "mysql"
	kindRedis    = "redis"
)

// parseKind returns the kind of store a configuration section or -store names: sqlite,
// pgsql (postgres), mysql (mariadb) or redis.
func parseKind(name string) (string, error) {
	if strings.EqualFold(name, kindRedis) {
		return kindRedis, nil
	}
	d, err := sqlstore.ParseDialect(name)
	if err != nil {
		return "", fmt.Errorf("unknown store %q (want sqlite, pgsql, mysql or redis)", name)
	}
	return d.String(), nil
}

// storeSpec is one store to open: a pool of a section of the configuration, with the rules
// that name it.
type storeSpec struct {
	Name  string // "sqlite.pool1"
	Kind  string
	DSN   string // SQL: the connection; Redis: the server addresses, comma separated
	Pool  *backend.Pool
	Rules []hook.Rule
}

// defaultText returns the configuration to use without -config.
func (c config) defaultText() []byte {
	if strings.EqualFold(c.Store, kindRedis) {
		return defaultRedisConfig
	}
	return defaultConfig
}

// specs returns the stores the configuration names, one per section and pool with rules.
func (c config) specs() ([]storeSpec, error) {
	text, source := c.defaultText(), "default configuration"
	if c.ConfigFile != "" {
		var err error
		if text, err = os.ReadFile(c.ConfigFile); err != nil {
			return nil, err
		}
		source = c.ConfigFile
	}
	bc, err := backend.LoadConfig(bytes.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	var specs []storeSpec
	for _, name := range slices.Sorted(maps.Keys(bc.Stores)) {
		sc := bc.Stores[name]
		if len(sc.Rules) == 0 {
			continue
		}
		kind, err := parseKind(name)
		if err != nil {
			return nil, fmt.Errorf("%s: backend.%s: %w", source, name, err)
		}
		byPool := map[string][]hook.Rule{}
		for _, r := range sc.Rules {
			byPool[r.Pool] = append(byPool[r.Pool], r)
		}
		for _, pool := range slices.Sorted(maps.Keys(byPool)) {
			p := sc.Pools[pool]
			if p == nil {
				p = &backend.Pool{Name: pool}
			}
			spec := storeSpec{Name: name + "." + pool, Kind: kind, Pool: p, Rules: byPool[pool]}
			if spec.DSN, err = poolDSN(kind, p); err != nil {
				return nil, fmt.Errorf("%s: %w", source, err)
			}
			specs = append(specs, spec)
		}
	}
	if len(specs) == 0 {
		return nil, fmt.Errorf("%s: no rules (backend.<store>.hook.<point>.<n> = ...)", source)
	}
	if c.Store != "" || c.DSN != "" {
		if len(specs) > 1 {
			return nil, fmt.Errorf("-store and -dsn replace the store of a configuration with one pool; %s has %d", source, len(specs))
		}
		s := &specs[0]
		if c.Store != "" {
			kind, err := parseKind(c.Store)
			if err != nil {
				return nil, fmt.Errorf("-store: %w", err)
			}
			if kind != s.Kind && c.DSN == "" {
				return nil, fmt.Errorf("-store %s needs -dsn", c.Store)
			}
			s.Kind = kind
		}
		if c.DSN != "" {
			s.DSN = c.DSN
		}
	}
	for _, s := range specs {
		if s.DSN == "" {
			return nil, fmt.Errorf("%s: store %s: no connection: set the pool's settings or -dsn", source, s.Name)
		}
	}
	return specs, nil
}

// poolDSN builds the connection string of an EMQX pool: server, username (MySQL: user),
// password, database and ssl for PostgreSQL and MySQL, database (a file name) for SQLite, the
// server list for Redis (its other settings are read when the store opens). A "dsn" setting
// is used as it is.
func poolDSN(kind string, p *backend.Pool) (string, error) {
	if dsn := p.String("dsn", ""); dsn != "" {
		return dsn, nil
	}
	server := p.String("server", "")
	switch kind {
	case kindSQLite:
		return p.String("database", ""), nil
	case kindRedis:
		return server, nil
	case kindPostgres:
		if server == "" {
			return "", nil
		}
		ssl, err := p.Bool("ssl", false)
		if err != nil {
			return "", err
		}
		u := url.URL{Scheme: "postgres", Host: server, Path: "/" + p.String("database", "")}
		if user := p.String("username", ""); user != "" {
			u.User = url.UserPassword(user, p.String("password", ""))
		}
		u.RawQuery = "sslmode=disable"
		if ssl {
			u.RawQuery = "sslmode=require"
		}
		return u.String(), nil
	case kindMySQL:
		if server == "" {
			return "", nil
		}
		mc := mysql.NewConfig()
		mc.Net, mc.Addr = "tcp", server
		mc.User, mc.Passwd, mc.DBName = p.String("user", p.String("username", "")), p.String("password", ""), p.String("database", "")
		return mc.FormatDSN(), nil
	}
	return "", fmt.Errorf("unknown store kind %q", kind)
}

// open opens the store s names. Subscribe requests from the Redis control channel go to h.
func (s storeSpec) open(ctx context.Context, cfg config, log *slog.Logger, h *mochihook.Hook) (hook.Backend, error) {
	poolSize, err := s.Pool.Int("pool_size", 0)
	if err != nil {
		return nil, err
	}
	opts := backend.Options{PoolSize: poolSize, Logger: log}
	if s.Kind == kindRedis {
		return openRedis(ctx, s, opts, log, h)
	}
	dialect, _ := sqlstore.ParseDialect(s.Kind)
	if dialect == sqlstore.SQLite {
		if err := makeDir(s.DSN); err != nil {
			return nil, err
		}
	}
	return sqlstore.Open(ctx, sqlstore.Config{
		Dialect:      dialect,
		DSN:          s.DSN,
		Options:      opts,
		EnsureSchema: cfg.EnsureSchema,
		Node:         cfg.Node,
	})
}

// openRedis opens a Redis store from the EMQX pool settings: type (single, sentinel or
// cluster), server, sentinel (the master name), database, password, channel (the SUB/UNSUB
// control channel; none without it), and prefix (put before every key; not EMQX's).
func openRedis(ctx context.Context, s storeSpec, opts backend.Options, log *slog.Logger, h *mochihook.Hook) (hook.Backend, error) {
	p := s.Pool
	mode, err := redisstore.ParseMode(p.String("type", "single"))
	if err != nil {
		return nil, err
	}
	db, err := p.Int("database", 0)
	if err != nil {
		return nil, err
	}
	rc := redisstore.Config{
		Mode:       mode,
		Addrs:      strings.Split(s.DSN, ","),
		MasterName: p.String("sentinel", ""),
		Password:   p.String("password", ""),
		DB:         db,
		Prefix:     p.String("prefix", ""),
		Options:    opts,
	}
	for i := range rc.Addrs {
		rc.Addrs[i] = strings.TrimSpace(rc.Addrs[i])
	}
	if rc.Channel = p.String("channel", ""); rc.Channel != "" {
		rc.OnControl = func(_ context.Context, c redisstore.Control) error {
			var err error
			switch c.Type {
			case redisstore.Subscribe:
				err = h.Subscribe(c.ClientID, hook.Subscription{Topic: c.Topic, QoS: c.QoS})
			case redisstore.Unsubscribe:
				err = h.Unsubscribe(c.ClientID, c.Topic)
			}
			if errors.Is(err, mochihook.ErrNotConnected) {
				// Recorded in mqtt:sub:<clientid>, which on_subscribe_lookup applies when it connects.
				log.Debug("control request for a client that is not connected", "client", c.ClientID, "type", c.Type, "topic", c.Topic)
				return nil
			}
			return err
		}
	}
	return redisstore.Open(ctx, rc)
}

// broker is a running mochi broker with the stores of a configuration.
type broker struct {
	server *mqtt.Server
	d      *hook.Dispatcher
	addr   string
	once   sync.Once
}

// start opens the stores, registers their rules and starts the broker on cfg.Listen.
func start(ctx context.Context, cfg config) (_ *broker, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	specs, err := cfg.specs()
	if err != nil {
		return nil, err
	}
	ids := hook.NewIDGenerator(cfg.Node)
	d := hook.NewDispatcher(hook.DispatcherOptions{Logger: log, Node: cfg.Node, IDs: ids})
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close(context.Background()))
		}
	}()
	server := mqtt.New(&mqtt.Options{Logger: log})
	h := mochihook.New(server, d, mochihook.Options{})
	for _, s := range specs {
		store, err := s.open(ctx, cfg, log, h)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", s.Name, err)
		}
		if err := d.Register(context.Background(), s.Name, store, s.Rules...); err != nil {
			return nil, errors.Join(err, store.Close(ctx))
		}
		log.Info("store ready", "store", s.Name, "kind", s.Kind, "rules", len(s.Rules))
	}

	// An example broker: every client may connect, publish and subscribe.
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := server.AddHook(h, nil); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, err
	}
	if err := server.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		ln.Close()
		return nil, err
	}
	if err := server.Serve(); err != nil {
		server.Close()
		return nil, err
	}
	return &broker{server: server, d: d, addr: ln.Addr().String()}, nil
}

// makeDir creates the directory of a SQLite database file.
func makeDir(dsn string) error {
	if dsn == ":memory:" || strings.HasPrefix(dsn, "file:") {
		return nil
	}
	if dir := filepath.Dir(dsn); dir != "." {
		return os.MkdirAll(dir, 0o755)
	}
	return nil
}

// Close disconnects the clients, stops the broker, and writes out what the stores have
// queued, giving up when ctx is done. Closing again does nothing.
func (b *broker) Close(ctx context.Context) error {
	var err error
	b.once.Do(func() {
		b.server.Close() // returns once every client's disconnect has been dispatched
		err = b.d.Close(ctx)
	})
	return err
}
