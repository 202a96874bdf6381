package template

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// marker values: text that must never reach a statement.
var marked = Values{
	ClientID: "\x01CLIENT 'x' --\n", Username: "\x01USER\"", Peerhost: "\x01PEER ;", Node: "\x01NODE `",
	Topic: "\x01TOPIC $1 ?", MsgID: "\x01MSGID\x00", QoS: 1, Payload: []byte("\x01PAYLOAD\xff\n"), TS: time.UnixMilli(123),
}

// markerArgs lexes a compiled statement's text and returns its bind markers.
func markerArgs(t *testing.T, d Dialect, text string) []string {
	l := sqlLexer{d: d, src: text, items: rawItems(text), raw: true}
	if err := l.run(); err != nil {
		t.Fatalf("compiled statement %q does not lex: %v", text, err)
	}
	return l.params
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"insert into conn(clientid) values(${clientid})",
		"insert into sub(topic, qos) values(${topic}, ${qos})",
		"delete from mqtt_acked where clientid = ${clientid} and topic = ${topic}",
		"insert into msg(msgid, topic) values(${msgid}, ${topic})",
		"select * from mqtt_retain where topic = ${topic};",
		"DEL mqtt:acked:${clientid}:${topic}",
		"HSET sub:${clientid} ${topic} ${qos}",
		"SET conn:${clientid} ${clientid}",
		"RPUSH pub:${topic} ${msgid}",
		"HSET mqtt:node:${node} ${clientid} ${ts}",
		"select 'it''s', $$x$$, $t$ y $t$, E'\\'', `a`, [b], \"c\" -- ${payload}\n, ${payload} /* /* */ */ # x",
		"select '${clientid}'", "select $${x}, ${username}${peerhost}", "insert ${clientid", "${}", "x ${message}",
	} {
		for mode := range uint8(6) {
			f.Add(s, mode)
		}
	}
	f.Fuzz(func(t *testing.T, src string, mode uint8) {
		switch mode % 6 {
		case 4:
			cmd, err := CompileRedis(src)
			if err != nil {
				checkSyntaxError(t, src, err)
				return
			}
			args := cmd.Args(nil, &marked)
			if len(args) != cmd.NumArgs() || len(cmd.Args(nil, &Values{})) != len(args) {
				t.Fatalf("%q: %d args, NumArgs %d", src, len(args), cmd.NumArgs())
			}
			if name, ok := args[0].(string); !ok || name != cmd.Name() || strings.Count(name, "\x01") > strings.Count(src, "\x01") {
				t.Fatalf("%q: command name %#v", src, args[0])
			}
		case 5:
			tx, err := CompileText(src)
			if err != nil {
				checkSyntaxError(t, src, err)
				return
			}
			if got := tx.Render(&marked); got != string(tx.Append(nil, &marked)) {
				t.Fatalf("%q: Render and Append differ", src)
			}
		default:
			d := Dialect(mode%6 + 1)
			s, err := CompileStatement(d, src)
			if err != nil {
				checkSyntaxError(t, src, err)
				return
			}
			args := s.Args(nil, &marked)
			if len(args) != s.NumArgs() || len(args) != len(s.Vars()) {
				t.Fatalf("%q: %d args for %d markers", src, len(args), s.NumArgs())
			}
			for i, x := range s.Vars() {
				if !reflect.DeepEqual(args[i], marked.arg(x)) {
					t.Fatalf("%q: arg %d = %#v, want %v", src, i, args[i], x)
				}
			}
			if strings.Count(s.Text(), "\x01") > strings.Count(src, "\x01") {
				t.Fatalf("%q: a value reached the statement %q", src, s.Text())
			}
			// The statement's own bind markers, found by lexing it again, are exactly ours.
			markers := markerArgs(t, d, s.Text())
			if len(markers) != s.NumArgs() {
				t.Fatalf("%q compiled to %q with markers %q, want %d", src, s.Text(), markers, s.NumArgs())
			}
			for i, m := range markers {
				if want := map[bool]string{true: "$" + strconv.Itoa(i+1), false: "?"}[d == PostgreSQL]; "$"+m != want && m != want {
					t.Fatalf("%q compiled to %q: marker %d is %q", src, s.Text(), i, m)
				}
			}
		}
	})
}

func checkSyntaxError(t *testing.T, src string, err error) {
	se, ok := err.(*SyntaxError)
	if !ok || se.Template != src || se.Offset < 0 || se.Offset > len(src) || se.Err == nil || se.Reason == "" || se.Line < 1 || se.Column < 1 {
		t.Fatalf("%q: bad error %#v", src, err)
	}
}

