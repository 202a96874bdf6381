package backend_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// storeWant is what one store section of a spec config block must load as.
type storeWant struct {
	settings map[string]string            // store-level settings, all of them
	pools    map[string]map[string]string // pool → every setting
	rules    []string                     // "point function-or-kind topic pool", in order
}

func ruleSummary(r hook.Rule) string {
	action := r.Action.Function
	switch {
	case r.Action.Commands != nil:
		action = "commands:" + strings.Join(r.Action.Commands, ";")
	case r.Action.SQL != nil:
		action = "sql:" + strings.Join(r.Action.SQL, ";")
	case r.Action.CQL != nil:
		action = "cql:" + strings.Join(r.Action.CQL, ";")
	}
	return strings.Join([]string{r.Name, r.Point.String(), action, r.Topic, r.Pool}, " ")
}

// TestLoadConfigSpecBlocks loads every configuration block of the functional spec
// (testdata/emqx, one file per block) and checks every setting and rule.
func TestLoadConfigSpecBlocks(t *testing.T) {
	stdRules := func(store string) []string {
		p := "backend." + store + ".hook."
		return []string{
			p + "client.connected.1 client.connected on_client_connected  pool1",
			p + "session.created.1 session.created on_subscribe_lookup  pool1",
			p + "client.disconnected.1 client.disconnected on_client_disconnected  pool1",
			p + "session.subscribed.1 session.subscribed on_message_fetch # pool1",
			p + "session.subscribed.2 session.subscribed on_retain_lookup # pool1",
			p + "session.unsubscribed.1 session.unsubscribed sql:delete from mqtt_acked where clientid = ${clientid} and topic = ${topic} # pool1",
			p + "message.publish.1 message.publish on_message_publish # pool1",
			p + "message.publish.2 message.publish on_message_retain # pool1",
			p + "message.publish.3 message.publish on_retain_delete # pool1",
			p + "message.acked.1 message.acked on_message_acked # pool1",
		}
	}
	pool := func(kv ...string) map[string]map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return map[string]map[string]string{"pool1": m}
	}
	publish := func(store, n, topic string) string {
		return "backend." + store + ".hook.message.publish." + n + " message.publish on_message_publish " + topic + " pool1"
	}
	mongoRules := stdRules("mongo")
	mongoRules[5] = "backend.mongo.hook.session.unsubscribed.1 session.unsubscribed on_acked_delete # pool1"
	cassaRules := stdRules("cassa")
	cassaRules[1] = "backend.cassa.hook.session.created.1 session.created on_subscription_lookup  pool1"
	cassaRules[4] = "backend.cassa.hook.session.subscribed.2 session.subscribed on_retain_lookup  pool1"
	// The spec's Cassandra block lists its rules in another order, and its unsubscribed rule
	// has a CQL action.
	cassaRules = []string{cassaRules[0], cassaRules[1], cassaRules[2], cassaRules[3], cassaRules[4], cassaRules[6],
		"backend.cassa.hook.session.unsubscribed.1 session.unsubscribed cql:delete from acked where client_id = ${clientid} and topic = ${topic} # pool1",
		cassaRules[7], cassaRules[8], cassaRules[9]}
	dynamoRules := stdRules("dynamo")
	dynamoRules[3] = "backend.dynamo.hook.session.subscribed.1 session.subscribed on_message_fetch_for_queue # pool1"
	dynamoRules[5] = "backend.dynamo.hook.session.unsubscribed.1 session.unsubscribed on_acked_delete # pool1"
	dynamoRules[9] = "backend.dynamo.hook.message.acked.1 message.acked on_message_acked_for_queue # pool1"
	const rp = "backend.redis.hook."

	tests := map[string]map[string]storeWant{
		"redis-1.conf": {"redis": {pools: pool("type", "single", "server", "127.0.0.1:6379", "pool_size", "8", "database", "0", "channel", "mqtt_channel")}},
		"redis-2.conf": {"redis": {rules: []string{
			rp + "client.connected.1 client.connected on_client_connected  pool1",
			rp + "session.created.1 session.created on_subscribe_lookup  pool1",
			rp + "client.disconnected.1 client.disconnected on_client_disconnected  pool1",
			rp + "session.subscribed.1 session.subscribed on_message_fetch_for_queue queue/# pool1",
			rp + "session.subscribed.2 session.subscribed on_message_fetch_for_pubsub pubsub/# pool1",
			rp + "session.subscribed.3 session.subscribed on_retain_lookup  pool1",
			rp + "session.unsubscribed.1 session.unsubscribed commands:DEL mqtt:acked:${clientid}:${topic} # pool1",
			rp + "message.publish.1 message.publish on_message_publish # pool1",
			rp + "message.publish.2 message.publish on_message_retain # pool1",
			rp + "message.publish.3 message.publish on_retain_delete # pool1",
			rp + "message.acked.1 message.acked on_message_acked_for_queue queue/# pool1",
			rp + "message.acked.2 message.acked on_message_acked_for_pubsub pubsub/# pool1",
		}}},
		"redis-3.conf": {"redis": {rules: []string{rp + "client.connected.3 client.connected commands:SET conn:${clientid} ${clientid}  pool1"}}},
		"mysql-1.conf": {"mysql": {pools: pool("server", "127.0.0.1:3306", "pool_size", "8", "user", "root", "password", "public", "database", "mqtt")}},
		"mysql-2.conf": {"mysql": {rules: stdRules("mysql")}},
		"mysql-3.conf": {"mysql": {rules: []string{"backend.mysql.hook.client.connected.3 client.connected sql:insert into conn(clientid) values(${clientid})  pool1"}}},
		"pgsql-1.conf": {"pgsql": {pools: pool("server", "127.0.0.1:5432", "pool_size", "8", "username", "root", "password", "public", "database", "mqtt", "ssl", "false")}},
		"pgsql-2.conf": {"pgsql": {rules: stdRules("pgsql")}},
		"pgsql-3.conf": {"pgsql": {rules: []string{"backend.pgsql.hook.client.connected.3 client.connected sql:insert into conn(clientid) values(${clientid})  pool1"}}},
		"mongo-1.conf": {"mongo": {pools: pool("type", "single", "server", "127.0.0.1:27017", "c_pool_size", "8", "database", "mqtt"), rules: mongoRules}},
		"cassa-1.conf": {"cassa": {pools: pool("nodes", "127.0.0.1:9042", "size", "8", "auto_reconnect", "1", "username", "cassandra",
			"password", "cassandra", "keyspace", "mqtt", "logger", "info"), rules: cassaRules}},
		"cassa-2.conf": {"cassa": {rules: []string{"backend.cassa.hook.client.connected.3 client.connected cql:insert into conn(clientid) values(${clientid})  pool1"}}},
		"dynamo-1.conf": {"dynamo": {settings: map[string]string{"region": "us-west-2"}, pools: pool("server", "http://localhost:8000", "pool_size", "8",
			"aws_access_key_id", "AKIAU5IM2XOC7AQWG7HK", "aws_secret_access_key", "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"), rules: dynamoRules}},
		"influxdb-1.conf": {"influxdb": {pools: pool("server", "127.0.0.1:8089", "pool_size", "5", "set_timestamp", "true"), rules: []string{publish("influxdb", "1", "#")}}},
		"influxdb-2.conf": {"influxdb": {rules: []string{publish("influxdb", "1", "sensor/#"), publish("influxdb", "2", "stat/#")}}},
		"opentsdb-1.conf": {"opentsdb": {pools: pool("server", "127.0.0.1:4242", "pool_size", "8", "summary", "true", "details", "false",
			"sync", "false", "sync_timeout", "0", "max_batch_size", "20"), rules: []string{publish("opentsdb", "1", "#")}}},
		// The spec's OpenTSDB example says "influxdb" (a copy-paste slip in the spec).
		"opentsdb-2.conf": {"influxdb": {rules: []string{publish("influxdb", "1", "sensor/#"), publish("influxdb", "2", "stat/#")}}},
		"timescale-1.conf": {"timescale": {pools: pool("server", "127.0.0.1:5432", "pool_size", "8", "username", "postgres", "password", "password",
			"database", "tutorial", "ssl", "false"), rules: []string{publish("timescale", "1", "#")}}},
		"timescale-2.conf": {"timescale": {rules: []string{publish("timescale", "1", "sensor/#"), publish("timescale", "2", "stat/#")}}},
	}
	files, _ := filepath.Glob("testdata/emqx/*.conf")
	if len(files) != len(tests) {
		t.Errorf("%d files in testdata/emqx, %d expectations", len(files), len(tests))
	}
	for _, file := range files {
		name := filepath.Base(file)
		t.Run(name, func(t *testing.T) {
			want, ok := tests[name]
			if !ok {
				t.Fatal("no expectation for this file")
			}
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if name == "cassa-1.conf" {
				data = fixCassa(t, data)
			}
			c, err := backend.LoadConfig(strings.NewReader(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Stores) != len(want) || len(c.Ignored) != 0 {
				t.Errorf("stores %v, ignored %v; want %d store(s)", slices.Sorted(mapsKeys(c.Stores)), c.Ignored, len(want))
			}
			for store, sw := range want {
				s := c.Stores[store]
				if s == nil {
					t.Fatalf("no store %q", store)
				}
				checkSettings(t, store, s.Settings, sw.settings)
				if len(s.Pools) != len(sw.pools) {
					t.Errorf("%s: pools %v, want %d", store, slices.Sorted(mapsKeys(s.Pools)), len(sw.pools))
				}
				for name, settings := range sw.pools {
					p := s.Pools[name]
					if p == nil || p.Name != name {
						t.Fatalf("%s: no pool %q", store, name)
					}
					checkSettings(t, store+"."+name, p.Settings, settings)
				}
				var got []string
				for _, r := range s.Rules {
					got = append(got, ruleSummary(r))
				}
				if strings.Join(got, "\n") != strings.Join(sw.rules, "\n") {
					t.Errorf("%s rules:\n%s\nwant:\n%s", store, strings.Join(got, "\n"), strings.Join(sw.rules, "\n"))
				}
			}
		})
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func checkSettings(t *testing.T, where string, s backend.Settings, want map[string]string) {
	t.Helper()
	if got := s.Keys(); !slices.Equal(got, slices.Sorted(mapsKeys(want))) {
		t.Errorf("%s: keys %v, want %v", where, got, slices.Sorted(mapsKeys(want)))
	}
	for k, v := range want {
		if got, ok := s.Lookup(k); !ok || got != v {
			t.Errorf("%s: %s = %q, want %q", where, k, got, v)
		}
	}
}

// fixCassa checks that the spec's Cassandra block, whose unsubscribed rule is not JSON
// ("action" lacks its opening quote), is rejected with the line and key, then fixes it.
func fixCassa(t *testing.T, data []byte) []byte {
	t.Helper()
	_, err := backend.LoadConfig(strings.NewReader(string(data)))
	var ce *backend.ConfigError
	if !errors.As(err, &ce) || !errors.Is(err, hook.ErrSyntax) {
		t.Fatalf("spec's Cassandra block: %v, want a *ConfigError wrapping hook.ErrSyntax", err)
	}
	lines := strings.Split(string(data), "\n")
	if ce.Key != "backend.cassa.hook.session.unsubscribed.1" || !strings.HasPrefix(lines[ce.Line-1], ce.Key) {
		t.Errorf("error names line %d, key %q; want the unsubscribed rule's:\n%v", ce.Line, ce.Key, err)
	}
	if !strings.Contains(err.Error(), "line ") || !strings.Contains(err.Error(), ce.Key) {
		t.Errorf("error text lacks line or key: %v", err)
	}
	return []byte(strings.Replace(string(data), ` action": {"cql"`, ` "action": {"cql"`, 1))
}

func TestLoadConfigValues(t *testing.T) {
	const conf = "\uFEFF# a whole emqx.conf may be read\r\n" +
		"node.name = emqx@127.0.0.1\r\n" +
		"backend.redis.pool1.type = cluster\n" +
		"   backend.redis.pool1.server = 127.0.0.1:7000, 127.0.0.1:7001,,127.0.0.1:7002  \n" +
		"backend.redis.pool1.password =\n" +
		"backend.redis.pool1.pool_size = 16\n" +
		"backend.redis.pool1.ssl = on\n" +
		"backend.redis.pool1.timeout = 1500\n" +
		"backend.redis.pool1.keepalive = 2m\n" +
		"backend.redis.pool1.ttl = 1d12h\n" +
		"backend.mongo.topology.pool_size = 1\n" +
		"backend.mysql.hook.session.subscribed.7 = {\"topic\": \"a/#\", \"action\": {\"function\": \"on_message_fetch\"}, \"offline_opts\": {\"max_returned_count\": 500, \"time_range\": \"2h\"}, \"pool\": \"pool1\"}\n" +
		"backend.mysql.hook.message.publish.2 = {\"topic\": \"#\", \"action\": {\"function\": \"on_message_publish\"}, \"expired_time\" : 3600, \"pool\": \"pool1\", \"payload_format\": \"mongo_json\"}\n"
	c, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Ignored, []string{"node.name"}) {
		t.Errorf("Ignored = %v", c.Ignored)
	}
	p := c.Stores["redis"].Pools["pool1"]
	if got := p.String("type", "single"); got != "cluster" {
		t.Errorf("type = %q", got)
	}
	if got := p.List("server"); !slices.Equal(got, []string{"127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"}) {
		t.Errorf("server = %q", got)
	}
	if v, ok := p.Lookup("password"); !ok || v != "" || p.String("password", "dflt") != "dflt" {
		t.Errorf("empty password: Lookup = %q, %v; String = %q", v, ok, p.String("password", "dflt"))
	}
	intOf := func(key string, def int) int {
		n, err := p.Int(key, def)
		if err != nil {
			t.Errorf("Int(%s): %v", key, err)
		}
		return n
	}
	durOf := func(key string, unit time.Duration) time.Duration {
		d, err := p.Duration(key, -1, unit)
		if err != nil {
			t.Errorf("Duration(%s): %v", key, err)
		}
		return d
	}
	if intOf("pool_size", 8) != 16 || intOf("absent", 8) != 8 || intOf("password", 3) != 3 {
		t.Error("Int")
	}
	if b, err := p.Bool("ssl", false); err != nil || !b {
		t.Errorf("Bool(ssl) = %v, %v", b, err)
	}
	if durOf("timeout", time.Millisecond) != 1500*time.Millisecond || durOf("keepalive", time.Second) != 2*time.Minute ||
		durOf("ttl", time.Second) != 36*time.Hour || durOf("absent", time.Second) != -1 {
		t.Error("Duration")
	}
	// EMQX's backend.mongo.topology.<key> is a store setting, not a pool no rule names.
	if mongo := c.Stores["mongo"]; mongo.Pools["topology"] != nil || mongo.Settings.String("topology.pool_size", "") != "1" {
		t.Errorf("mongo topology: pools %+v, settings %v", mongo.Pools, mongo.Settings.Keys())
	}
	rules := c.Stores["mysql"].Rules
	if len(rules) != 2 || rules[0].Name != "backend.mysql.hook.session.subscribed.7" || rules[1].Name != "backend.mysql.hook.message.publish.2" {
		t.Fatalf("rules not in file order: %v", rules)
	}
	if o := rules[0].OfflineOpts; o.MaxReturnedCount != 500 || o.TimeRange != 2*time.Hour || rules[0].Topic != "a/#" {
		t.Errorf("rule 0 = %+v", rules[0])
	}
	if rules[1].ExpiredTime != time.Hour || string(rules[1].Options["payload_format"]) != `"mongo_json"` {
		t.Errorf("rule 1 = %+v", rules[1])
	}
}

func TestLoadConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		line       int
		key        string
		want       string // in the error text
		is         error
	}{
		{"no equals", "# c\nbackend.redis.pool1.server 127.0.0.1\n", 2, "", "want key = value", nil},
		{"bad key char", "backend.redis.pool 1.server = x\n", 1, "", `invalid character ' '`, nil},
		{"empty segment", "backend..pool1.server = x\n", 1, "", "empty segment", nil},
		{"empty key", " = x\n", 1, "", "empty", nil},
		{"too short", "backend.redis = x\n", 1, "backend.redis", "want backend.<store>", nil},
		{"duplicate", "backend.redis.pool1.server = a\n\nbackend.redis.pool1.server = b\n", 3, "backend.redis.pool1.server", "first at line 1", nil},
		{"bad json", "backend.pgsql.hook.message.publish.1 = {\"topic\": \"#\",\n", 1, "backend.pgsql.hook.message.publish.1", "invalid JSON", hook.ErrSyntax},
		{"unknown point", "backend.pgsql.hook.message.sent.1 = {}\n", 1, "backend.pgsql.hook.message.sent.1", "message.sent", hook.ErrUnknownPoint},
		{"no number", "backend.pgsql.hook.message.publish = {}\n", 1, "backend.pgsql.hook.message.publish", "", hook.ErrRuleKey},
		{"unknown function", "\n\nbackend.pgsql.hook.message.publish.1 = {\"action\": {\"function\": \"on_nothing\"}}\n", 3, "backend.pgsql.hook.message.publish.1", "on_nothing", hook.ErrUnknownFunction},
		{"function at wrong point", "backend.pgsql.hook.message.acked.1 = {\"action\": {\"function\": \"on_message_publish\"}}\n", 1, "backend.pgsql.hook.message.acked.1", "", hook.ErrFunctionPoint},
		{"bad topic filter", "backend.pgsql.hook.message.publish.1 = {\"topic\": \"a/#/b\", \"action\": {\"function\": \"on_message_publish\"}}\n", 1, "backend.pgsql.hook.message.publish.1", "topic", nil},
		{"too long", "backend.redis.pool1.server = " + strings.Repeat("x", 1<<20) + "\n", 1, "", "longer than", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := backend.LoadConfig(strings.NewReader(tc.conf))
			var ce *backend.ConfigError
			if c != nil || !errors.As(err, &ce) {
				t.Fatalf("LoadConfig = %v, %v; want a *ConfigError", c, err)
			}
			if ce.Line != tc.line || ce.Key != tc.key || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: line %d, key %q; want line %d, key %q, text %q", err, ce.Line, ce.Key, tc.line, tc.key, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v does not wrap %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), "line ") {
				t.Errorf("error %q does not name the line", err)
			}
		})
	}

	// Every bad line is reported, not just the first.
	_, err := backend.LoadConfig(strings.NewReader("a b\nbackend.x.pool1.k = 1\nc d\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1:") || !strings.Contains(err.Error(), "line 3:") {
		t.Errorf("two bad lines: %v", err)
	}
}

