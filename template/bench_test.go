package template

import (
	"testing"
	"time"
)

var benchValues = Values{
	ClientID: "mqttjs_ebcc36079a", Username: "user", Peerhost: "10.0.0.1", Node: "emqx@127.0.0.1",
	Topic: "sensor/room1/temperature", MsgID: "0005F8F2B8E4A3C2F44A000026E40000", QoS: 1,
	Payload: []byte(`{"temp": 21.5}`), TS: time.UnixMilli(1560743513626),
}

// BenchmarkRender binds the values of compiled statements and commands.
func BenchmarkRender(b *testing.B) {
	type argser interface {
		Args(dst []any, v *Values) []any
	}
	cases := []struct {
		name    string
		compile func() (argser, error)
	}{
		// The spec's session.subscribed statement: three placeholders, two of them strings.
		{"SQL3", func() (argser, error) {
			return CompileStatement(PostgreSQL, "insert into mqtt_sub(clientid, topic, qos) values (${clientid}, ${topic}, ${qos})")
		}},
		// Three placeholders, all boxed: clientid, topic, payload.
		{"SQL3Payload", func() (argser, error) {
			return CompileStatement(MySQL, "insert into msg(sender, topic, payload) values (${clientid}, ${topic}, ${payload})")
		}},
		// The spec's example command: one concatenated key, two single placeholders.
		{"Redis", func() (argser, error) { return CompileRedis("HSET mqtt:sub:${clientid} ${topic} ${qos}") }},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			s, err := c.compile()
			if err != nil {
				b.Fatal(err)
			}
			args := make([]any, 0, 8)
			b.ReportAllocs()
			for b.Loop() {
				args = s.Args(args[:0], &benchValues)
			}
		})
	}
}

func BenchmarkCompileSQL(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileStatement(PostgreSQL, "insert into mqtt_sub(clientid, topic, qos) values (${clientid}, ${topic}, ${qos})"); err != nil {
			b.Fatal(err)
		}
	}
}

// The spec's InfluxDB example: two points from one payload, then encoded.
func BenchmarkInfluxRender(b *testing.B) {
	s, err := ParseInflux(readFile(b, "influxdb_example.tmpl"), InfluxOptions{})
	if err != nil {
		b.Fatal(err)
	}
	tm := s.Entries()[0].Templates[0]
	v := benchValues
	v.Topic, v.Payload = "sample", readFile(b, "sample_payload.json")
	points := make([]Point, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		if points, err = tm.Render(points[:0], &v); err != nil || len(points) != 2 {
			b.Fatal(points, err)
		}
	}
}

func BenchmarkInfluxAppendLine(b *testing.B) {
	s, err := ParseInflux(readFile(b, "influxdb_example.tmpl"), InfluxOptions{})
	if err != nil {
		b.Fatal(err)
	}
	v := benchValues
	v.Topic, v.Payload = "sample", readFile(b, "sample_payload.json")
	points, err := s.Entries()[0].Templates[0].Render(nil, &v)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf = buf[:0]
		for i := range points {
			buf, _ = points[i].AppendLine(buf, time.Millisecond)
		}
	}
}

// The spec's Timescale example: three inserts from one payload.
func BenchmarkTimescaleRender(b *testing.B) {
	s, err := ParseTimescale(readFile(b, "timescale_example.tmpl"))
	if err != nil {
		b.Fatal(err)
	}
	tm := s.Entries()[0].Templates[0]
	v := benchValues
	v.Topic, v.Payload = "sensor_data", readFile(b, "sensor_data_payload.json")
	rows := make([]TimescaleInsert, 0, 4)
	b.ReportAllocs()
	for b.Loop() {
		if rows, err = tm.Render(rows[:0], &v); err != nil || len(rows) != 3 {
			b.Fatal(rows, err)
		}
	}
}
