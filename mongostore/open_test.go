package mongostore

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

func TestConfigFromPool(t *testing.T) {
	pool := func(kv ...string) backend.PoolConfig {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return backend.PoolConfig{Store: "mongo", Pool: backend.NewPool("pool1", m)}
	}
	cfg, err := ConfigFromPool(pool("type", "rs", "rs_set_name", "rs0", "server", "h1:27017, h2:27017", "c_pool_size", "16",
		"login", "emqtt", "password", "pw", "w_mode", "unsafe", "r_mode", "slave_ok",
		"topology.pool_size", "4", "topology.max_overflow", "2", "topology.connect_timeout_ms", "20000",
		"topology.socket_timeout_ms", "100", "topology.heartbeat_frequency_ms", "10000"))
	if err != nil {
		t.Fatal(err)
	}
	co := cfg.ClientOptions
	if cfg.Database != "mqtt" || cfg.Options.PoolSize != 16 || !cfg.Unacknowledged ||
		*co.ReplicaSet != "rs0" || len(co.Hosts) != 2 || co.Auth.Username != "emqtt" || co.Auth.AuthSource != "admin" ||
		*co.MaxPoolSize != 6 || *co.ConnectTimeout != 20*time.Second || *co.HeartbeatInterval != 10*time.Second ||
		co.ReadPreference.Mode() != readpref.SecondaryPreferredMode {
		t.Errorf("config %+v, client options %+v", cfg, co)
	}
	single, err := ConfigFromPool(pool("server", "127.0.0.1:27017"))
	if err != nil || single.ClientOptions.Direct == nil || !*single.ClientOptions.Direct || single.Unacknowledged {
		t.Errorf("single: %+v, %v", single, err)
	}
	dsn := pool()
	dsn.DSN = "mongodb://h/other?x=1"
	if c, err := ConfigFromPool(dsn); err != nil || c.URI != dsn.DSN || c.Database != "other" {
		t.Errorf("DSN: %+v, %v", c, err)
	}
	// The broker's -store mongo -dsn keeps the default pool (database = mqtt): a database the
	// URI names wins, else the pool's.
	dsn = pool("database", "mqtt")
	for uri, want := range map[string]string{"mongodb://h/other?x=1": "other", "mongodb://h/": "mqtt", "mongodb://h": "mqtt"} {
		dsn.DSN = uri
		if c, err := ConfigFromPool(dsn); err != nil || c.Database != want {
			t.Errorf("DSN %s over a pool with database mqtt: database %q (%v), want %q", uri, c.Database, err, want)
		}
	}
	for _, bad := range [][]string{
		{"server", "h", "type", "cluster"},
		{"server", "h", "type", "rs"},
		{"server", "h", "sever", "x"},
		{"server", "h", "w_mode", "fast"},
		{"server", "h", "r_mode", "any"},
		{"server", "h", "topology.socket_timeout_ms", "5000"},
		{"server", "h", "topology.pool_size", "x"},
		{"server", "h", "topology.nope", "1"},
		{"server", "h", "password", "pw"},
		{},
	} {
		if _, err := ConfigFromPool(pool(bad...)); !errors.Is(err, hook.ErrConfig) {
			t.Errorf("pool %v: %v, want an error wrapping ErrConfig", bad, err)
		}
	}
}

// TestPasswordNeverShown: the password of a pool is in no error and no log line, whether the
// server refuses it or the connection fails.
func TestPasswordNeverShown(t *testing.T) {
	env := testenv.Mongo(t)
	const secret = "s3cr3t-Pa55"
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	host := strings.TrimSuffix(strings.TrimPrefix(env.URI, "mongodb://"), "/")
	check := func(what string, err error) {
		t.Helper()
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: the error shows the password: %v", what, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, server := range []string{host, "127.0.0.1:1"} {
		b, err := backend.Open(ctx, backend.PoolConfig{Store: "mongo", Pool: backend.NewPool("pool1", map[string]string{
			"server": server, "database": env.Database, "login": "emqtt", "password": secret,
			"topology.server_selection_timeout_ms": "1000", "topology.connect_timeout_ms": "1000",
		}), Options: backend.Options{Logger: log, QueryTimeout: 2 * time.Second}, EnsureSchema: true})
		check("open "+server, err)
		if err == nil {
			check("close", b.Close(ctx))
		}
	}
	// A URI with the password, and a server that does not answer.
	_, err := Open(ctx, Config{URI: "mongodb://emqtt:" + secret + "@127.0.0.1:1/?serverSelectionTimeoutMS=500", Database: "x",
		Options: backend.Options{Logger: log, ConnectTimeout: 500 * time.Millisecond}})
	if err == nil {
		t.Fatal("open of a closed port succeeded")
	}
	check("open URI", err)
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the logs show the password:\n%s", logs.String())
	}
}

