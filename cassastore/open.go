package cassastore

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// defaultConfig is the registry's default configuration: a local node, the keyspace mqtt,
// and the spec's Cassandra rule list.
//
//go:embed default.conf
var defaultConfig []byte

func init() {
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig}, "cassa", "cassandra", "ecql")
}

// poolKeys are the pool settings ConfigFromPool reads: EMQX's (nodes, size, auto_reconnect,
// username, password, keyspace, logger), pool_size (as size), and ssl with keyfile,
// certfile and cacertfile.
var poolKeys = append([]string{"nodes", "size", "pool_size", "auto_reconnect", "username", "password", "keyspace", "logger"}, backend.TLSKeys...)

// openPool opens a Cassandra store from an EMQX pool (backend.Open).
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

// ConfigFromPool returns the Config of an EMQX pool (backend.ecql.pool1.*): nodes
// ("host:port", comma-separated), size (connections per node), auto_reconnect (seconds
// between tries of a node that is down; 0 means the default, 1), username and password,
// keyspace (default mqtt), logger (EMQX's log level: checked, the driver logs through
// Options.Logger), and TLS (ssl, keyfile, certfile, cacertfile). pc.DSN, when set, replaces
// nodes with its comma-separated "host:port" list. Its errors never hold the password.
func ConfigFromPool(pc backend.PoolConfig) (Config, error) {
	p := pc.Pool
	if p == nil {
		p = backend.NewPool("pool1", nil)
	}
	if err := p.CheckKeys(poolKeys...); err != nil {
		return Config{}, err
	}
	if keys := pc.Settings.Keys(); len(keys) > 0 {
		return Config{}, fmt.Errorf("cassastore: %w: unknown setting backend.%s.%s", hook.ErrConfig, pc.Store, keys[0])
	}
	cfg := Config{
		Hosts:        p.List("nodes"),
		Keyspace:     p.String("keyspace", "mqtt"),
		Username:     p.String("username", ""),
		Password:     p.String("password", ""),
		Node:         pc.Node,
		EnsureSchema: pc.EnsureSchema,
		Options:      pc.Options,
	}
	if pc.DSN != "" {
		cfg.Hosts = strings.Split(pc.DSN, ",")
	}
	if len(cfg.Hosts) == 0 {
		return Config{}, fmt.Errorf("cassastore: %w: no nodes (backend.ecql.%s.nodes) and no DSN", hook.ErrConfig, p.Name)
	}
	n, err := p.Int("size", 0)
	if err != nil {
		return Config{}, err
	}
	if n > 0 {
		cfg.ConnsPerHost = n
		if pc.Options.PoolSize == 0 {
			cfg.Options.PoolSize = n
		}
	}
	if cfg.ReconnectInterval, err = p.Duration("auto_reconnect", time.Second, time.Second); err != nil {
		return Config{}, err
	}
	switch lvl := p.String("logger", "info"); lvl {
	case "debug", "info", "notice", "warning", "error", "critical":
	default:
		return Config{}, fmt.Errorf("cassastore: %w: logger %q (want debug, info, notice, warning, error or critical)", hook.ErrConfig, lvl)
	}
	if cfg.Options.TLS == nil {
		if cfg.Options.TLS, err = p.TLS(); err != nil {
			return Config{}, err
		}
	}
	return cfg, nil
}
