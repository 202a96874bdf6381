package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/hook"
)

// emqxConfig joins the spec's configuration blocks kept in backend/testdata into one file.
func emqxConfig(t *testing.T, blocks ...string) string {
	t.Helper()
	var sb strings.Builder
	for _, b := range blocks {
		text, err := os.ReadFile(filepath.Join("..", "..", "backend", "testdata", "emqx", b))
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(text)
		sb.WriteByte('\n')
	}
	return writeConfig(t, sb.String())
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backend.conf")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSpecs(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   config
		kind  string
		dsn   string
		pool  int
		rules int
	}{
		{"default", config{}, "sqlite", "data/mqttstore.db", 0, 10},
		{"default on postgres", config{Store: "postgres", DSN: "postgres://u@h/db"}, "postgres", "postgres://u@h/db", 0, 10},
		{"default in another file", config{DSN: "/tmp/x.db"}, "sqlite", "/tmp/x.db", 0, 10},
		{"default redis", config{Store: "redis"}, "redis", "127.0.0.1:6379", 0, 12},
		{"default redis elsewhere", config{Store: "redis", DSN: "10.0.0.1:6379"}, "redis", "10.0.0.1:6379", 0, 12},
		{"EMQX pgsql", config{ConfigFile: emqxConfig(t, "pgsql-1.conf", "pgsql-2.conf")},
			"postgres", "postgres://root:public@127.0.0.1:5432/mqtt?sslmode=disable", 8, 10},
		{"EMQX mysql", config{ConfigFile: emqxConfig(t, "mysql-1.conf", "mysql-2.conf")},
			"mysql", "root:public@tcp(127.0.0.1:3306)/mqtt", 8, 10},
		{"EMQX pgsql, -dsn", config{ConfigFile: emqxConfig(t, "pgsql-1.conf", "pgsql-2.conf"), DSN: "postgres://elsewhere/db"},
			"postgres", "postgres://elsewhere/db", 8, 10},
		{"EMQX redis", config{ConfigFile: emqxConfig(t, "redis-1.conf", "redis-2.conf", "redis-3.conf")},
			"redis", "127.0.0.1:6379", 8, 13},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specs, err := tc.cfg.specs()
			if err != nil {
				t.Fatal(err)
			}
			if len(specs) != 1 {
				t.Fatalf("%d stores, want 1", len(specs))
			}
			s := specs[0]
			pool, err := s.Pool.Int("pool_size", 0)
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != tc.kind || s.DSN != tc.dsn || pool != tc.pool || len(s.Rules) != tc.rules {
				t.Errorf("got %v %q pool %d, %d rules; want %v %q pool %d, %d rules",
					s.Kind, s.DSN, pool, len(s.Rules), tc.kind, tc.dsn, tc.pool, tc.rules)
			}
			for _, r := range s.Rules {
				if err := r.Validate(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestSpecsTwoPools(t *testing.T) {
	path := writeConfig(t, `
backend.pgsql.pool1.server = db1:5432
backend.pgsql.pool2.server = db2:5432
backend.pgsql.pool2.ssl = true
backend.pgsql.hook.client.connected.1 = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
backend.pgsql.hook.message.publish.1 = {"topic": "a/#", "action": {"function": "on_message_publish"}, "pool": "pool2"}
backend.pgsql.hook.message.publish.2 = {"topic": "b/#", "action": {"function": "on_message_publish"}, "pool": "pool2"}
backend.sqlite.pool1.database = local.db
backend.sqlite.hook.message.acked.1 = {"topic": "#", "action": {"function": "on_message_acked"}, "pool": "pool1"}
`)
	specs, err := config{ConfigFile: path}.specs()
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		name, dsn string
		rules     int
	}
	var all []got
	for _, s := range specs {
		all = append(all, got{s.Name, s.DSN, len(s.Rules)})
	}
	want := []got{
		{"pgsql.pool1", "postgres://db1:5432/?sslmode=disable", 1},
		{"pgsql.pool2", "postgres://db2:5432/?sslmode=require", 2},
		{"sqlite.pool1", "local.db", 1},
	}
	if len(all) != len(want) {
		t.Fatalf("stores %v, want %v", all, want)
	}
	for i := range want {
		if all[i] != want[i] {
			t.Errorf("store %d: %v, want %v", i, all[i], want[i])
		}
	}
	if specs[1].Rules[0].Point != hook.MessagePublish || specs[1].Rules[1].Topic != "b/#" {
		t.Errorf("pool2 rules %+v", specs[1].Rules)
	}
	if _, err := (config{ConfigFile: path, DSN: "x"}).specs(); err == nil || !strings.Contains(err.Error(), "has 3") {
		t.Errorf("-dsn with three pools: error %v", err)
	}
}

func TestSpecsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config
		want string
	}{
		{"store without DSN", config{Store: "postgres"}, "-store postgres needs -dsn"},
		{"unknown store", config{Store: "oracle", DSN: "x"}, `-store: unknown store "oracle"`},
		{"unknown section", config{ConfigFile: writeConfig(t, `backend.mongo.hook.message.publish.1 = {"action": {"function": "on_message_publish"}, "pool": "pool1"}`)},
			`backend.mongo: unknown store "mongo"`},
		{"redis without a server", config{ConfigFile: emqxConfig(t, "redis-2.conf")}, "store redis.pool1: no connection"},
		{"no rules", config{ConfigFile: emqxConfig(t, "pgsql-1.conf")}, "no rules"},
		{"no connection", config{ConfigFile: emqxConfig(t, "pgsql-2.conf")}, "store pgsql.pool1: no connection"},
		{"bad rule", config{ConfigFile: writeConfig(t, `backend.sqlite.hook.message.publish.1 = {"action": {"function": "on_nothing"}}`)},
			"line 1"},
		{"missing file", config{ConfigFile: filepath.Join(t.TempDir(), "none.conf")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.cfg.specs()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