// TestRegistry: the store opens under "mongo" with the spec's rules as its default
// configuration, and they register on it.
func TestRegistry(t *testing.T) {
	text, ok := backend.DefaultConfig("mongo")
	if !ok {
		t.Fatal("no default configuration for mongo")
	}
	bc, err := backend.LoadConfig(bytes.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	sc := bc.Stores["mongo"]
	if sc == nil || len(sc.Rules) != 10 {
		t.Fatalf("default configuration: %+v", sc)
	}
	env := testenv.Mongo(t)
	ctx := context.Background()
	if v, _ := sc.Pools["pool1"].Lookup("database"); v != "mqtt" {
		t.Errorf("default database %q, want mqtt", v)
	}
	// The broker's -dsn: the URI replaces the server, and names the database when the pool
	// does not.
	b, err := backend.Open(ctx, backend.PoolConfig{Store: "mongo", Pool: backend.NewPool("pool1", nil), DSN: env.URI + env.Database, EnsureSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "n1"})
	defer d.Close(ctx)
	if err := d.Register(ctx, "mongo", b, sc.Rules...); err != nil {
		t.Fatal(err)
	}
	if got := b.(*Store).cfg.Database; got != env.Database {
		t.Errorf("database %q, want %q (from the DSN)", got, env.Database)
	}
}

// TestTopologyKeys: the driver settings EMQX writes under "topology" reach the driver from
// a pool ("backend.mongo.pool1.topology.<key>", which LoadConfig files as the pool's key
// "topology.<key>") or from the store's settings (PoolConfig.Settings "topology.<key>");
// settings mongo-driver v2 lacks are refused, naming the key, unless they hold EMQX's
// default. EMQX's own file writes them "backend.mongo.topology.<key>", which LoadConfig files
// as a pool named "topology" that no rule names: a broker does not pass it to the store
// (see the package doc, "Configuration").
func TestTopologyKeys(t *testing.T) {
	const conf = `
backend.mongo.pool1.server = 127.0.0.1:27017
backend.mongo.pool1.topology.pool_size = 4
backend.mongo.pool1.topology.max_overflow = 2
backend.mongo.pool1.topology.overflow_ttl = 1000
backend.mongo.pool1.topology.overflow_check_period = 1000
backend.mongo.pool1.topology.local_threshold_ms = 1000
backend.mongo.pool1.topology.connect_timeout_ms = 20000
backend.mongo.pool1.topology.socket_timeout_ms = 100
backend.mongo.pool1.topology.server_selection_timeout_ms = 30000
backend.mongo.pool1.topology.wait_queue_timeout_ms = 1000
backend.mongo.pool1.topology.heartbeat_frequency_ms = 10000
backend.mongo.pool1.topology.min_heartbeat_frequency_ms = 1000
backend.mongo.topology.pool_size = 1
backend.mongo.hook.client.connected.1 = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
`
	bc, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	sc := bc.Stores["mongo"]
	if v, _ := sc.Settings.Lookup("topology.pool_size"); v != "1" || sc.Pools["topology"] != nil {
		t.Errorf("LoadConfig: backend.mongo.topology.pool_size is not the store setting topology.pool_size (pools %v): update the doc", sc.Pools)
	}
	cfg, err := ConfigFromPool(backend.PoolConfig{Store: "mongo", Pool: sc.Pools["pool1"]})
	if err != nil {
		t.Fatal(err)
	}
	co := cfg.ClientOptions
	if *co.MaxPoolSize != 6 || *co.MaxConnIdleTime != time.Second || *co.LocalThreshold != time.Second ||
		*co.ConnectTimeout != 20*time.Second || *co.ServerSelectionTimeout != 30*time.Second || *co.HeartbeatInterval != 10*time.Second {
		t.Errorf("client options from the pool: %+v", co)
	}
	// The store's settings, where a loader files backend.mongo.topology.<key> as the store's.
	st := backend.NewPool("", map[string]string{"topology.pool_size": "3", "topology.connect_timeout_ms": "1500"}).Settings
	cfg, err = ConfigFromPool(backend.PoolConfig{Store: "mongo", Pool: backend.NewPool("pool1", map[string]string{"server": "h"}), Settings: st})
	if err != nil {
		t.Fatal(err)
	}
	if co := cfg.ClientOptions; *co.MaxPoolSize != 3 || *co.ConnectTimeout != 1500*time.Millisecond {
		t.Errorf("client options from the store's settings: %+v", co)
	}
	for key, value := range map[string]string{"topology.socket_timeout_ms": "5000", "topology.wait_queue_timeout_ms": "0",
		"topology.overflow_check_period": "10", "topology.min_heartbeat_frequency_ms": "500", "topology.connect_timeout_ms": "-1",
		"topology.pool_size": "many", "topology.no_such_key": "1"} {
		_, err := ConfigFromPool(backend.PoolConfig{Store: "mongo", Pool: backend.NewPool("pool1", map[string]string{"server": "h", key: value})})
		if !errors.Is(err, hook.ErrConfig) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s = %s: %v; want an ErrConfig naming the key", key, value, err)
		}
	}
}
