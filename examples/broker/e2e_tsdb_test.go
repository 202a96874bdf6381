package main

// End-to-end tests of the time-series sinks: the spec's worked examples ("InfluxDB 消息存储",
// "Timescale 消息存储") published by a paho client through this command's broker, run from one
// EMQX configuration holding SQLite for the client state and messages beside InfluxDB and
// TimescaleDB (PostgreSQL standing in), as EMQX runs several backends at once; the points and
// rows are read back with the databases' own queries.

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// The spec's payloads.
const (
	influxSamplePayload    = `{"data": [{"temp": 1, "host": "serverA", "region": "hangzhou"}, {"temp": 2, "host": "serverB", "region": "ningbo"}]}`
	timescaleSensorPayload = `{"data":[{"location":"bedroom","temperature":21.3,"humidity":40.3},
		{"location":"bathroom","temperature":22.3,"humidity":61.8},{"location":"kitchen","temperature":29.5,"humidity":58.7}]}`
)

func TestTsdbSpecExamples(t *testing.T) {
	influx := testenv.InfluxDB(t)
	pgDSN := testenv.Timescale(t)
	pg, err := url.Parse(pgDSN)
	if err != nil {
		t.Fatal(err)
	}
	// The pool settings carry no search_path: the template file names the test's schema.
	schema, _, _ := strings.Cut(pg.Query().Get("search_path"), ",")
	pgExec(t, pgDSN, `create table sensor_data(time timestamptz not null, location text, temperature double precision, humidity double precision)`)
	spec, err := os.ReadFile("../../tsdb/timescale/example.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tsTemplate := filepath.Join(dir, "emqx_backend_timescale.tmpl")
	tmpl := strings.ReplaceAll(strings.ReplaceAll(string(spec), "into sensor_data(", "into "+schema+".sensor_data("), "into easy_data(", "into "+schema+".easy_data(")
	if err := os.WriteFile(tsTemplate, []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	influxTemplate, err := filepath.Abs("../../tsdb/influx/example.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := pg.User.Password()
	tg := &target{kind: "sqlite", dsn: filepath.Join(dir, "state.db")}
	tg.configFile = writeConfig(t, `
backend.sqlite.pool1.database = `+tg.dsn+`
backend.sqlite.hook.client.connected.1 = {"action": {"function": "on_client_connected"}, "pool": "pool1"}
backend.sqlite.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}

backend.influxdb.pool1.server = `+influx.HTTPURL+`
backend.influxdb.pool1.database = `+influx.Database+`
backend.influxdb.pool1.template = `+influxTemplate+`
backend.influxdb.hook.message.publish.1 = {"topic": "sample", "action": {"function": "on_message_publish"}, "pool": "pool1"}

backend.timescale.pool1.server = `+pg.Host+`
backend.timescale.pool1.username = `+pg.User.Username()+`
backend.timescale.pool1.password = `+pw+`
backend.timescale.pool1.database = `+strings.TrimPrefix(pg.Path, "/")+`
backend.timescale.pool1.ssl = false
backend.timescale.pool1.template = `+tsTemplate+`
backend.timescale.hook.message.publish.1 = {"topic": "sensor_data", "action": {"function": "on_message_publish"}, "pool": "pool1"}
`)
	tg.openSQL(t, "sqlite")
	b := tg.start(t)

	before := time.Now().Add(-time.Second)
	c := mqtttest.Connect(t, b.addr, "mqttjs_ebcc36079a", true)
	c.MustPublish(t, "sample", 1, false, influxSamplePayload)
	c.MustPublish(t, "sensor_data", 1, false, timescaleSensorPayload)
	b.flush(t)
	after := time.Now().Add(time.Second)

	t.Run("Influx", func(t *testing.T) {
		series, err := influx.Query(context.Background(), influx.Database, `SELECT * FROM "sample"`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range series {
			for _, v := range s.Values {
				row := map[string]any{}
				for i, col := range s.Columns {
					row[col] = v[i]
				}
				at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(row["time"]))
				if err != nil || at.Before(before) || at.After(after) {
					t.Errorf("point time %v (%v), want the publish's", row["time"], err)
				}
				got = append(got, fmt.Sprintf("host=%v region=%v qos=%v clientid=%v temperature=%v", row["host"], row["region"], row["qos"], row["clientid"], row["temperature"]))
			}
		}
		slices.Sort(got)
		want := []string{
			"host=serverA region=hangzhou qos=1 clientid=mqttjs_ebcc36079a temperature=1",
			"host=serverB region=ningbo qos=1 clientid=mqttjs_ebcc36079a temperature=2",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("points of sample:\n got %q\nwant %q", got, want)
		}
	})
	t.Run("Timescale", func(t *testing.T) {
		got := pgRows(t, pgDSN, `select location, temperature::text, humidity::text, time >= $1 and time <= $2 from sensor_data order by location`, before, after)
		want := [][]string{{"bathroom", "22.3", "61.8", "true"}, {"bedroom", "21.3", "40.3", "true"}, {"kitchen", "29.5", "58.7", "true"}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("sensor_data rows %v, want %v", got, want)
		}
	})
	t.Run("StateStore", func(t *testing.T) {
		var topics []string
		rows, err := tg.db.Query(`select topic from mqtt_msg order by topic`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			topics = append(topics, s)
		}
		if want := []string{"sample", "sensor_data"}; !reflect.DeepEqual(topics, want) {
			t.Errorf("SQLite mqtt_msg topics %q, want %q", topics, want)
		}
		if row, ok := tg.client(t, "mqttjs_ebcc36079a"); !ok {
			t.Errorf("SQLite has no mqtt_client row for the publisher: %+v", row)
		}
	})
}

func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		pgRows(t, dsn, s)
	}
}

// pgRows runs q on dsn and returns its rows as text.
func pgRows(t *testing.T, dsn, q string, args ...any) [][]string {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = fmt.Sprint(v)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
