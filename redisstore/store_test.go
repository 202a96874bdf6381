package redisstore

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// testOptions flush quickly, so that the suite's Flush calls are not what it waits for.
var testOptions = backend.Options{BatchInterval: time.Millisecond, QueryTimeout: 10 * time.Second}

// deployment is a Redis deployment of scripts/services.
type deployment struct {
	name string
	mode Mode
	env  func(testing.TB) testenv.RedisConfig
}

var deployments = []deployment{
	{"single", Single, testenv.Redis},
	{"sentinel", Sentinel, testenv.RedisSentinel},
	{"cluster", Cluster, testenv.RedisCluster},
}

// configFor returns a Config on a fresh key prefix of d.
func configFor(t testing.TB, d deployment) Config {
	t.Helper()
	rc := d.env(t)
	return Config{Mode: d.mode, Addrs: rc.Addrs, MasterName: rc.MasterName, DB: rc.DB, Prefix: rc.Prefix, Options: testOptions}
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(%v): %v", cfg.Mode, err)
	}
	return s
}

// newStore opens a store on a fresh prefix of d, closed when the test ends.
func newStore(t testing.TB, d deployment) *Store {
	t.Helper()
	s := openStore(t, configFor(t, d))
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func TestConformance(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, harness(d))
		})
	}
}

func harness(d deployment) backendtest.Harness {
	return backendtest.Harness{
		New:    func(t *testing.T) hook.Backend { return openStore(t, configFor(t, d)) },
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend { return openStore(t, old.(*Store).cfg) },
		Twin:   func(t *testing.T, b hook.Backend) hook.Backend { return openStore(t, b.(*Store).cfg) },
		Features: backendtest.Features{
			Functions:        Functions,
			ExpiredTime:      true,
			MaxReturnedCount: true,
			TimeRange:        true,
			BinaryPayload:    true,
			WildcardFetch:    true,
			WildcardRetained: true,
		},
		Custom: &backendtest.CustomActions{
			Record: recordAction,
			Read: func(ctx context.Context, b hook.Backend) ([]backendtest.Record, error) {
				return readRecords(ctx, b.(*Store))
			},
		},
	}
}

// recordAction appends one entry per event to the stream "rec" (under the store's prefix),
// a field per placeholder: XADD rec * clientid ${clientid} payload ${payload} ...
func recordAction(vars []string) hook.RuleAction {
	var b strings.Builder
	b.WriteString("XADD rec *")
	for _, v := range vars {
		fmt.Fprintf(&b, " %s ${%s}", v, v)
	}
	return hook.RuleAction{Commands: []string{b.String()}}
}

func readRecords(ctx context.Context, s *Store) ([]backendtest.Record, error) {
	entries, err := s.client.XRange(ctx, s.k.prefix+"rec", "-", "+").Result()
	if err != nil {
		return nil, err
	}
	var out []backendtest.Record
	for _, e := range entries {
		r := backendtest.Record{}
		for k, v := range e.Values {
			r[k] = fmt.Sprint(v)
		}
		out = append(out, r)
	}
	return out, nil
}
