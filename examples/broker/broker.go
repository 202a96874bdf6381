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
	"github.com/mqttstore/mqttstore/sqlstore"
)

// defaultConfig is the configuration without -config: SQLite, and the spec's MySQL/PostgreSQL
// rule list.
//
//go:embed default.conf
var defaultConfig []byte

// config is what the flags say.
type config struct {
	Listen     string // TCP address of the MQTT listener
	Node       string
	ConfigFile string // EMQX backend configuration; "" means defaultConfig
	// Store and DSN, when set, replace the store and the connection of the configuration's
	// only pool, keeping its rules.
	Store string
	DSN   string
	// EnsureSchema creates the missing tables.
	EnsureSchema bool
	Logger       *slog.Logger
}

// storeSpec is one store to open: a pool of a section of the configuration, with the rules
// that name it.
type storeSpec struct {
	Name     string // "sqlite.pool1"
	Dialect  sqlstore.Dialect
	DSN      string
	PoolSize int
	Rules    []hook.Rule
}

// specs returns the stores the configuration names, one per section and pool with rules.
func (c config) specs() ([]storeSpec, error) {
	text, source := defaultConfig, "default configuration"
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
		dialect, err := sqlstore.ParseDialect(name)
		if err != nil {
			return nil, fmt.Errorf("%s: backend.%s: this broker runs the SQL stores (backend.sqlite, backend.pgsql, backend.mysql): %w", source, name, err)
		}
		byPool := map[string][]hook.Rule{}
		for _, r := range sc.Rules {
			byPool[r.Pool] = append(byPool[r.Pool], r)
		}
		for _, pool := range slices.Sorted(maps.Keys(byPool)) {
			spec := storeSpec{Name: name + "." + pool, Dialect: dialect, Rules: byPool[pool]}
			if p := sc.Pools[pool]; p != nil {
				if spec.DSN, err = poolDSN(dialect, p); err != nil {
					return nil, fmt.Errorf("%s: %w", source, err)
				}
				if spec.PoolSize, err = p.Int("pool_size", 0); err != nil {
					return nil, fmt.Errorf("%s: %w", source, err)
				}
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
			d, err := sqlstore.ParseDialect(c.Store)
			if err != nil {
				return nil, fmt.Errorf("-store: %w", err)
			}
			if d != s.Dialect && c.DSN == "" {
				return nil, fmt.Errorf("-store %s needs -dsn", c.Store)
			}
			s.Dialect = d
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
// password, database and ssl for PostgreSQL and MySQL, database (a file name) for SQLite. A
// "dsn" setting is used as it is.
func poolDSN(d sqlstore.Dialect, p *backend.Pool) (string, error) {
	if dsn := p.String("dsn", ""); dsn != "" {
		return dsn, nil
	}
	switch d {
	case sqlstore.SQLite:
		return p.String("database", ""), nil
	case sqlstore.Postgres:
		server := p.String("server", "")
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
	case sqlstore.MySQL:
		server := p.String("server", "")
		if server == "" {
			return "", nil
		}
		mc := mysql.NewConfig()
		mc.Net, mc.Addr = "tcp", server
		mc.User, mc.Passwd, mc.DBName = p.String("user", p.String("username", "")), p.String("password", ""), p.String("database", "")
		return mc.FormatDSN(), nil
	}
	return "", fmt.Errorf("unknown dialect %v", d)
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
	for _, s := range specs {
		if s.Dialect == sqlstore.SQLite {
			if err := makeDir(s.DSN); err != nil {
				return nil, err
			}
		}
		store, err := sqlstore.Open(ctx, sqlstore.Config{
			Dialect:      s.Dialect,
			DSN:          s.DSN,
			Options:      backend.Options{PoolSize: s.PoolSize, Logger: log},
			EnsureSchema: cfg.EnsureSchema,
			Node:         cfg.Node,
		})
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", s.Name, err)
		}
		if err := d.Register(s.Name, store, s.Rules...); err != nil {
			return nil, errors.Join(err, store.Close(ctx))
		}
		log.Info("store ready", "store", s.Name, "dialect", s.Dialect, "rules", len(s.Rules))
	}

	server := mqtt.New(&mqtt.Options{Logger: log, InlineClient: false})
	// An example broker: every client may connect, publish and subscribe.
	if err := server.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, err
	}
	if err := server.AddHook(mochihook.New(server, d, mochihook.Options{Node: cfg.Node, IDs: ids}), nil); err != nil {
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
