package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/mqttstore/mqttstore/backend"
	_ "github.com/mqttstore/mqttstore/cassastore"  // registers "cassa", "cassandra" and "ecql"
	_ "github.com/mqttstore/mqttstore/dynamostore" // registers "dynamo"
	"github.com/mqttstore/mqttstore/examples/mochihook"
	"github.com/mqttstore/mqttstore/hook"
	_ "github.com/mqttstore/mqttstore/mongostore"     // registers "mongo"
	_ "github.com/mqttstore/mqttstore/redisstore"     // registers "redis"
	_ "github.com/mqttstore/mqttstore/sqlstore"       // registers "sqlite", "pgsql", "mysql" and their aliases
	_ "github.com/mqttstore/mqttstore/tsdb/influx"    // registers "influxdb"
	_ "github.com/mqttstore/mqttstore/tsdb/opentsdb"  // registers "opentsdb"
	_ "github.com/mqttstore/mqttstore/tsdb/timescale" // registers "timescale"
)

// config is what the flags say.
type config struct {
	Listen     string // TCP address of the MQTT listener
	Node       string
	ConfigFile string // EMQX backend configuration; "" means the store's default (backend.DefaultConfig)
	// Store and DSN, when set, replace the store and the connection of the configuration's
	// only pool, keeping its rules.
	Store string
	DSN   string
	// EnsureSchema creates the missing tables (SQL stores).
	EnsureSchema bool
	Logger       *slog.Logger
	// Auth authenticates clients and checks what they publish and read (OnConnectAuthenticate,
	// OnACLCheck), for live and stored messages alike. Nil means auth.AllowHook: every client
	// may connect, publish and subscribe. AuthConfig is given to its Init.
	Auth       mqtt.Hook
	AuthConfig any
}

// storeSpec is one store to open: a pool of a section of the configuration, with the rules
// that name it.
type storeSpec struct {
	Name  string // "sqlite.pool1"
	Store string // the section's name, which names the store in the backend registry
	Pool  *backend.Pool
	Rules []hook.Rule
	DSN   string // -dsn: replaces the pool's connection settings
}

// defaultStore is the store without -config or -store: SQLite in data/.
const defaultStore = "sqlite"

// defaultText returns the configuration to use without -config: the default configuration
// the store -store names registered (backend.Driver.Config; the SQL stores share theirs,
// SQLite in data/ with the spec's SQL rules, which -store and -dsn point elsewhere), nil for
// an unknown store.
func (c config) defaultText() []byte {
	name := c.Store
	if name == "" {
		name = defaultStore
	}
	text, _ := backend.DefaultConfig(name)
	return text
}

// specs returns the stores the configuration names, one per section and pool with rules.
func (c config) specs() ([]storeSpec, error) {
	text, source := c.defaultText(), "default configuration"
	if c.ConfigFile == "" && text == nil {
		return nil, fmt.Errorf("-store: unknown store %q (this broker has %s)", c.Store, strings.Join(backend.Stores(), ", "))
	}
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
		if !slices.Contains(backend.Stores(), strings.ToLower(name)) {
			return nil, fmt.Errorf("%s: backend.%s: unknown store (this broker has %s)", source, name, strings.Join(backend.Stores(), ", "))
		}
		byPool := map[string][]hook.Rule{}
		for _, r := range sc.Rules {
			byPool[r.Pool] = append(byPool[r.Pool], r)
		}
		for _, pool := range slices.Sorted(maps.Keys(byPool)) {
			p := sc.Pools[pool]
			if p == nil {
				p = backend.NewPool(pool, nil)
			}
			specs = append(specs, storeSpec{Name: name + "." + pool, Store: name, Pool: p, Rules: byPool[pool]})
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
		if c.Store != "" && !strings.EqualFold(c.Store, s.Store) {
			if !slices.Contains(backend.Stores(), strings.ToLower(c.Store)) {
				return nil, fmt.Errorf("-store: unknown store %q (this broker has %s)", c.Store, strings.Join(backend.Stores(), ", "))
			}
			if c.DSN == "" {
				return nil, fmt.Errorf("-store %s needs -dsn", c.Store)
			}
			s.Store, s.Pool = c.Store, backend.NewPool(s.Pool.Name, nil)
			s.Name = c.Store + "." + s.Pool.Name
		}
		s.DSN = c.DSN
	}
	return specs, nil
}

// open opens the store s names through the backend registry.
func (s storeSpec) open(ctx context.Context, cfg config, log *slog.Logger, h *mochihook.Hook) (hook.Backend, error) {
	return backend.Open(ctx, backend.PoolConfig{
		Store:        s.Store,
		Pool:         s.Pool,
		DSN:          s.DSN,
		Options:      backend.Options{Logger: log},
		Node:         cfg.Node,
		EnsureSchema: cfg.EnsureSchema,
		Broker:       h,
	})
}

// broker is a running mochi broker with the stores of a configuration.
type broker struct {
	hook *mochihook.Hook
	d    *hook.Dispatcher
	addr string
	once sync.Once
}

// start opens the stores, registers their rules and starts the broker on cfg.Listen.
func start(ctx context.Context, cfg config) (_ *broker, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = slog.New(hygiene{log.Handler()}) // no passwords or megabytes of payload in the logs
	specs, err := cfg.specs()
	if err != nil {
		return nil, err
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Logger: log, Node: cfg.Node})
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close(context.Background()))
		}
	}()
	server := mqtt.New(&mqtt.Options{Logger: log})
	authHook := cfg.Auth
	if authHook == nil {
		authHook = new(auth.AllowHook) // an example broker: every client may do anything
	}
	h := mochihook.New(server, d, mochihook.Options{ACL: mochihook.CheckACL(authHook)})
	for _, s := range specs {
		store, err := s.open(ctx, cfg, log, h)
		if err != nil {
			return nil, fmt.Errorf("store %s: %w", s.Name, err)
		}
		if err := d.Register(ctx, s.Name, store, s.Rules...); err != nil {
			return nil, errors.Join(err, store.Close(ctx))
		}
		log.Info("store ready", "store", s.Name, "rules", len(s.Rules))
	}

	if err := server.AddHook(authHook, cfg.AuthConfig); err != nil {
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
	return &broker{hook: h, d: d, addr: ln.Addr().String()}, nil
}

// Close disconnects the clients, stops the broker, and writes out what the stores have
// queued, giving up when ctx is done (a hard limit: see mochihook.Hook.Shutdown). Closing
// again does nothing.
func (b *broker) Close(ctx context.Context) error {
	var err error
	b.once.Do(func() { err = b.hook.Shutdown(ctx) })
	return err
}
