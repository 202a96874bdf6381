package mongostore

import (
	"context"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// testOptions flush quickly, so that the suite's Flush calls are not what it waits for.
var testOptions = backend.Options{BatchInterval: time.Millisecond, QueryTimeout: 10 * time.Second}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// testConfig is a store on a fresh database of its own (dropped when t ends).
func testConfig(t testing.TB) Config {
	env := testenv.Mongo(t)
	return Config{URI: env.URI, Database: env.Database, EnsureSchema: true, Options: testOptions, Node: "test@127.0.0.1"}
}

// newStore opens a store on a fresh database, closed at the end of the test.
func newStore(t testing.TB) *Store {
	t.Helper()
	s := openStore(t, testConfig(t))
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func storeOf(b hook.Backend) *Store { return b.(*Store) }

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Harness{
		New:    func(t *testing.T) hook.Backend { return openStore(t, testConfig(t)) },
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend { return openStore(t, storeOf(old).cfg) },
		Twin:   func(t *testing.T, b hook.Backend) hook.Backend { return openStore(t, storeOf(b).cfg) },
		Features: backendtest.Features{
			Functions:        Functions,
			ExpiredTime:      true,
			MaxReturnedCount: true,
			TimeRange:        true,
			BinaryPayload:    true,
			WildcardFetch:    true,
			WildcardRetained: true,
		},
	})
}