func TestSettingsErrors(t *testing.T) {
	c, err := backend.LoadConfig(strings.NewReader("backend.pgsql.pool1.pool_size = eight\nbackend.pgsql.pool1.ssl = maybe\nbackend.pgsql.pool1.timeout = -5\nbackend.pgsql.pool1.idle = 5 parsecs\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := c.Stores["pgsql"].Pools["pool1"]
	_, err1 := p.Int("pool_size", 8)
	_, err2 := p.Bool("ssl", false)
	_, err3 := p.Duration("timeout", 0, time.Second)
	_, err4 := p.Duration("idle", 0, time.Second)
	for i, tc := range []struct {
		err  error
		line int
		key  string
	}{{err1, 1, "pool_size"}, {err2, 2, "ssl"}, {err3, 3, "timeout"}, {err4, 4, "idle"}} {
		var ce *backend.ConfigError
		if !errors.As(tc.err, &ce) || ce.Line != tc.line || ce.Key != "backend.pgsql.pool1."+tc.key {
			t.Errorf("%d: %v; want a *ConfigError for line %d, backend.pgsql.pool1.%s", i, tc.err, tc.line, tc.key)
		}
	}
	if !errors.Is(err4, hook.ErrDuration) {
		t.Errorf("%v does not wrap hook.ErrDuration", err4)
	}
}

func TestLoadConfigFile(t *testing.T) {
	c, err := backend.LoadConfigFile("testdata/emqx/pgsql-2.conf")
	if err != nil || len(c.Stores["pgsql"].Rules) != 10 {
		t.Fatalf("LoadConfigFile = %v, %v", c, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("oops\n"), 0o600)
	if _, err := backend.LoadConfigFile(bad); err == nil || !strings.Contains(err.Error(), bad+": backend config: line 1:") {
		t.Errorf("LoadConfigFile(bad) = %v", err)
	}
	if _, err := backend.LoadConfigFile(filepath.Join(t.TempDir(), "absent.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadConfigFile(absent) = %v", err)
	}
}

func FuzzLoadConfig(f *testing.F) {
	files, _ := filepath.Glob("testdata/emqx/*.conf")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Add("backend.redis.pool1.server = a\nbackend.redis.pool1.server = b\n")
	f.Add("backend.ecql.pool1.nodes = 127.0.0.1:9042\nbackend.x.y = \n\uFEFFz\r\n")
	f.Fuzz(func(t *testing.T, conf string) {
		c, err := backend.LoadConfig(strings.NewReader(conf))
		if err != nil {
			var ce *backend.ConfigError
			if c != nil || !errors.As(err, &ce) || ce.Line < 1 {
				t.Fatalf("LoadConfig error %v (config %v): want a *ConfigError with a line", err, c)
			}
			return
		}
		for name, s := range c.Stores {
			if s.Name != name || name == "ecql" {
				t.Errorf("store %q named %q", name, s.Name)
			}
			for _, r := range s.Rules {
				if err := r.Validate(); err != nil {
					t.Errorf("rule %s does not validate: %v", r.Name, err)
				}
				if st, p, err := hook.ParseRuleKey(r.Name); err != nil || p != r.Point || st != name && !(name == "cassa" && st == "ecql") {
					t.Errorf("rule %s: key parses as %q %v %v", r.Name, st, p, err)
				}
			}
			for _, p := range s.Pools {
				for _, k := range p.Keys() {
					v, ok := p.Lookup(k)
					if !ok || strings.TrimSpace(v) != v || strings.ContainsAny(v, "\n") {
						t.Errorf("pool %s key %s = %q", p.Name, k, v)
					}
					// The typed accessors never panic.
					p.Int(k, 0)
					p.Bool(k, false)
					p.Duration(k, 0, time.Second)
					p.List(k)
				}
			}
		}
	})
}
