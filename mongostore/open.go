package mongostore

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// defaultConfig is the registry's default configuration: a local server, the database mqtt,
// and the spec's Mongo rule list.
//
//go:embed default.conf
var defaultConfig []byte

func init() {
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig}, "mongo", "mongodb")
}

// poolKeys are the pool settings openPool reads: EMQX's (type, rs_set_name, server,
// pool_size or c_pool_size, database, login, password, auth_source, ssl with keyfile,
// certfile and cacertfile, w_mode, r_mode), and the driver settings "topology.<key>" (EMQX
// writes those as backend.mongo.topology.<key>; see topologyKeys).
var poolKeys = append([]string{"type", "rs_set_name", "server", "pool_size", "c_pool_size", "database", "login",
	"password", "auth_source", "w_mode", "r_mode"}, backend.TLSKeys...)

// topologyKeys are EMQX's backend.mongo.topology.* settings (erlang mongodb driver), in
// milliseconds where named so. Mapped: pool_size (+ max_overflow) to the driver's
// MaxPoolSize per server, overflow_ttl to MaxConnIdleTime, local_threshold_ms,
// connect_timeout_ms, server_selection_timeout_ms, heartbeat_frequency_ms. The others have no
// equivalent in mongo-driver v2 and are refused unless they hold EMQX's default (which then
// changes nothing): overflow_check_period (1000), socket_timeout_ms (100: operations are
// bounded by the store's QueryTimeout instead), wait_queue_timeout_ms (1000: bounded by
// the operation's context), min_heartbeat_frequency_ms (1000: the driver's is fixed, 500).
var topologyKeys = []string{"pool_size", "max_overflow", "overflow_ttl", "overflow_check_period", "local_threshold_ms",
	"connect_timeout_ms", "socket_timeout_ms", "server_selection_timeout_ms", "wait_queue_timeout_ms",
	"heartbeat_frequency_ms", "min_heartbeat_frequency_ms"}

var topologyFixed = map[string]int{"overflow_check_period": 1000, "socket_timeout_ms": 100, "wait_queue_timeout_ms": 1000, "min_heartbeat_frequency_ms": 1000}

// openPool opens a MongoDB store from an EMQX pool (backend.Open). pc.DSN, when set, is a
// MongoDB URI replacing type, server, rs_set_name, login, password and auth_source (the
// database stays the pool's, "mqtt" by default, unless the URI names one).
func openPool(ctx context.Context, pc backend.PoolConfig) (hook.Backend, error) {
	cfg, err := ConfigFromPool(pc)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, err // not a nil *Store in a non-nil hook.Backend
	}
	return s, nil
}

