package cassastore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/cassastore"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// The spec's sample rule for session.unsubscribed lacks a quote before action; the error
// must point there.
func TestSpecSampleLineErrorPointsAtMissingQuote(t *testing.T) {
	const line = `backend.cassa.hook.session.unsubscribed.1= {"topic": "#", action": {"cql": ["delete from acked where client_id = ${clientid} and topic = ${topic}"]}, "pool": "pool1"}` + "\n"
	_, err := backend.LoadConfig(strings.NewReader(line))
	if err == nil {
		t.Fatal("LoadConfig accepted the spec's invalid line")
	}
	if !errors.Is(err, hook.ErrSyntax) || !strings.Contains(err.Error(), "byte 16") || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("error %q: want invalid JSON at line 1, byte 16 (the a of action\")", err)
	}
}

func TestConfigFromPoolRefuses(t *testing.T) {
	for name, conf := range map[string]string{
		"unknown key": "backend.ecql.pool1.nodes = 127.0.0.1:9042\nbackend.ecql.pool1.server = x\n",
		"bad logger":  "backend.ecql.pool1.nodes = 127.0.0.1:9042\nbackend.ecql.pool1.logger = loud\n",
		"bad size":    "backend.ecql.pool1.nodes = 127.0.0.1:9042\nbackend.ecql.pool1.size = many\n",
		"no nodes":    "backend.ecql.pool1.keyspace = mqtt\nbackend.ecql.pool1.password = s3cret-pw\n",
	} {
		c, err := backend.LoadConfig(strings.NewReader(conf))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = cassastore.ConfigFromPool(backend.PoolConfig{Store: "cassa", Pool: c.Stores["cassa"].Pools["pool1"]})
		if !errors.Is(err, hook.ErrConfig) {
			t.Errorf("%s: %v, want an error wrapping hook.ErrConfig", name, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret-pw") {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}

// The registry's default configuration is the spec's rule list, and every rule of it
// prepares on the store.
func TestDefaultConfigPrepares(t *testing.T) {
	conf, ok := backend.DefaultConfig("cassa")
	if !ok {
		t.Fatal("no default configuration registered for cassa")
	}
	c, err := backend.LoadConfig(strings.NewReader(string(conf)))
	if err != nil {
		t.Fatal(err)
	}
	sc := c.Stores["cassa"]
	if sc == nil || sc.Pools["pool1"] == nil || len(sc.Rules) != 10 {
		t.Fatalf("default config: %+v", sc)
	}
	cfg, err := cassastore.ConfigFromPool(backend.PoolConfig{Store: "cassa", Pool: sc.Pools["pool1"]})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Keyspace != "mqtt" || cfg.ConnsPerHost != 8 || len(cfg.Hosts) != 1 {
		t.Errorf("default pool: %v", cfg)
	}
	s := open(t, testConfig(t))
	defer s.Close(context.Background())
	for i := range sc.Rules {
		if _, err := s.Prepare(&sc.Rules[i]); err != nil {
			t.Errorf("rule %s: %v", sc.Rules[i].Name, err)
		}
	}
	for _, name := range []string{"cassandra", "ecql"} {
		if _, ok := backend.DefaultConfig(name); !ok {
			t.Errorf("no default configuration registered for %s", name)
		}
	}
}

// An EMQX keyspace, with the spec's tables exactly and rows EMQX wrote, is used as it is:
// its retained message (retain holds the msgid, msg the message) and stored messages are
// read; a payload that is not UTF-8 is refused until EnsureSchema adds payload_bin.
func TestExistingEMQXKeyspace(t *testing.T) {
	env := testenv.Cassandra(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := gocql.NewCluster(env.Hosts...)
	cl.Port, cl.Timeout = env.Port, time.Minute
	sess, err := cl.CreateSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ks := env.Keyspace
	for _, stmt := range []string{
		`CREATE TABLE ` + ks + `.client (client_id text PRIMARY KEY, connected timestamp, disconnected timestamp, node text, state int)`,
		`CREATE TABLE ` + ks + `.sub (client_id text, topic text, qos int, PRIMARY KEY (client_id, topic))`,
		`CREATE TABLE ` + ks + `.msg (topic text, msgid text, arrived timestamp, payload text, qos int, retain int, sender text, PRIMARY KEY (topic, msgid)) WITH CLUSTERING ORDER BY (msgid DESC)`,
		`CREATE TABLE ` + ks + `.retain (topic text PRIMARY KEY, msgid text)`,
		`CREATE TABLE ` + ks + `.acked (client_id text, topic text, msgid text, PRIMARY KEY (client_id, topic))`,
		`INSERT INTO ` + ks + `.msg (topic, msgid, arrived, payload, qos, retain, sender) VALUES ('hello', '2PguFrHsrzEvIIBdctmb', '2017-02-14 09:07:13.785+0000', 'Hello world!', 1, 1, 'test')`,
		`INSERT INTO ` + ks + `.retain (topic, msgid) VALUES ('hello', '2PguFrHsrzEvIIBdctmb')`,
	} {
		if err := sess.Query(stmt).ExecContext(ctx); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	if err := sess.AwaitSchemaAgreement(ctx); err != nil {
		t.Fatal(err)
	}
	cfg := cassastore.Config{Hosts: env.Hosts, Port: env.Port, Keyspace: ks, Options: testOptions}
	s := open(t, cfg)
	rule := func(p hook.Point, fn string) *hook.Rule {
		return &hook.Rule{Name: fn, Point: p, Action: hook.RuleAction{Function: fn}}
	}
	prep := func(s *cassastore.Store, r *hook.Rule) hook.Action {
		a, err := s.Prepare(r)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	lookup := func(s *cassastore.Store, fn, filter string) hook.Result {
		res, err := prep(s, rule(hook.SessionSubscribed, fn)).(hook.LookupAction).Lookup(ctx, &hook.SubscribedEvent{ClientID: "c1", Topic: filter, QoS: 1})
		if err != nil {
			t.Fatalf("%s %q: %v", fn, filter, err)
		}
		return res
	}
	if res := lookup(s, hook.OnRetainLookup, "hello"); len(res.Retained) != 1 || string(res.Retained[0].Payload) != "Hello world!" || res.Retained[0].ID != "2PguFrHsrzEvIIBdctmb" {
		t.Errorf("retained message EMQX wrote: %+v", res.Retained)
	}
	if res := lookup(s, hook.OnMessageFetch, "hello"); len(res.Offline) != 1 || res.Offline[0].From != "test" {
		t.Errorf("message EMQX wrote: %+v", res.Offline)
	}
	// Without topic_index, wildcards are refused.
	_, err = prep(s, rule(hook.SessionSubscribed, hook.OnMessageFetch)).(hook.LookupAction).Lookup(ctx, &hook.SubscribedEvent{ClientID: "c1", Topic: "hello/#"})
	if !errors.Is(err, hook.ErrUnsupported) {
		t.Errorf("wildcard fetch without topic_index: %v, want hook.ErrUnsupported", err)
	}
	pub := prep(s, rule(hook.MessagePublish, hook.OnMessagePublish)).(hook.WriteAction)
	bin := &hook.Message{ID: "bin1", Topic: "b", QoS: 1, Payload: []byte{0xff, 0xfe}, Timestamp: time.Now()}
	if err := pub.Write(ctx, &hook.PublishEvent{Message: bin}); !errors.Is(err, hook.ErrInvalidEvent) {
		t.Errorf("binary payload without payload_bin: %v, want refused", err)
	}
	// A retained message written now is kept the EMQX way, and read back.
	ret := prep(s, rule(hook.MessagePublish, hook.OnMessageRetain)).(hook.WriteAction)
	rm := &hook.Message{ID: "r1", Topic: "hello", QoS: 0, Retain: true, Payload: []byte("new"), Timestamp: time.Now()}
	if err := ret.Write(ctx, &hook.PublishEvent{Message: rm}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if res := lookup(s, hook.OnRetainLookup, "hello"); len(res.Retained) != 1 || string(res.Retained[0].Payload) != "new" {
		t.Errorf("retained message after on_message_retain: %+v", res.Retained)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// EnsureSchema adds this store's columns and table; the old rows still read.
	cfg.EnsureSchema = true
	s = open(t, cfg)
	defer s.Close(ctx)
	if res := lookup(s, hook.OnRetainLookup, "hello"); len(res.Retained) != 1 || string(res.Retained[0].Payload) != "new" {
		t.Errorf("retained message after EnsureSchema: %+v", res.Retained)
	}
	pub = prep(s, rule(hook.MessagePublish, hook.OnMessagePublish)).(hook.WriteAction)
	if err := pub.Write(ctx, &hook.PublishEvent{Message: bin}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if res := lookup(s, hook.OnMessageFetch, "b"); len(res.Offline) != 1 || string(res.Offline[0].Payload) != "\xff\xfe" {
		t.Errorf("binary payload after EnsureSchema: %+v", res.Offline)
	}
	if st := s.Stats(); st.Failed != 0 {
		t.Errorf("Stats: %+v", st)
	}
}
