package template

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/topic"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func influxSet(t testing.TB, data string, opts InfluxOptions) *Set[InfluxTemplate] {
	t.Helper()
	s, err := ParseInflux([]byte(data), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func renderInflux(t testing.TB, s *Set[InfluxTemplate], v *Values) ([]Point, error) {
	t.Helper()
	var out []Point
	for _, tm := range s.Select(nil, v.Topic, topic.Match) {
		var err error
		if out, err = tm.Render(out, v); err != nil {
			return out, err
		}
	}
	return out, nil
}

// The spec's InfluxDB example: the "sample" payload makes two points.
func TestInfluxSpecExample(t *testing.T) {
	ts := time.Unix(0, 1560743513626681000)
	v := &Values{Topic: "sample", ClientID: "mqttjs_ebcc36079a", QoS: 0, TS: ts, Payload: readFile(t, "sample_payload.json")}
	point := func(host, region string, temp any) Point {
		return Point{
			Measurement: "sample",
			Tags:        []Tag{{"clientid", "mqttjs_ebcc36079a"}, {"host", host}, {"qos", "0"}, {"region", region}},
			Fields:      []Field{{"temperature", temp}},
			Time:        ts,
		}
	}
	t.Run("typed fields", func(t *testing.T) {
		got, err := renderInflux(t, influxSet(t, string(readFile(t, "influxdb_example.tmpl")), InfluxOptions{}), v)
		if err != nil {
			t.Fatal(err)
		}
		want := []Point{point("serverA", "hangzhou", 1.0), point("serverB", "ningbo", 2.0)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %#v\nwant %#v", got, want)
		}
	})
	t.Run("EMQX string fields", func(t *testing.T) {
		s := influxSet(t, string(readFile(t, "influxdb_example.tmpl")), InfluxOptions{StringFields: true})
		got, err := renderInflux(t, s, v)
		if err != nil {
			t.Fatal(err)
		}
		want := []Point{point("serverA", "hangzhou", "1"), point("serverB", "ningbo", "2")}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %#v\nwant %#v", got, want)
		}
		// The spec's encoded form (its second run: another client ID and time).
		v2 := *v
		v2.ClientID, v2.TS = "mqttjs_6990f0e886", time.Unix(0, 1560745505429670000)
		points, err := renderInflux(t, s, &v2)
		if err != nil {
			t.Fatal(err)
		}
		var line []byte
		for _, p := range points {
			if line, err = p.AppendLine(line, time.Nanosecond); err != nil {
				t.Fatal(err)
			}
		}
		const spec = "sample,clientid=mqttjs_6990f0e886,host=serverA,qos=0,region=hangzhou temperature=\"1\" 1560745505429670000\nsample,clientid=mqttjs_6990f0e886,host=serverB,qos=0,region=ningbo temperature=\"2\" 1560745505429670000\n"
		if string(line) != spec {
			t.Fatalf("line protocol\n got %q\nwant %q", line, spec)
		}
	})
	t.Run("other topics", func(t *testing.T) {
		v2 := *v
		v2.Topic = "sample/2"
		got, err := renderInflux(t, influxSet(t, string(readFile(t, "influxdb_example.tmpl")), InfluxOptions{}), &v2)
		if err != nil || len(got) != 0 {
			t.Fatalf("topic sample/2: %v, %v; want no points", got, err)
		}
	})
}

