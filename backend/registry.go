package backend

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/mqttstore/mqttstore/hook"
)

// PoolConfig is what a store needs to open one of its EMQX pools: the pool's settings
// ("backend.pgsql.pool1.server = ..."), the store section's own settings
// ("backend.dynamo.region = ..."), the options every store shares, and the broker.
type PoolConfig struct {
	// Store is the section's name as the configuration writes it ("pgsql", "redis", ...).
	Store string
	// Pool holds the pool's settings (server, pool_size, username, password, ...). Never nil
	// when Open calls an Opener.
	Pool *Pool
	// Settings are the store section's own settings. The zero value holds none.
	Settings Settings
	// DSN, when set, replaces the connection the pool's settings describe (a SQL DSN, a Redis
	// address list, a MongoDB URI, ...), in the store's own syntax.
	DSN string
	// Options are the shared options; the pool's pool_size, when set, overrides PoolSize.
	Options Options
	// Node is the broker's node name (hook.Dispatcher.Node).
	Node string
	// EnsureSchema asks the store to create the tables, indexes or keyspaces that are missing.
	EnsureSchema bool
	// Broker lets a store act on the broker (Redis's SUB/UNSUB control channel). Nil: the
	// store does not offer such requests.
	Broker BrokerControl
}

// BrokerControl is what a store may ask of the broker: subscribe a client, or unsubscribe it,
// on behalf of a business server (EMQX's Redis SUB/UNSUB channel). A client that is not
// connected to this broker gives an error wrapping hook.ErrNotFound; the store then only
// records the request (for on_subscribe_lookup to apply when it connects).
type BrokerControl interface {
	Subscribe(clientID string, sub hook.Subscription) error
	Unsubscribe(clientID, topic string) error
}

// Opener opens a store for one pool. It returns a backend that owns its connections.
type Opener func(ctx context.Context, pc PoolConfig) (hook.Backend, error)

// Driver is a store as the registry knows it.
type Driver struct {
	// Open opens the store for a pool. Required.
	Open Opener
	// Config is the store's default configuration in the EMQX format: its pool settings for a
	// local server and the spec's rule list, what a broker runs when told only the store's
	// name (examples/broker -store NAME). Optional.
	Config []byte
}

var registry = struct {
	sync.RWMutex
	drivers map[string]Driver
}{drivers: make(map[string]Driver)}

// Register makes a store available to Open under the configuration section names given
// (case-insensitive; e.g. "pgsql", "postgres"), as database/sql's Register does for drivers.
// Stores call it from an init function, so importing a store's package is what makes it
// available. It panics if d.Open is nil or a name is taken: both are programming errors.
func Register(d Driver, names ...string) {
	if d.Open == nil {
		panic("backend.Register: nil Open")
	}
	registry.Lock()
	defer registry.Unlock()
	for _, n := range names {
		n = strings.ToLower(n)
		if _, dup := registry.drivers[n]; dup {
			panic("backend.Register: store " + n + " registered twice")
		}
		registry.drivers[n] = d
	}
}

// DefaultConfig returns the default configuration of the store registered as name (see
// Driver.Config), and whether there is one.
func DefaultConfig(name string) ([]byte, bool) {
	registry.RLock()
	defer registry.RUnlock()
	d := registry.drivers[strings.ToLower(name)]
	return d.Config, d.Config != nil
}

// Stores returns the names registered, sorted.
func Stores() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.drivers))
	for n := range registry.drivers {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Open opens the store registered as pc.Store (case-insensitive) for pc.Pool. The error wraps
// hook.ErrConfig when no store of that name is registered (the message lists those that are)
// or when the settings cannot be used.
func Open(ctx context.Context, pc PoolConfig) (hook.Backend, error) {
	registry.RLock()
	open := registry.drivers[strings.ToLower(pc.Store)].Open
	registry.RUnlock()
	if open == nil {
		return nil, fmt.Errorf("backend: open %q: %w: no such store (registered: %s; import the store's package)",
			pc.Store, hook.ErrConfig, strings.Join(Stores(), ", "))
	}
	if pc.Pool == nil {
		pc.Pool = &Pool{Name: "pool1"}
	}
	n, err := pc.Pool.Int("pool_size", 0)
	if err != nil {
		return nil, fmt.Errorf("backend: open %s.%s: %w", pc.Store, pc.Pool.Name, err)
	}
	if n > 0 {
		pc.Options.PoolSize = n
	}
	b, err := open(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("backend: open %s.%s: %w", pc.Store, pc.Pool.Name, err)
	}
	return b, nil
}