func FuzzPayloadTemplates(f *testing.F) {
	seeds := []struct{ tmpl, payload string }{
		{"influxdb_example.tmpl", "sample_payload.json"},
		{"opentsdb_example.tmpl", "sample_payload.json"},
		{"timescale_example.tmpl", "sensor_data_payload.json"},
	}
	for _, s := range seeds {
		for kind := range uint8(3) {
			f.Add(kind, readFile(f, s.tmpl), readFile(f, s.payload), "sample")
			f.Add(kind, readFile(f, s.tmpl), readFile(f, s.payload), "sensor_data")
		}
	}
	f.Add(uint8(0), []byte(`{"#": {"measurement": ["$payload", "$1"], "fields": {"f": ["$payload", "$0", "$$k"]}, "timestamp": ["$payload", "$2"]}}`),
		[]byte(`[{"$k": 1}, {"$k": null}]`), "a/b")
	f.Fuzz(func(t *testing.T, kind uint8, tmpl, payload []byte, topic string) {
		v := &Values{Topic: topic, ClientID: "c", Payload: payload, TS: time.UnixMilli(1), QoS: 1}
		all := func(string, string) bool { return true }
		switch kind % 3 {
		case 0:
			s, err := ParseInflux(tmpl, InfluxOptions{StringFields: len(payload)%2 == 0})
			if err != nil {
				return
			}
			for _, tm := range s.Select(nil, topic, all) {
				points, err := tm.Render(nil, v)
				if err != nil {
					continue
				}
				for _, p := range points {
					if _, err := p.AppendLine(nil, time.Millisecond); err != nil {
						t.Fatalf("rendered point %+v does not encode: %v", p, err)
					}
				}
			}
		case 1:
			s, err := ParseOpenTSDB(tmpl, OpenTSDBOptions{})
			if err != nil {
				return
			}
			for _, tm := range s.Select(nil, topic, all) {
				points, err := tm.Render(nil, v)
				for _, p := range points {
					if err != nil || p.Metric == "" || p.Value == nil {
						t.Fatalf("bad data point %+v (%v)", p, err)
					}
				}
			}
		case 2:
			s, err := ParseTimescale(tmpl)
			if err != nil {
				return
			}
			for _, tm := range s.Select(nil, topic, all) {
				rows, err := tm.Render(nil, v)
				for _, r := range rows {
					if err != nil || r.SQL != tm.SQL() || len(markerArgs(t, PostgreSQL, r.SQL)) < len(r.Args) {
						t.Fatalf("bad row %+v (%v)", r, err)
					}
				}
			}
		}
	})
}

// FuzzPayloadRender renders fixed templates (the spec's, and one using every kind of value)
// against random payloads.
func FuzzPayloadRender(f *testing.F) {
	influx, err := ParseInflux([]byte(`{"#": [
		{"measurement": ["$payload", "m"], "tags": {"a": ["$payload", "d", "$0", "a"], "b": ["$payload", "$$x", "$2"], "id": "$id"},
		 "fields": {"f": ["$payload", "d", "$0", "f"], "g": ["$payload", "g"], "q": "$qos", "p": "$payload"}, "timestamp": ["$payload", "t"]},
		{"measurement": "$topic", "fields": {"all": ["$payload"]}, "timestamp": "$timestamp"}]}`), InfluxOptions{})
	if err != nil {
		f.Fatal(err)
	}
	spec, err := ParseInflux(readFile(f, "influxdb_example.tmpl"), InfluxOptions{StringFields: true})
	if err != nil {
		f.Fatal(err)
	}
	tsdb, err := ParseOpenTSDB(readFile(f, "opentsdb_example.tmpl"), OpenTSDBOptions{})
	if err != nil {
		f.Fatal(err)
	}
	ts, err := ParseTimescale(readFile(f, "timescale_example.tmpl"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(readFile(f, "sample_payload.json"))
	f.Add(readFile(f, "sensor_data_payload.json"))
	f.Add([]byte(`{"m": "x y,z", "d": [{"a": "1", "f": 1.5}, {"a": null, "f": "s"}], "$x": [0, {"k": true}], "g": [1], "t": "2024-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"m": "m", "d": [], "$x": [0, 1], "g": null, "t": 1e30}`))
	f.Fuzz(func(t *testing.T, payload []byte) {
		v := &Values{Topic: "sample", ClientID: "c", MsgID: "id", Payload: payload, TS: time.UnixMilli(1)}
		all := func(string, string) bool { return true }
		for _, set := range []*Set[InfluxTemplate]{influx, spec} {
			for _, tm := range set.Select(nil, "x", all) {
				points, err := tm.Render(nil, v)
				if err != nil && len(points) != 0 {
					t.Fatalf("error %v with points %v", err, points)
				}
				for _, p := range points {
					if _, err := p.AppendLine(nil, time.Millisecond); err != nil {
						t.Fatalf("rendered point %+v does not encode: %v", p, err)
					}
				}
			}
		}
		for _, tm := range tsdb.Select(nil, "x", all) {
			points, err := tm.Render(nil, v)
			for _, p := range points {
				if err != nil || p.Metric == "" || p.Value == nil {
					t.Fatalf("bad data point %+v (%v)", p, err)
				}
			}
		}
		for _, tm := range ts.Select(nil, "x", all) {
			rows, err := tm.Render(nil, v)
			for _, r := range rows {
				if err != nil || len(r.Args) != len(tm.slots) {
					t.Fatalf("bad row %+v (%v)", r, err)
				}
			}
		}
	})
}