// The spec's OpenTSDB example.
func TestOpenTSDBSpecExample(t *testing.T) {
	s, err := ParseOpenTSDB(readFile(t, "opentsdb_example.tmpl"), OpenTSDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(0, 1560743513626681000)
	v := &Values{Topic: "sample", ClientID: "mqttjs_ebcc36079a", TS: ts, Payload: readFile(t, "sample_payload.json")}
	var got []DataPoint
	for _, tm := range s.Select(nil, "sample", topic.Match) {
		if got, err = tm.Render(got, v); err != nil {
			t.Fatal(err)
		}
	}
	want := []DataPoint{
		{Metric: "sample", Tags: []Tag{{"clientid", "mqttjs_ebcc36079a"}, {"host", "serverA"}, {"qos", "0"}, {"region", "hangzhou"}}, Value: int64(1), Time: ts},
		{Metric: "sample", Tags: []Tag{{"clientid", "mqttjs_ebcc36079a"}, {"host", "serverB"}, {"qos", "0"}, {"region", "ningbo"}}, Value: int64(2), Time: ts},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}
}

// The spec's Timescale example: the "sensor_data" payload makes exactly three inserts.
func TestTimescaleSpecExample(t *testing.T) {
	s, err := ParseTimescale(readFile(t, "timescale_example.tmpl"))
	if err != nil {
		t.Fatal(err)
	}
	render := func(name string, payload []byte) ([]TimescaleInsert, error) {
		var out []TimescaleInsert
		for _, tm := range s.Select(nil, name, topic.Match) {
			if out, err = tm.Render(out, &Values{Topic: name, Payload: payload}); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	const q = "insert into sensor_data(time, location, temperature, humidity) values (NOW(), $1, $2, $3)"
	got, err := render("sensor_data", readFile(t, "sensor_data_payload.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := []TimescaleInsert{
		{Name: "insert_sensor_data", SQL: q, Args: []any{"bedroom", 21.3, 40.3}},
		{Name: "insert_sensor_data", SQL: q, Args: []any{"bathroom", 22.3, 61.8}},
		{Name: "insert_sensor_data", SQL: q, Args: []any{"kitchen", 29.5, 58.7}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %#v\nwant %#v", got, want)
	}

	got, err = render("sensor_data2/room/1", []byte(`{"location":"hall","temperature":20,"humidity":null}`))
	if err != nil {
		t.Fatal(err)
	}
	want = []TimescaleInsert{{Name: "insert_sensor_data2", SQL: q, Args: []any{"hall", int64(20), nil}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("sensor_data2: got %#v\nwant %#v", got, want)
	}

	got, err = render("easy_data", []byte("not json, stored whole"))
	if err != nil {
		t.Fatal(err)
	}
	want = []TimescaleInsert{{Name: "insert_easy_data", SQL: "insert into easy_data(time, data) values (NOW(), $1)", Args: []any{"not json, stored whole"}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("easy_data: got %#v\nwant %#v", got, want)
	}
}

func TestRenderErrors(t *testing.T) {
	const tmpl = `{"t": {"measurement": "m",
		"tags": {"a": ["$payload", "as", "$0", "x"], "n": ["$payload", "n", "$2"]},
		"fields": {"b": ["$payload", "bs", "$0"]}}}`
	s := influxSet(t, tmpl, InfluxOptions{})
	cases := []struct {
		payload string
		err     error
		in      []string
	}{
		{`{"as": [{"x": 1}, {"x": 2}], "bs": [1], "n": [0, 0]}`, ErrRowCount, []string{"tags.a", "has 2", "fields.b", "has 1"}},
		{`{"as": [{"x": 1}, {"y": 2}], "bs": [1, 2], "n": [0, 0]}`, ErrNoValue, []string{"tags.a", "element 2", `no key "x"`}},
		{`{"as": {"x": 1}, "bs": [1], "n": [0, 0]}`, ErrNoValue, []string{"not an array"}},
		{`{"as": [], "bs": [], "n": [0]}`, ErrNoValue, []string{"tags.n", "no element $2"}},
		{`{"as": [], "bs": [], "n": {"1": 0}}`, ErrNoValue, []string{"tags.n", "not an array"}},
		{`{"as": [{"x": 1}], "bs": [null], "n": [0, 0]}`, ErrValueType, []string{"no field", "element 1"}},
		{`not json`, ErrPayloadNotJSON, []string{`template "t" tags.a ["$payload", "as", "$0", "x"]`}},
		{``, ErrPayloadNotJSON, nil},
	}
	for _, c := range cases {
		pts, err := s.Entries()[0].Templates[0].Render([]Point{{Measurement: "keep"}}, &Values{Payload: []byte(c.payload)})
		if !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", c.payload, err, c.err)
			continue
		}
		for _, in := range c.in {
			if !strings.Contains(err.Error(), in) {
				t.Errorf("%s: %q does not say %q", c.payload, err, in)
			}
		}
		if len(pts) != 1 || pts[0].Measurement != "keep" {
			t.Errorf("%s: dst changed on error: %v", c.payload, pts)
		}
	}
	// An empty $0 array makes no row.
	pts, err := s.Entries()[0].Templates[0].Render(nil, &Values{Payload: []byte(`{"as": [], "bs": [], "n": [0, 0]}`)})
	if err != nil || len(pts) != 0 {
		t.Fatalf("empty arrays: %v, %v", pts, err)
	}
}

func TestInfluxValues(t *testing.T) {
	s := influxSet(t, `{"#": [{
		"measurement": ["$payload", "m"],
		"tags": {"empty": ["$payload", "e"], "null": ["$payload", "z"], "num": ["$payload", "f"], "obj": ["$payload", "o"], "id": "$id", "lit": "$$qos"},
		"fields": {"f": ["$payload", "f"], "i": "$qos", "s": ["$payload", "s"], "b": ["$payload", "b"], "z": ["$payload", "z"], "ts": "$timestamp", "c": 7},
		"timestamp": ["$payload", "t"]}]}`, InfluxOptions{TimeUnit: time.Second})
	v := &Values{Topic: "x", MsgID: "id1", QoS: 1, TS: time.UnixMilli(1500),
		Payload: []byte(`{"m": "meas", "e": "", "z": null, "f": 21.50, "o": {"k": [1]}, "s": "txt", "b": true, "t": 1700000000}`)}
	pts, err := renderInflux(t, s, v)
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{{
		Measurement: "meas",
		Tags:        []Tag{{"id", "id1"}, {"lit", "$qos"}, {"num", "21.50"}, {"obj", `{"k": [1]}`}},
		Fields:      []Field{{"b", true}, {"c", 7.0}, {"f", 21.5}, {"i", int64(1)}, {"s", "txt"}, {"ts", int64(1500)}},
		Time:        time.Unix(1700000000, 0),
	}}
	if !reflect.DeepEqual(pts, want) {
		t.Fatalf("got  %#v\nwant %#v", pts, want)
	}
	for payload, in := range map[string]string{
		`{"m": null, "f": 1, "s": "", "b": 1, "t": 1}`:          "measurement is empty or null",
		`{"m": "#x", "f": 1, "s": "", "b": 1, "t": 1}`:          "starts with #",
		`{"m": "a\nb", "f": 1, "s": "", "b": 1, "t": 1}`:        "line break",
		`{"m": "a", "f": 1, "s": "", "b": 1, "t": "yesterday"}`: "neither a number nor RFC 3339",
		`{"m": "a", "f": 1e999, "s": "", "b": 1, "t": 1}`:       "not a finite number",
	} {
		v.Payload = []byte(strings.Replace(payload, "}", `, "e": "", "z": null, "o": 1}`, 1))
		if _, err := renderInflux(t, s, v); !errors.Is(err, ErrValueType) || !strings.Contains(err.Error(), in) {
			t.Errorf("%s: err = %v, want ErrValueType saying %q", payload, err, in)
		}
	}
	v.Payload = []byte(`{"m": "a", "f": 1, "s": "", "b": 1, "t": "2024-01-02T03:04:05.5Z", "e": "", "z": null, "o": 1}`)
	if pts, err := renderInflux(t, s, v); err != nil || !pts[0].Time.Equal(time.Date(2024, 1, 2, 3, 4, 5, 5e8, time.UTC)) {
		t.Errorf("RFC 3339 timestamp: %v, %v", pts, err)
	}
}

func TestOpenTSDBValues(t *testing.T) {
	s, err := ParseOpenTSDB([]byte(`{"+/v": {"measurement": "m", "value": ["$payload", "v"], "timestamp": ["$payload", "t"]}}`), OpenTSDBOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tm := s.Select(nil, "a/v", topic.Match)[0]
	for payload, want := range map[string]any{
		`{"v": 3, "t": 1700000000123}`:     int64(3),
		`{"v": 3.25, "t": 1700000000123}`:  3.25,
		`{"v": "42", "t": 1700000000123}`:  int64(42),
		`{"v": "4.5", "t": 1700000000123}`: 4.5,
	} {
		pts, err := tm.Render(nil, &Values{Payload: []byte(payload)})
		if err != nil || len(pts) != 1 || pts[0].Value != want || !pts[0].Time.Equal(time.UnixMilli(1700000000123)) || pts[0].Tags != nil {
			t.Errorf("%s: %#v, %v; want value %#v", payload, pts, err, want)
		}
	}
	for _, payload := range []string{`{"v": "warm", "t": 1}`, `{"v": null, "t": 1}`, `{"v": true, "t": 1}`, `{"v": "NaN", "t": 1}`, `{"v": [1], "t": 1}`} {
		if _, err := tm.Render(nil, &Values{Payload: []byte(payload)}); !errors.Is(err, ErrValueType) {
			t.Errorf("%s: err = %v, want ErrValueType", payload, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	influx := []struct{ tmpl, in string }{
		{`[]`, "JSON object"},
		{`{"a": `, "invalid payload template"},
		{`{"a": {"fields": {"f": 1}}}`, "measurement is required"},
		{`{"a": {"measurement": "m"}}`, "fields is required"},
		{`{"a": {"measurement": "m", "fields": {}}}`, "at least one field"},
		{`{"a": {"measurement": "m", "fields": []}}`, "must be an object"},
		{`{"a": {"measurement": "m", "fields": {"f": 1}, "field": {}}}`, `"a" field: invalid payload template: unknown key`},
		{`{"a": {"measurement": "m", "fields": {"f": "$clientId"}}}`, `"a" fields.f: invalid payload template: unknown placeholder "$clientId"`},
		{`{"a": {"measurement": "m", "fields": {"f": "$0"}}}`, "unknown placeholder"},
		{`{"a": {"measurement": "m", "fields": {"f": ["data", "x"]}}}`, `must start with "$payload"`},
		{`{"a": {"measurement": "m", "fields": {"f": ["$payload", 1]}}}`, "not a string"},
		{`{"a": {"measurement": "m", "fields": {"f": ["$payload", "$x"]}}}`, "neither a key nor $N"},
		{`{"a": {"measurement": "m", "fields": {"f": ["$payload", "$-1"]}}}`, "neither a key nor $N"},
		{`{"a": {"measurement": "m", "fields": {"f": ["$payload", "$0", "$0"]}}}`, "$0 only once"},
		{`{"a": {"measurement": "m", "fields": {"f": {"x": 1}}}}`, "not an object"},
		{`{"a": {"measurement": "m", "fields": {"": 1}}}`, "empty or holds a line break"},
		{`{"a": {"measurement": "m", "fields": {"f": 1, "f": 2}}}`, "given twice"},
		{`{"a": [], "b": 1}`, "non-empty list"},
		{`{"a": [1]}`, `"a"[0]: invalid payload template: a template must be a JSON object`},
		{`{"a/#/b": {"measurement": "m", "fields": {"f": 1}}}`, "# must be the last level"},
		{`{"a+": {"measurement": "m", "fields": {"f": 1}}}`, "whole level"},
		{`{"": {"measurement": "m", "fields": {"f": 1}}}`, "empty topic filter"},
		{`{"a": {"measurement": "m", "fields": {"f": 1}}, "a": {"measurement": "m", "fields": {"f": 1}}}`, "given twice"},
	}
	for _, c := range influx {
		_, err := ParseInflux([]byte(c.tmpl), InfluxOptions{})
		if !errors.Is(err, ErrInvalidTemplate) || !strings.Contains(err.Error(), c.in) {
			t.Errorf("influx %s: err = %v, want ErrInvalidTemplate saying %q", c.tmpl, err, c.in)
		}
	}
	if _, err := ParseInflux([]byte(`{"a": {"measurement": "m", "fields": {"f": 1}}}`), InfluxOptions{TimeUnit: -1}); !errors.Is(err, ErrInvalidTemplate) {
		t.Errorf("negative TimeUnit: %v", err)
	}
	if _, err := ParseOpenTSDB([]byte(`{"a": {"measurement": "m"}}`), OpenTSDBOptions{}); err == nil || !strings.Contains(err.Error(), "value is required") {
		t.Errorf("opentsdb without value: %v", err)
	}
	const sql = `insert into t(a, b) values ($1, $2)`
	timescale := []struct{ tmpl, in string }{
		{`{"a": {"sql": "` + sql + `", "param_keys": [1, 2]}}`, "name: invalid payload template: is required"},
		{`{"a": {"name": "n", "param_keys": [1, 2]}}`, "sql: invalid payload template: is required"},
		{`{"a": {"name": "n", "sql": "` + sql + `"}}`, "param_keys: invalid payload template: is required"},
		{`{"a": {"name": "n", "sql": "` + sql + `", "param_keys": [1]}}`, "$2 has no param_keys entry (there are 1)"},
		{`{"a": {"name": "n", "sql": "` + sql + `", "param_keys": [1, 2, 3]}}`, "param_keys[2] is not used"},
		{`{"a": {"name": "n", "sql": "insert into t(a) values ('$1', $2)", "param_keys": [1, 2]}}`, "param_keys[0] is not used"},
		{`{"a": {"name": "n", "sql": "insert into t(a) values ('$1)", "param_keys": [1]}}`, "not closed"},
		{`{"a": {"name": "n", "sql": "` + sql + `", "param_keys": [1, 2]}, "b": {"name": "n", "sql": "` + sql + `", "param_keys": [1, 2]}}`, `"n" is the name of another template`},
	}
	for _, c := range timescale {
		_, err := ParseTimescale([]byte(c.tmpl))
		if !errors.Is(err, ErrInvalidTemplate) || !strings.Contains(err.Error(), c.in) {
			t.Errorf("timescale %s: err = %v, want ErrInvalidTemplate saying %q", c.tmpl, err, c.in)
		}
	}
}

func TestSelectOrderAndEntries(t *testing.T) {
	s := influxSet(t, `{
		"sensor/#": [{"measurement": "a", "fields": {"f": 1}}, {"measurement": "b", "fields": {"f": 1}}],
		"other": {"measurement": "c", "fields": {"f": 1}},
		"sensor/+/t": {"measurement": "d", "fields": {"f": 1}}}`, InfluxOptions{})
	var names []string
	for _, tm := range s.Select(nil, "sensor/1/t", topic.Match) {
		pts, err := tm.Render(nil, &Values{})
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, pts[0].Measurement)
	}
	if strings.Join(names, ",") != "a,b,d" {
		t.Fatalf("selected %v, want a,b,d in file order", names)
	}
	var filters []string
	for _, e := range s.Entries() {
		filters = append(filters, e.Filter)
	}
	if strings.Join(filters, " ") != "sensor/# other sensor/+/t" {
		t.Fatalf("Entries filters = %v", filters)
	}
}

func TestPathKeys(t *testing.T) {
	// Keys with gjson path syntax in them are plain keys; "$$" escapes a leading '$'.
	for _, key := range []string{"a.b", "*", "a?", "#", "@this", "x|y", `back\slash`, "", "é", "$0"} {
		elem := key
		if strings.HasPrefix(key, "$") {
			elem = "$" + key
		}
		tmpl := `{"t": {"name": "n", "sql": "select $1", "param_keys": [["$payload", ` + quote(elem) + `]]}}`
		s, err := ParseTimescale([]byte(tmpl))
		if err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		payload := `{"decoy": 0, ` + quote(key) + `: "found", "zz": 1}`
		rows, err := s.Entries()[0].Templates[0].Render(nil, &Values{Payload: []byte(payload)})
		if err != nil || len(rows) != 1 || rows[0].Args[0] != "found" {
			t.Errorf("key %q in %s: %v, %v", key, payload, rows, err)
		}
	}
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

func TestTimescaleParamsAreLexed(t *testing.T) {
	// $2 inside an identifier, a string and a comment is no parameter; $1 is.
	tmpl := `{"t": {"name": "n", "sql": "select 1 as é$2, '$2', $1 -- $2", "param_keys": ["$clientid"]}}`
	s, err := ParseTimescale([]byte(tmpl))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.Entries()[0].Templates[0].Render(nil, &Values{ClientID: "c"})
	if err != nil || len(rows) != 1 || !reflect.DeepEqual(rows[0].Args, []any{"c"}) {
		t.Fatalf("%v, %v", rows, err)
	}
}
