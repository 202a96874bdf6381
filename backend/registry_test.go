package backend_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

type nopBackend struct{ pc backend.PoolConfig }

func (nopBackend) Prepare(*hook.Rule) (hook.Action, error) { return nil, hook.ErrUnsupported }
func (nopBackend) Close(context.Context) error             { return nil }

func TestRegistry(t *testing.T) {
	backend.Register(backend.Driver{Open: func(_ context.Context, pc backend.PoolConfig) (hook.Backend, error) {
		if pc.Pool.String("fail", "") != "" {
			return nil, errors.New("refused")
		}
		return nopBackend{pc}, nil
	}, Config: []byte("backend.registry-test.pool1.x = 1\n")}, "registry-test", "Registry-Test-Alias")
	if c, ok := backend.DefaultConfig("registry-test-ALIAS"); !ok || string(c) != "backend.registry-test.pool1.x = 1\n" {
		t.Errorf("DefaultConfig = %q, %v", c, ok)
	}
	if _, ok := backend.DefaultConfig("nosuch"); ok {
		t.Error("DefaultConfig of an unknown store found one")
	}
	if names := backend.Stores(); !slices.Contains(names, "registry-test") || !slices.Contains(names, "registry-test-alias") {
		t.Errorf("Stores() = %v, want both names, lower case", names)
	}

	b, err := backend.Open(context.Background(), backend.PoolConfig{Store: "REGISTRY-TEST", Pool: backend.NewPool("p", map[string]string{"pool_size": "3"})})
	if err != nil {
		t.Fatal(err)
	}
	if pc := b.(nopBackend).pc; pc.Options.PoolSize != 3 || pc.Pool.Name != "p" {
		t.Errorf("the opener got pool %q and PoolSize %d; want p and the pool's pool_size 3", pc.Pool.Name, pc.Options.PoolSize)
	}
	if b, err := backend.Open(context.Background(), backend.PoolConfig{Store: "registry-test-alias"}); err != nil || b.(nopBackend).pc.Pool == nil {
		t.Errorf("Open without a pool = %v, %v; want the default pool", b, err)
	}

	_, err = backend.Open(context.Background(), backend.PoolConfig{Store: "registry-test", Pool: backend.NewPool("pool2", map[string]string{"fail": "1"})})
	if err == nil || !strings.Contains(err.Error(), "registry-test.pool2: refused") {
		t.Errorf("Open of a failing store = %v, want the error naming store and pool", err)
	}
	_, err = backend.Open(context.Background(), backend.PoolConfig{Store: "nosuch"})
	if !errors.Is(err, hook.ErrConfig) || !strings.Contains(err.Error(), "registry-test") {
		t.Errorf("Open of an unknown store = %v, want hook.ErrConfig listing the registered stores", err)
	}
	_, err = backend.Open(context.Background(), backend.PoolConfig{Store: "registry-test", Pool: backend.NewPool("p", map[string]string{"pool_size": "many"})})
	if !errors.Is(err, hook.ErrConfig) || !strings.Contains(err.Error(), "pool_size") || strings.Contains(err.Error(), "line 0") {
		t.Errorf("Open with a bad pool_size = %v, want hook.ErrConfig naming pool_size (and no line: NewPool has none)", err)
	}

	for name, register := range map[string]func(){
		"twice": func() {
			backend.Register(backend.Driver{Open: func(context.Context, backend.PoolConfig) (hook.Backend, error) { return nil, nil }}, "registry-test")
		},
		"nil": func() { backend.Register(backend.Driver{}, "registry-test-nil") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register %s did not panic", name)
				}
			}()
			register()
		}()
	}
}

func TestSettingsCheckKeysAndTLS(t *testing.T) {
	p := backend.NewPool("pool1", map[string]string{"server": "x", "pool_szie": "8"})
	err := p.CheckKeys("server", "pool_size")
	if !errors.Is(err, hook.ErrConfig) || !strings.Contains(err.Error(), "pool_szie") {
		t.Errorf("CheckKeys = %v, want hook.ErrConfig naming pool_szie", err)
	}
	if err := backend.NewPool("p", map[string]string{"server": "x"}).CheckKeys("server"); err != nil {
		t.Errorf("CheckKeys of known keys = %v", err)
	}
	if c, err := backend.NewPool("p", nil).TLS(); c != nil || err != nil {
		t.Errorf("TLS without settings = %v, %v; want nil, nil", c, err)
	}
	if c, err := backend.NewPool("p", map[string]string{"ssl": "true"}).TLS(); c == nil || err != nil {
		t.Errorf("TLS with ssl = true: %v, %v; want a config", c, err)
	}
	if _, err := backend.NewPool("p", map[string]string{"ssl": "true", "cacertfile": "/nonexistent/ca.pem"}).TLS(); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("TLS with a missing CA file = %v, want hook.ErrConfig", err)
	}
}
