package redisstore

import (
	"context"
	_ "embed"
	"errors"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// defaultConfig is the registry's default configuration: a local Redis, the SUB/UNSUB channel
// mqtt_channel, and the spec's Redis rule list.
//
//go:embed default.conf
var defaultConfig []byte

func init() {
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig}, "redis")
}

// poolKeys are the pool settings openPool reads: EMQX's type (single, sentinel or cluster),
// server (a comma-separated list for cluster and sentinel), sentinel (the master name),
// pool_size, database, password and channel (the SUB/UNSUB control channel; none without it),
// and prefix (put before every key; not EMQX's).
var poolKeys = []string{"type", "server", "sentinel", "pool_size", "database", "password", "channel", "prefix"}

// openPool opens a Redis store from an EMQX pool (backend.Open). pc.DSN, when set, replaces
// the server list. Control requests on the channel go to pc.Broker; one for a client that is
// not connected is only recorded (in mqtt:sub:<clientid>, which on_subscribe_lookup applies
// when the client connects).
func openPool(ctx context.Context, pc backend.PoolConfig) (hook.Backend, error) {
	p := pc.Pool
	if err := p.CheckKeys(poolKeys...); err != nil {
		return nil, err
	}
	cfg, err := ConfigFromPool(p)
	if err != nil {
		return nil, err
	}
	cfg.Prefix = p.String("prefix", "")
	cfg.Options = pc.Options // with the pool's pool_size, applied by backend.Open
	if pc.DSN != "" {
		cfg.Addrs = backend.NewPool("dsn", map[string]string{"server": pc.DSN}).List("server")
	}
	if cfg.Channel != "" && pc.Broker != nil {
		log := pc.Options.WithDefaults().Logger
		cfg.OnControl = func(_ context.Context, c Control) error {
			var err error
			switch c.Type {
			case Subscribe:
				err = pc.Broker.Subscribe(c.ClientID, hook.Subscription{Topic: c.Topic, QoS: c.QoS})
			case Unsubscribe:
				err = pc.Broker.Unsubscribe(c.ClientID, c.Topic)
			}
			if errors.Is(err, hook.ErrNotFound) {
				log.Debug("control request for a client that is not connected", "client", c.ClientID, "type", c.Type, "topic", c.Topic)
				return nil
			}
			return err
		}
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, err // not a nil *Store in a non-nil hook.Backend
	}
	return s, nil
}
