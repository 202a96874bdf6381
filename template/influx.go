package template

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"
)

// InfluxOptions configure ParseInflux. The zero value is the default.
type InfluxOptions struct {
	// TimeUnit is the unit of a numeric timestamp taken from the payload or a constant
	// (1560743513626 with time.Millisecond). Zero means time.Millisecond. Use the precision
	// the points are written with, so that such numbers reach InfluxDB unchanged, as EMQX
	// passed them.
	TimeUnit time.Duration
	// StringFields writes every field as a string field, as EMQX 4.x did (the spec's example
	// encodes temperature="1"). Set it to keep writing into measurements EMQX created; by
	// default fields keep their JSON type, which is what queries like mean() need.
	StringFields bool
}

// InfluxTemplate turns a message into InfluxDB points: the spec's
// {"measurement", "tags", "fields", "timestamp"}. It is immutable and safe for concurrent
// use.
type InfluxTemplate struct {
	where        string
	slots        []slot // measurement, tags, fields, timestamp
	nTags        int
	nFields      int
	hasTime      bool
	unit         time.Duration
	stringFields bool
}

// Point is an InfluxDB point.
type Point struct {
	Measurement string
	Tags        []Tag     // sorted by key
	Fields      []Field   // sorted by key; at least one
	Time        time.Time // the zero time: none, InfluxDB stamps the point on arrival
}

// Tag is a tag of a Point or DataPoint.
type Tag struct{ Key, Value string }

// Field is a field of a Point. Value is a float64, int64, string or bool.
type Field struct {
	Key   string
	Value any
}

// ParseInflux parses an InfluxDB template file (emqx_backend_influxdb.tmpl): a JSON object
// from topic filters to templates, or to lists of templates, each
//
//	{"measurement": V, "tags": {"key": V, ...}, "fields": {"key": V, ...}, "timestamp": V}
//
// where measurement and fields are required. Tags and fields are put in key order.
func ParseInflux(data []byte, opts InfluxOptions) (*Set[InfluxTemplate], error) {
	unit, err := timeUnit(opts.TimeUnit)
	if err != nil {
		return nil, err
	}
	return parseSet(data, func(where string, obj gjson.Result) (*InfluxTemplate, error) {
		m, err := members(where, obj, "measurement", "tags", "fields", "timestamp")
		if err != nil {
			return nil, err
		}
		t := &InfluxTemplate{where: where, unit: unit, stringFields: opts.StringFields}
		if !m["measurement"].Exists() {
			return nil, invalid(where, "", "measurement is required")
		}
		if err := t.add(where, "measurement", m["measurement"]); err != nil {
			return nil, err
		}
		if t.nTags, err = t.addMap(where, "tags", m["tags"], false); err != nil {
			return nil, err
		}
		if t.nFields, err = t.addMap(where, "fields", m["fields"], true); err != nil {
			return nil, err
		}
		if ts := m["timestamp"]; ts.Exists() {
			t.hasTime = true
			if err := t.add(where, "timestamp", ts); err != nil {
				return nil, err
			}
		}
		return t, nil
	})
}

func (t *InfluxTemplate) add(where, name string, r gjson.Result) error {
	v, err := parseValue(where, name, r)
	if err != nil {
		return err
	}
	t.slots = append(t.slots, slot{name: name, val: &v})
	return nil
}

