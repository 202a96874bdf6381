package template

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestAppendLine(t *testing.T) {
	ts := time.Unix(1700000000, 123456789)
	cases := []struct {
		p         Point
		precision time.Duration
		want      string
	}{
		{Point{Measurement: "m", Fields: []Field{{"f", 1.5}}}, 0, "m f=1.5\n"},
		{Point{Measurement: "m", Fields: []Field{{"i", int64(-3)}, {"b", false}, {"s", "x"}}, Time: ts}, 0,
			"m i=-3i,b=false,s=\"x\" 1700000000123456789\n"},
		{Point{Measurement: "m", Fields: []Field{{"f", 1e21}}, Time: ts}, time.Millisecond, "m f=1e+21 1700000000123\n"},
		{Point{Measurement: "m", Fields: []Field{{"f", 2.0}}, Time: ts}, time.Second, "m f=2 1700000000\n"},
		// Escaping: measurement , and space; keys and tag values , = and space; strings " and \.
		{Point{Measurement: "my meas,x=y", Tags: []Tag{{"k ey", "v,a=l ue"}}, Fields: []Field{{"f=1", "say \"hi\" C:\\"}}}, 0,
			`my\ meas\,x=y,k\ ey=v\,a\=l\ ue f\=1="say \"hi\" C:\\"` + "\n"},
		// A backslash that would escape the delimiter after it is doubled; others are kept.
		{Point{Measurement: `m\`, Tags: []Tag{{`k`, `a\b\`}, {`k2`, `a\\`}, {`k3`, `a\,`}}, Fields: []Field{{`f\`, 1.0}}}, 0,
			`m\\,k=a\b\\,k2=a\\,k3=a\\\, f\\=1` + "\n"},
		// A string field may span lines: InfluxDB reads quoted strings across them.
		{Point{Measurement: "m", Fields: []Field{{"s", "a\r\nb"}}}, 0, "m s=\"a\r\nb\"\n"},
		{Point{Measurement: "温度", Tags: []Tag{{"地点", "杭州"}}, Fields: []Field{{"值", int64(1)}}}, 0, "温度,地点=杭州 值=1i\n"},
	}
	for _, c := range cases {
		got, err := c.p.AppendLine([]byte("prev\n"), c.precision)
		if err != nil || string(got) != "prev\n"+c.want {
			t.Errorf("%+v:\n got %q, %v\nwant %q", c.p, got, err, "prev\n"+c.want)
		}
	}
}

func TestAppendLineRejects(t *testing.T) {
	for _, p := range []Point{
		{Fields: []Field{{"f", 1.0}}},
		{Measurement: "#m", Fields: []Field{{"f", 1.0}}},
		{Measurement: "m\n", Fields: []Field{{"f", 1.0}}},
		{Measurement: "m"},
		{Measurement: "m", Tags: []Tag{{"k", ""}}, Fields: []Field{{"f", 1.0}}},
		{Measurement: "m", Tags: []Tag{{"", "v"}}, Fields: []Field{{"f", 1.0}}},
		{Measurement: "m", Tags: []Tag{{"k", "a\nb"}}, Fields: []Field{{"f", 1.0}}},
		{Measurement: "m", Fields: []Field{{"", 1.0}}},
		{Measurement: "m", Fields: []Field{{"f", math.NaN()}}},
		{Measurement: "m", Fields: []Field{{"f", math.Inf(-1)}}},
		{Measurement: "m", Fields: []Field{{"f", 1}}}, // int, not int64
		{Measurement: "m", Fields: []Field{{"f", 1.0}}, Time: time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := p.AppendLine([]byte("x"), time.Nanosecond)
		if !errors.Is(err, ErrValueType) || string(got) != "x" {
			t.Errorf("%+v: %q, %v; want ErrValueType and dst unchanged", p, got, err)
		}
	}
	if _, err := (&Point{Measurement: "m", Fields: []Field{{"f", 1.0}}}).AppendLine(nil, -time.Second); err == nil {
		t.Error("negative precision accepted")
	}
}
