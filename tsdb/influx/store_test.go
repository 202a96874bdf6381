package influx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
	"github.com/mqttstore/mqttstore/template"
)

// specPayload is the payload of the spec's worked example ("InfluxDB 消息存储").
const specPayload = `{"data": [{"temp": 1, "host": "serverA", "region": "hangzhou"}, {"temp": 2, "host": "serverB", "region": "ningbo"}]}`

func publisher(t testing.TB, b hook.Backend, filter string) hook.WriteAction {
	t.Helper()
	a, err := b.Prepare(&hook.Rule{Name: "backend.influxdb.hook.message.publish.1", Point: hook.MessagePublish, Topic: filter,
		Action: hook.RuleAction{Function: hook.OnMessagePublish}, Pool: "pool1"})
	if err != nil {
		t.Fatal(err)
	}
	return a.(hook.WriteAction)
}

func publishAll(t testing.TB, w hook.WriteAction, msgs ...*hook.Message) {
	t.Helper()
	for _, m := range msgs {
		if err := w.Write(context.Background(), &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
	}
}

func flush(t testing.TB, b hook.Backend) {
	t.Helper()
	if err := b.(hook.Flusher).Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

var nextID int

func msg(topic, payload string) *hook.Message {
	nextID++
	return &hook.Message{ID: fmt.Sprintf("id%04d", nextID), From: "mqttjs_ebcc36079a", Topic: topic, QoS: 0,
		Payload: []byte(payload), Timestamp: time.UnixMilli(1560743513626).Add(time.Duration(nextID) * time.Millisecond)}
}

// openSpec opens the sink as a broker does, from the pool settings of an EMQX config.
func openSpec(t *testing.T, settings map[string]string) hook.Backend {
	t.Helper()
	b, err := backend.Open(context.Background(), backend.PoolConfig{Store: "influxdb", Pool: backend.NewPool("pool1", settings)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close(context.Background()) })
	return b
}

// rows reads back the points of measurement, each as its columns' text, sorted by host; over
// UDP it waits (up to 5s) for want of them, as the listener writes after its batch timeout.
func rows(t *testing.T, c testenv.InfluxConfig, db, measurement string, want int) []map[string]string {
	t.Helper()
	var out []map[string]string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		series, err := c.Query(context.Background(), db, `SELECT * FROM "`+measurement+`"`)
		if err != nil {
			t.Fatal(err)
		}
		out = out[:0]
		for _, s := range series {
			for _, v := range s.Values {
				row := map[string]string{}
				for i, col := range s.Columns {
					if v[i] != nil {
						row[col] = fmt.Sprint(v[i])
					}
				}
				out = append(out, row)
			}
		}
		if len(out) >= want || time.Now().After(deadline) {
			break
		}
	}
	slices.SortFunc(out, func(a, b map[string]string) int { return strings.Compare(a["host"]+a["v"], b["host"]+b["v"]) })
	return out
}

// TestSpecExample publishes the spec's payload on "sample" through the sink, opened from the
// EMQX pool settings and the spec's template file, and reads back the spec's two points.
func TestSpecExample(t *testing.T) {
	for _, udp := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP", true: "UDP"}[udp], func(t *testing.T) {
			c := testenv.InfluxDB(t)
			topic, db := "sample", c.Database
			settings := map[string]string{"server": c.HTTPURL, "database": c.Database, "precision": "ms",
				"template": "example.tmpl"}
			if udp {
				// The UDP database is shared: the topic, which is the measurement, is the test's own.
				topic, db = c.Measurement, c.UDPDatabase
				tmpl, err := os.ReadFile("example.tmpl")
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(t.TempDir(), "emqx_backend_influxdb.tmpl")
				if err := os.WriteFile(file, []byte(strings.Replace(string(tmpl), `"sample"`, `"`+topic+`"`, 1)), 0o600); err != nil {
					t.Fatal(err)
				}
				settings = map[string]string{"server": c.UDPAddr, "pool_size": "2", "template": file}
			}
			b := openSpec(t, settings)
			m := msg(topic, specPayload)
			publishAll(t, publisher(t, b, "#"), m)
			flush(t, b)
			ts := m.Timestamp.UTC().Format(time.RFC3339Nano)
			want := []map[string]string{
				{"time": ts, "clientid": "mqttjs_ebcc36079a", "host": "serverA", "qos": "0", "region": "hangzhou", "temperature": "1"},
				{"time": ts, "clientid": "mqttjs_ebcc36079a", "host": "serverB", "qos": "0", "region": "ningbo", "temperature": "2"},
			}
			if got := rows(t, c, db, topic, 2); !reflect.DeepEqual(got, want) {
				t.Errorf("points of the spec's example:\n got %v\nwant %v", got, want)
			}
			if st := b.(backend.StatsReporter).Stats(); st.Success != 1 || st.Failed != 0 {
				t.Errorf("Stats %+v, want 1 success and no failure", st)
			}
		})
	}
}

