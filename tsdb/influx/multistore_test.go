package influx

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	_ "github.com/mqttstore/mqttstore/sqlstore" // registers "sqlite"
)

// TestBesideStateStore runs one EMQX configuration with two backends, as EMQX does and as
// examples/broker opens them: SQLite for messages and InfluxDB for sensor/#. A publish on
// sensor/1 reaches both; one elsewhere only SQLite.
func TestBesideStateStore(t *testing.T) {
	c := testenv.InfluxDB(t)
	conf := `
backend.sqlite.pool1.database = ` + filepath.Join(t.TempDir(), "state.db") + `
backend.sqlite.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
backend.sqlite.hook.session.subscribed.1 = {"topic": "#", "action": {"function": "on_message_fetch"}, "pool": "pool1"}
backend.influxdb.pool1.server = ` + c.HTTPURL + `
backend.influxdb.pool1.database = ` + c.Database + `
backend.influxdb.pool1.template = example.tmpl
backend.influxdb.hook.message.publish.1 = {"topic": "sample", "action": {"function": "on_message_publish"}, "pool": "pool1"}
`
	cfg, err := backend.LoadConfig(strings.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "n1"})
	defer d.Close(ctx)
	stores := map[string]hook.Backend{}
	for _, name := range []string{"sqlite", "influxdb"} {
		sc := cfg.Stores[name]
		b, err := backend.Open(ctx, backend.PoolConfig{Store: name, Pool: sc.Pools["pool1"], EnsureSchema: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Register(ctx, name, b, sc.Rules...); err != nil {
			t.Fatal(err)
		}
		stores[name] = b
	}
	for _, m := range []*hook.Message{msg("sample", specPayload), msg("other", "x")} {
		m.QoS = 1
		if _, err := d.Dispatch(ctx, &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range stores {
		flush(t, b)
	}
	if st := stores["sqlite"].(backend.StatsReporter).Stats(); st.Success != 2 {
		t.Errorf("sqlite stored %d messages, want 2", st.Success)
	}
	if got := rows(t, c, c.Database, "sample", 2); len(got) != 2 || got[0]["host"] != "serverA" || got[1]["host"] != "serverB" {
		t.Errorf("influxdb points %v, want the spec's two", got)
	}
	if st := stores["influxdb"].(backend.StatsReporter).Stats(); st.Success != 1 || st.Matched != 1 {
		t.Errorf("influxdb Stats %+v, want the one message on sample", st)
	}
}