// addMap adds the values of the tags or fields object in key order and returns how many.
func (t *InfluxTemplate) addMap(where, name string, r gjson.Result, required bool) (int, error) {
	if !r.Exists() {
		if required {
			return 0, invalid(where, "", name+" is required")
		}
		return 0, nil
	}
	if !r.IsObject() {
		return 0, invalid(where, name, "must be an object")
	}
	m, err := members(where+" "+name, r)
	if err != nil {
		return 0, err
	}
	if required && len(m) == 0 {
		return 0, invalid(where, name, "must hold at least one field")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		if k == "" || strings.ContainsAny(k, "\n\r") {
			return 0, invalid(where, name, "key "+strconv.Quote(k)+" is empty or holds a line break")
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := t.add(where, name+"."+k, m[k]); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// Render appends to dst the points t makes of the message v and returns the extended slice:
// one point, or one per element of the $0 paths (none for empty arrays). Tags whose value is
// null or empty, and fields whose value is null, are left out (that is how InfluxDB stores
// no value); a point left with no field is an error. On error dst is returned unchanged.
func (t *InfluxTemplate) Render(dst []Point, v *Values) ([]Point, error) {
	n := len(dst)
	err := evaluate(t.where, t.slots, v, func(row []datum) error {
		p, err := t.point(row, v)
		if err != nil {
			return fmt.Errorf("template %s: %w", t.where, err)
		}
		dst = append(dst, p)
		return nil
	})
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}

func (t *InfluxTemplate) point(row []datum, v *Values) (Point, error) {
	var p Point
	p.Measurement, _ = row[0].text()
	tags, fields := t.slots[1:1+t.nTags], t.slots[1+t.nTags:1+t.nTags+t.nFields]
	if t.nTags > 0 {
		p.Tags = make([]Tag, 0, t.nTags)
	}
	for i, s := range tags {
		if val, ok := row[1+i].text(); ok && val != "" {
			p.Tags = append(p.Tags, Tag{Key: s.name[len("tags."):], Value: val})
		}
	}
	p.Fields = make([]Field, 0, t.nFields)
	for i, s := range fields {
		d := row[1+t.nTags+i]
		var val any
		switch {
		case d.kind == dNull:
			continue
		case t.stringFields:
			val, _ = d.text()
		case d.kind == dNumber:
			val = d.f // JSON numbers are floats: 20 and 20.5 must not make two field types
		case d.kind == dInt:
			val = d.i
		case d.kind == dBool:
			val = d.b
		default:
			val = d.s
		}
		p.Fields = append(p.Fields, Field{Key: s.name[len("fields."):], Value: val})
	}
	if t.hasTime {
		last := len(t.slots) - 1
		var err error
		if p.Time, err = renderTime(t.slots[last].val, row[last], v, t.unit); err != nil {
			return p, fmt.Errorf("%w: %v", ErrValueType, err)
		}
	}
	return p, p.check()
}

// check reports why p cannot be written in line protocol.
func (p *Point) check() error {
	bad := func(what string) error { return fmt.Errorf("%w: %s", ErrValueType, what) }
	switch {
	case p.Measurement == "":
		return bad("the measurement is empty or null")
	case p.Measurement[0] == '#':
		return bad("the measurement starts with # (line protocol would read the line as a comment)")
	case hasLineBreak(p.Measurement):
		return bad("the measurement holds a line break")
	case len(p.Fields) == 0:
		return bad("the point has no field (every field is null)")
	case !p.Time.IsZero() && !time.Unix(0, p.Time.UnixNano()).Equal(p.Time):
		return bad("the time " + p.Time.String() + " is outside the range of nanosecond timestamps")
	}
	for _, tg := range p.Tags {
		if tg.Key == "" || tg.Value == "" || hasLineBreak(tg.Key) || hasLineBreak(tg.Value) {
			return bad("tag " + strconv.Quote(tg.Key) + "=" + strconv.Quote(tg.Value) + " is empty or holds a line break")
		}
	}
	for _, f := range p.Fields {
		if f.Key == "" || hasLineBreak(f.Key) {
			return bad("field key " + strconv.Quote(f.Key) + " is empty or holds a line break")
		}
		switch x := f.Value.(type) {
		case float64:
			if math.IsInf(x, 0) || math.IsNaN(x) {
				return bad("field " + f.Key + " is not a finite number")
			}
		case string, int64, bool:
			// A string field may hold line breaks: InfluxDB reads a quoted string field
			// across lines (1.x's scanLine, 2.x's line protocol).
		default:
			return bad(fmt.Sprintf("field %s has type %T (want float64, int64, string or bool)", f.Key, f.Value))
		}
	}
	return nil
}

func hasLineBreak(s string) bool { return strings.ContainsAny(s, "\n\r") }

// AppendLine appends p to dst as one line of InfluxDB line protocol, newline included, with
// the timestamp in units of precision (time.Nanosecond when zero; InfluxDB accepts ns, µs,
// ms, s, m and h). Measurement, tag keys and values and field keys escape ',', ' ' (and '='
// but in the measurement) with a backslash; string field values escape '"' and '\'; integer
// fields carry the i suffix. A backslash that would escape a delimiter is doubled, which
// InfluxDB 1.x keeps as two backslashes: no line-protocol encoding reads back exactly there.
// Line breaks are written only inside string field values (InfluxDB reads a quoted string
// across lines); anywhere else they are refused, and an invalid point is an ErrValueType
// error.
func (p *Point) AppendLine(dst []byte, precision time.Duration) ([]byte, error) {
	if precision < 0 {
		return dst, errors.New("template: negative line protocol precision")
	}
	if precision == 0 {
		precision = time.Nanosecond
	}
	if err := p.check(); err != nil {
		return dst, err
	}
	dst = appendEscaped(dst, p.Measurement, false)
	for _, tg := range p.Tags {
		dst = append(dst, ',')
		dst = appendEscaped(dst, tg.Key, true)
		dst = append(dst, '=')
		dst = appendEscaped(dst, tg.Value, true)
	}
	for i, f := range p.Fields {
		if i == 0 {
			dst = append(dst, ' ')
		} else {
			dst = append(dst, ',')
		}
		dst = appendEscaped(dst, f.Key, true)
		dst = append(dst, '=')
		switch x := f.Value.(type) {
		case float64:
			dst = strconv.AppendFloat(dst, x, 'g', -1, 64)
		case int64:
			dst = append(strconv.AppendInt(dst, x, 10), 'i')
		case bool:
			dst = strconv.AppendBool(dst, x)
		case string:
			dst = append(dst, '"')
			for j := 0; j < len(x); j++ {
				if x[j] == '"' || x[j] == '\\' {
					dst = append(dst, '\\')
				}
				dst = append(dst, x[j])
			}
			dst = append(dst, '"')
		}
	}
	if !p.Time.IsZero() {
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, p.Time.UnixNano()/int64(precision), 10)
	}
	return append(dst, '\n'), nil
}

// appendEscaped appends s with a backslash before ',' and ' ', and before '=' when eq. A
// run of backslashes right before such a byte or the end of s is made even, so that the
// last one does not escape what follows.
func appendEscaped(dst []byte, s string, eq bool) []byte {
	special := func(c byte) bool { return c == ',' || c == ' ' || c == '=' && eq }
	i := 0
	for i < len(s) && !special(s[i]) && s[i] != '\\' {
		i++
	}
	dst = append(dst, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			j := i
			for j < len(s) && s[j] == '\\' {
				j++
			}
			dst = append(dst, s[i:j]...)
			if (j-i)%2 == 1 && (j == len(s) || special(s[j])) {
				dst = append(dst, '\\')
			}
			i = j - 1
			continue
		}
		if special(c) {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	return dst
}
