package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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
		store string
		dsn   string // the -dsn override
		pool  int
		rules int
	}{
		{"default", config{}, "sqlite", "", 0, 10},
		{"default on postgres", config{Store: "postgres", DSN: "postgres://u@h/db"}, "postgres", "postgres://u@h/db", 0, 10},
		{"default in another file", config{DSN: "/tmp/x.db"}, "sqlite", "/tmp/x.db", 0, 10},
		{"default redis", config{Store: "redis"}, "redis", "", 0, 12},
		{"default redis elsewhere", config{Store: "redis", DSN: "10.0.0.1:6379"}, "redis", "10.0.0.1:6379", 0, 12},
		{"EMQX pgsql", config{ConfigFile: emqxConfig(t, "pgsql-1.conf", "pgsql-2.conf")}, "pgsql", "", 8, 10},
		{"EMQX mysql", config{ConfigFile: emqxConfig(t, "mysql-1.conf", "mysql-2.conf")}, "mysql", "", 8, 10},
		{"EMQX pgsql, -dsn", config{ConfigFile: emqxConfig(t, "pgsql-1.conf", "pgsql-2.conf"), DSN: "postgres://elsewhere/db"},
			"pgsql", "postgres://elsewhere/db", 8, 10},
		{"EMQX redis", config{ConfigFile: emqxConfig(t, "redis-1.conf", "redis-2.conf", "redis-3.conf")}, "redis", "", 8, 13},
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
			if s.Store != tc.store || s.DSN != tc.dsn || pool != tc.pool || len(s.Rules) != tc.rules {
				t.Errorf("got %v %q pool %d, %d rules; want %v %q pool %d, %d rules",
					s.Store, s.DSN, pool, len(s.Rules), tc.store, tc.dsn, tc.pool, tc.rules)
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
		name, server string
		rules        int
	}
	var all []got
	for _, s := range specs {
		all = append(all, got{s.Name, s.Pool.String("server", s.Pool.String("database", "")), len(s.Rules)})
	}
	want := []got{{"pgsql.pool1", "db1:5432", 1}, {"pgsql.pool2", "db2:5432", 2}, {"sqlite.pool1", "local.db", 1}}
	if !slices.Equal(all, want) {
		t.Errorf("stores %v, want %v", all, want)
	}
	if specs[1].Rules[0].Point != hook.MessagePublish || specs[1].Rules[1].Topic != "b/#" {
		t.Errorf("pool2 rules %+v", specs[1].Rules)
	}
	if _, err := (config{ConfigFile: path, DSN: "x"}).specs(); err == nil || !strings.Contains(err.Error(), "has 3") {
		t.Errorf("-dsn with three pools: error %v", err)
	}
}

// Configuration mistakes are errors: some when the configuration is read, the others when the
// store opens (before it connects).
func TestSpecsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  config
		want string
	}{
		{"store without DSN", config{Store: "postgres"}, "-store postgres needs -dsn"},
		{"unknown store", config{Store: "oracle", DSN: "x"}, `-store: unknown store "oracle"`},
		{"unknown section", config{ConfigFile: writeConfig(t, `backend.nosql.hook.message.publish.1 = {"action": {"function": "on_message_publish"}, "pool": "pool1"}`)},
			`backend.nosql: unknown store (this broker has `},
		{"redis cluster without servers", config{ConfigFile: writeConfig(t, "backend.redis.pool1.type = cluster\n"+
			`backend.redis.hook.message.publish.1 = {"action": {"function": "on_message_publish"}, "pool": "pool1"}`)}, "no addresses"},
		{"no rules", config{ConfigFile: emqxConfig(t, "pgsql-1.conf")}, "no rules"},
		{"no connection", config{ConfigFile: emqxConfig(t, "pgsql-2.conf")}, "no connection"},
		{"misspelt pool setting", config{ConfigFile: writeConfig(t, "backend.pgsql.pool1.sever = db1:5432\n"+
			`backend.pgsql.hook.message.publish.1 = {"action": {"function": "on_message_publish"}, "pool": "pool1"}`)},
			"backend.pgsql.pool1.sever: unknown setting"},
		{"bad rule", config{ConfigFile: writeConfig(t, `backend.sqlite.hook.message.publish.1 = {"action": {"function": "on_nothing"}}`)},
			"line 1"},
		{"missing file", config{ConfigFile: filepath.Join(t.TempDir(), "none.conf")}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			specs, err := tc.cfg.specs()
			for _, s := range specs {
				var b hook.Backend
				if b, err = s.open(context.Background(), tc.cfg, slog.New(slog.DiscardHandler), nil); err == nil {
					b.Close(context.Background())
					err = fmt.Errorf("store %s opened", s.Name)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// A misspelt rule option is refused when the broker starts, naming the rule and the key: it
// must not silently mean "messages never expire".
func TestStartRefusesUnknownRuleOption(t *testing.T) {
	dir := t.TempDir()
	path := writeConfig(t, "backend.sqlite.pool1.database = "+filepath.Join(dir, "mqtt.db")+"\n"+
		`backend.sqlite.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "expire_time": 3600, "pool": "pool1"}`)
	b, err := start(context.Background(), config{Listen: "127.0.0.1:0", ConfigFile: path, EnsureSchema: true, Logger: slog.New(slog.DiscardHandler)})
	if err == nil {
		b.Close(context.Background())
		t.Fatal("the broker started with a rule option expire_time (a typo of expired_time)")
	}
	for _, want := range []string{`rule "backend.sqlite.hook.message.publish.1"`, "expire_time", "unknown rule option"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