// ConfigFromPool returns the Config of an EMQX pool (see openPool). Its errors never hold the
// password.
func ConfigFromPool(pc backend.PoolConfig) (Config, error) {
	p := pc.Pool
	if p == nil {
		p = backend.NewPool("pool1", nil)
	}
	known := append([]string(nil), poolKeys...)
	for _, k := range topologyKeys {
		known = append(known, "topology."+k)
	}
	if err := p.CheckKeys(known...); err != nil {
		return Config{}, err
	}
	for _, k := range pc.Settings.Keys() { // backend.mongo.<key>, where a broker passes them
		if name, ok := strings.CutPrefix(k, "topology."); !ok || !contains(topologyKeys, name) {
			return Config{}, fmt.Errorf("mongostore: %w: unknown setting backend.%s.%s", hook.ErrConfig, pc.Store, k)
		}
	}
	co := options.Client()
	cfg := Config{Database: p.String("database", "mqtt"), Options: pc.Options, EnsureSchema: pc.EnsureSchema, Node: pc.Node}
	if n, err := p.Int("c_pool_size", 0); err != nil {
		return Config{}, err
	} else if n > 0 && pc.Options.PoolSize == 0 {
		cfg.Options.PoolSize = n
	}
	if pc.DSN != "" {
		cfg.URI = pc.DSN
		if db := uriDatabase(pc.DSN); db != "" { // the broker's -dsn names the database over the default pool's
			cfg.Database = db
		}
	} else {
		servers := p.List("server")
		if len(servers) == 0 {
			return Config{}, fmt.Errorf("mongostore: %w: no server (backend.%s.%s.server) and no DSN", hook.ErrConfig, pc.Store, p.Name)
		}
		co.SetHosts(servers)
		switch typ := p.String("type", "single"); typ {
		case "single":
			if len(servers) == 1 {
				co.SetDirect(true)
			}
		case "unknown", "sharded":
		case "rs":
			name := p.String("rs_set_name", "")
			if name == "" {
				return Config{}, fmt.Errorf("mongostore: %w: type = rs needs rs_set_name", hook.ErrConfig)
			}
			co.SetReplicaSet(name)
		default:
			return Config{}, fmt.Errorf("mongostore: %w: type %q (want single, unknown, sharded or rs)", hook.ErrConfig, typ)
		}
		if login := p.String("login", ""); login != "" {
			co.SetAuth(options.Credential{Username: login, Password: p.String("password", ""), AuthSource: p.String("auth_source", "admin")})
		} else if p.String("password", "") != "" {
			return Config{}, fmt.Errorf("mongostore: %w: a password without login", hook.ErrConfig)
		}
	}
	switch w := p.String("w_mode", "safe"); w {
	case "safe":
	case "unsafe":
		cfg.Unacknowledged = true
	default:
		return Config{}, fmt.Errorf("mongostore: %w: w_mode %q (want safe or unsafe)", hook.ErrConfig, w)
	}
	switch r := p.String("r_mode", "master"); r {
	case "master":
		co.SetReadPreference(readpref.Primary())
	case "slave_ok", "slaver_ok":
		co.SetReadPreference(readpref.SecondaryPreferred())
	default:
		return Config{}, fmt.Errorf("mongostore: %w: r_mode %q (want master or slave_ok)", hook.ErrConfig, r)
	}
	if cfg.Options.TLS == nil {
		tlsc, err := p.TLS()
		if err != nil {
			return Config{}, err
		}
		cfg.Options.TLS = tlsc
	}
	if err := applyTopology(co, p, pc.Settings); err != nil {
		return Config{}, err
	}
	cfg.ClientOptions = co
	return cfg, nil
}

// applyTopology maps the topology settings (pool keys "topology.<key>", or the store's
// settings of that name) to driver options.
func applyTopology(co *options.ClientOptions, p *backend.Pool, st backend.Settings) error {
	get := func(k string) (int, bool, error) {
		for _, s := range []backend.Settings{p.Settings, st} {
			if v, ok := s.Lookup("topology." + k); ok && v != "" {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 {
					return 0, false, fmt.Errorf("mongostore: %w: topology.%s: want a non-negative integer, got %q", hook.ErrConfig, k, v)
				}
				return n, true, nil
			}
		}
		return 0, false, nil
	}
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	for _, k := range topologyKeys {
		n, ok, err := get(k)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		switch k {
		case "pool_size":
			over, _, _ := get("max_overflow")
			co.SetMaxPoolSize(uint64(n + over))
		case "max_overflow":
		case "overflow_ttl":
			co.SetMaxConnIdleTime(ms(n))
		case "local_threshold_ms":
			co.SetLocalThreshold(ms(n))
		case "connect_timeout_ms":
			co.SetConnectTimeout(ms(n))
		case "server_selection_timeout_ms":
			co.SetServerSelectionTimeout(ms(n))
		case "heartbeat_frequency_ms":
			co.SetHeartbeatInterval(ms(n))
		default:
			if n != topologyFixed[k] {
				return fmt.Errorf("mongostore: %w: topology.%s = %d: mongo-driver v2 has no such setting (only EMQX's default, %d, is accepted)", hook.ErrConfig, k, n, topologyFixed[k])
			}
		}
	}
	return nil
}

// uriDatabase returns the database a MongoDB URI names ("mongodb://h/db?x" → "db").
func uriDatabase(uri string) string {
	_, rest, ok := strings.Cut(uri, "://")
	if !ok {
		return ""
	}
	_, path, ok := strings.Cut(rest, "/")
	if !ok {
		return ""
	}
	db, _, _ := strings.Cut(path, "?")
	return db
}