// TestTemplateNotApplied: messages whose template does not apply are counted as failed, and
// the messages around them in the same batch are stored.
func TestTemplateNotApplied(t *testing.T) {
	c := testenv.InfluxDB(t)
	set, err := template.ParseInflux([]byte(`{"s/#": {"measurement": "m", "tags": {"id": "$id"}, "fields": {"v": ["$payload", "v"]}, "timestamp": "$timestamp"}}`), template.InfluxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Server: c.HTTPURL, Database: c.Database, Templates: set,
		Options: backend.Options{BatchInterval: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	w := publisher(t, s, "#")
	good1, good2 := msg("s/1", `{"v": 1}`), msg("s/1", `{"v": 2.5}`)
	publishAll(t, w, good1,
		msg("s/1", `not json`),
		msg("s/1", `{"x": 1}`),    // no path
		msg("s/1", `{"v": null}`), // no field left
		msg("s/1", `{"v": [1}`),   // not JSON either
		msg("other", `{"v": 1}`),  // no template for the topic
		good2)
	flush(t, s)
	if st := s.Stats(); st.Failed != 5 || st.Success != 2 {
		t.Errorf("Stats %+v, want 5 failed and 2 stored", st)
	}
	got := rows(t, c, c.Database, "m", 2)
	if len(got) != 2 || got[0]["v"] != "1" || got[1]["v"] != "2.5" {
		t.Errorf("stored %v; want v = 1 and 2.5", got)
	}
}

// TestPartialWrite: a batch InfluxDB stores in part (400 "partial write ... dropped=1": a
// field type conflict) counts the dropped point, and the stored points are not written again.
func TestPartialWrite(t *testing.T) {
	c := testenv.InfluxDB(t)
	// No timestamp: InfluxDB stamps each point on arrival, so a retry would duplicate it.
	set, err := template.ParseInflux([]byte(`{"#": {"measurement": "m", "fields": {"v": ["$payload", "v"]}, "tags": {"id": "$id"}}}`), template.InfluxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Server: c.HTTPURL, Database: c.Database, Templates: set,
		Options: backend.Options{BatchInterval: time.Second, Shards: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	w := publisher(t, s, "#")
	publishAll(t, w, msg("t", `{"v": 1}`))
	flush(t, s) // v is a float field now
	publishAll(t, w, msg("t", `{"v": 2}`), msg("t", `{"v": "text"}`), msg("t", `{"v": 3}`))
	flush(t, s)
	if st := s.Stats(); st.Failed != 1 || st.Retried != 0 {
		t.Errorf("Stats %+v, want 1 failed (the dropped point) and no retry", st)
	}
	got := rows(t, c, c.Database, "m", 3)
	var vs []string
	for _, r := range got {
		vs = append(vs, r["v"])
	}
	slices.Sort(vs)
	if !slices.Equal(vs, []string{"1", "2", "3"}) {
		t.Errorf("stored v = %v, want 1, 2, 3 once each", vs)
	}
}

// TestV2API writes through /api/v2/write (bucket, org, token) to VictoriaMetrics, which stores
// each numeric field as the series measurement_field.
func TestV2API(t *testing.T) {
	c := testenv.OpenTSDB(t) // VictoriaMetrics: its HTTP API takes /api/v2/write
	measurement := c.MetricPrefix + "sensor"
	set, err := template.ParseInflux([]byte(`{"sensor/+": {"measurement": "`+measurement+`", "tags": {"host": ["$payload", "data", "$0", "host"]},
		"fields": {"temp": ["$payload", "data", "$0", "temp"]}, "timestamp": "$timestamp"}}`), template.InfluxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Server: c.QueryURL, Bucket: "emqx", Org: "mqttstore", Token: "secret", Templates: set})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	m := msg("sensor/1", specPayload)
	publishAll(t, publisher(t, s, "sensor/#"), m)
	flush(t, s)
	var got []testenv.OpenTSDBSeries
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(got) < 2; time.Sleep(50 * time.Millisecond) {
		if got, err = c.Export(context.Background(), measurement+"_temp"); err != nil {
			t.Fatal(err)
		}
	}
	slices.SortFunc(got, func(a, b testenv.OpenTSDBSeries) int { return strings.Compare(a.Tags["host"], b.Tags["host"]) })
	want := []testenv.OpenTSDBSeries{
		{Metric: measurement + "_temp", Tags: map[string]string{"host": "serverA"}, Values: []float64{1}, Timestamps: []int64{m.Timestamp.UnixMilli()}},
		{Metric: measurement + "_temp", Tags: map[string]string{"host": "serverB"}, Values: []float64{2}, Timestamps: []int64{m.Timestamp.UnixMilli()}},
	}
	for i := range got {
		delete(got[i].Tags, "db") // VictoriaMetrics may tag the series with the bucket
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("series\n got %+v\nwant %+v", got, want)
	}
}

func TestFailureOf(t *testing.T) {
	for code, want := range map[int]backend.Failure{400: backend.FailItem, 413: backend.FailItem, 401: backend.FailBatch,
		404: backend.FailBatch, 429: backend.FailRetry, 500: backend.FailRetry, 503: backend.FailRetry} {
		if got := classify(fmt.Errorf("x: %w", &statusError{code: code, failure: failureOf(code)})); got != want {
			t.Errorf("HTTP %d: %v, want %v", code, got, want)
		}
	}
	if got := classify(errors.New("connection reset mid-request")); got != backend.FailUnknown {
		t.Errorf("a lost request: %v, want FailUnknown", got)
	}
}

func TestPrecision(t *testing.T) {
	for in, want := range map[string]time.Duration{"n": time.Nanosecond, "ns": time.Nanosecond, "u": time.Microsecond, "ms": time.Millisecond, "s": time.Second, "h": time.Hour} {
		if got, err := ParsePrecision(in); err != nil || got != want {
			t.Errorf("ParsePrecision(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParsePrecision("us1"); !errors.Is(err, hook.ErrConfig) {
		t.Errorf("bad precision: %v", err)
	}
	if _, err := precisionName(time.Minute, true); err == nil {
		t.Error("v2 accepted precision m")
	}
	if n, _ := precisionName(time.Microsecond, false); n != "u" {
		t.Errorf("v1 microseconds = %q, want u (1.x refuses us)", n)
	}
}

// TestDefaultConfig: the registry's default configuration loads, and its pool opens.
func TestDefaultConfig(t *testing.T) {
	conf, ok := backend.DefaultConfig("influxdb")
	if !ok {
		t.Fatal("no default config")
	}
	cfg, err := backend.LoadConfig(strings.NewReader(string(conf)))
	if err != nil {
		t.Fatal(err)
	}
	sc := cfg.Stores["influxdb"]
	if sc == nil || len(sc.Rules) != 1 || sc.Pools["pool1"] == nil {
		t.Fatalf("default config: %+v", sc)
	}
	// No template setting and no data/templates file: the spec's example templates.
	b, err := backend.Open(context.Background(), backend.PoolConfig{Store: "influxdb", Pool: sc.Pools["pool1"]})
	if err != nil {
		t.Fatal(err)
	}
	b.Close(context.Background())
	_, err = backend.Open(context.Background(), backend.PoolConfig{Store: "influxdb", Pool: backend.NewPool("pool1", map[string]string{"sever": "x"})})
	if !errors.Is(err, hook.ErrConfig) {
		t.Errorf("a misspelt setting: %v, want ErrConfig", err)
	}
}

// TestDatagrams: over UDP (a private listener that records what it receives), every
// datagram is at most MaxDatagram bytes and holds whole lines, no message's points are split
// across two, every message arrives once, and a message whose points alone exceed a datagram
// is refused and counted.
func TestDatagrams(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if err := pc.(*net.UDPConn).SetReadBuffer(8 << 20); err != nil {
		t.Log(err)
	}
	got := make(chan []byte, 4096)
	go func() {
		buf := make([]byte, 1<<17)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				close(got)
				return
			}
			got <- append([]byte(nil), buf[:n]...)
		}
	}()
	set, err := template.ParseInflux([]byte(`{"#": {"measurement": "m", "tags": {"id": "$id"},
		"fields": {"a": ["$payload", "$0", "s"]}}}`), template.InfluxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Config{Server: pc.LocalAddr().String(), Templates: set,
		Options: backend.Options{BatchInterval: 20 * time.Millisecond, QueueSize: 4096}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	w := publisher(t, s, "#")
	const n = 300
	for i := range n {
		// Three points a message, of about 1 to 3 KiB together.
		p := strings.Repeat("x", 300+i%700)
		publishAll(t, w, &hook.Message{ID: fmt.Sprintf("m%03d", i), Topic: "t",
			Payload: []byte(`[{"s": "` + p + `"}, {"s": "` + p + `"}, {"s": "` + p + `"}]`)})
	}
	big := strings.Repeat("y", MaxDatagram)
	publishAll(t, w, &hook.Message{ID: "big", Topic: "t", Payload: []byte(`[{"s": "` + big + `"}]`)})
	flush(t, s)
	if st := s.Stats(); st.Success != n || st.Failed != 1 {
		t.Errorf("Stats %+v, want %d sent and the big message failed", st, n)
	}
	perMessage := map[string]int{}
	for lines := 0; lines < 3*n; {
		var d []byte
		select {
		case d = <-got:
		case <-time.After(5 * time.Second):
			t.Fatalf("received %d lines, want %d", lines, 3*n)
		}
		if len(d) > MaxDatagram {
			t.Errorf("a datagram of %d bytes", len(d))
		}
		if d[len(d)-1] != '\n' {
			t.Errorf("a datagram does not end a line: ...%q", d[len(d)-20:])
		}
		inThis := map[string]int{}
		for _, l := range strings.Split(strings.TrimSuffix(string(d), "\n"), "\n") {
			id := strings.TrimPrefix(strings.Fields(l)[0], "m,id=")
			inThis[id]++
			lines++
		}
		for id, k := range inThis {
			if k != 3 {
				t.Errorf("message %s: %d of its 3 points in one datagram", id, k)
			}
			perMessage[id]++
		}
	}
	for id, k := range perMessage {
		if k != 1 {
			t.Errorf("message %s in %d datagrams", id, k)
		}
	}
	if len(perMessage) != n {
		t.Errorf("%d messages received, want %d", len(perMessage), n)
	}
}
