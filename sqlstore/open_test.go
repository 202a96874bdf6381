package sqlstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// The EMQX pool settings become the connection string of each dialect.
func TestPoolDSN(t *testing.T) {
	for _, tc := range []struct {
		d        Dialect
		settings map[string]string
		want     string
	}{
		{Postgres, map[string]string{"server": "127.0.0.1:5432", "username": "root", "password": "public", "database": "mqtt", "pool_size": "8"},
			"postgres://root:public@127.0.0.1:5432/mqtt?sslmode=disable"},
		{Postgres, map[string]string{"server": "db2:5432", "ssl": "true"}, "postgres://db2:5432/?sslmode=require"},
		{Postgres, map[string]string{"server": "db:5432", "password": "p@ss/w:rd?", "username": "u"}, "postgres://u:p%40ss%2Fw%3Ard%3F@db:5432/?sslmode=disable"},
		{MySQL, map[string]string{"server": "127.0.0.1:3306", "user": "root", "password": "public", "database": "mqtt"}, "root:public@tcp(127.0.0.1:3306)/mqtt"},
		{SQLite, map[string]string{"database": "data/x.db"}, "data/x.db"},
		{Postgres, map[string]string{"dsn": "postgres://as/is"}, "postgres://as/is"},
		{Postgres, map[string]string{"username": "u"}, ""},
	} {
		got, err := poolDSN(tc.d, backend.NewPool("pool1", tc.settings))
		if err != nil || got != tc.want {
			t.Errorf("poolDSN(%v, %v) = %q, %v; want %q", tc.d, tc.settings, got, err, tc.want)
		}
	}
}

// Opening through the registry: every dialect's names are registered, a misspelt setting and a
// pool without a connection are refused before anything connects.
func TestOpenPoolErrors(t *testing.T) {
	for _, name := range []string{"sqlite", "pgsql", "postgres", "mysql", "mariadb"} {
		if !strings.Contains(strings.Join(backend.Stores(), " "), name) {
			t.Errorf("store %q is not registered", name)
		}
	}
	for _, tc := range []struct {
		store    string
		settings map[string]string
		want     string
	}{
		{"pgsql", map[string]string{"sever": "db:5432"}, "unknown setting"},
		{"mysql", map[string]string{"user": "root"}, "no connection"},
		{"sqlite", nil, "no connection"},
	} {
		_, err := backend.Open(context.Background(), backend.PoolConfig{Store: tc.store, Pool: backend.NewPool("pool1", tc.settings)})
		if !errors.Is(err, hook.ErrConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s, %v) = %v; want an error wrapping hook.ErrConfig saying %q", tc.store, tc.settings, err, tc.want)
		}
	}
}

// A SQLite store opened from its pool works (the file's directory is created).
func TestOpenPoolSQLite(t *testing.T) {
	path := t.TempDir() + "/sub/dir/mqtt.db"
	b, err := backend.Open(context.Background(), backend.PoolConfig{Store: "sqlite", Pool: backend.NewPool("pool1", map[string]string{"database": path, "pool_size": "2"}), EnsureSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	s := b.(*Store)
	if s.opts.PoolSize != 2 {
		t.Errorf("pool size %d, want the pool's pool_size 2", s.opts.PoolSize)
	}
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}
