package template

import (
	"fmt"
	"time"

	"github.com/tidwall/gjson"
)

// OpenTSDBOptions configure ParseOpenTSDB. The zero value is the default.
type OpenTSDBOptions struct {
	// TimeUnit is the unit of a numeric timestamp taken from the payload or a constant.
	// Zero means time.Millisecond.
	TimeUnit time.Duration
}

// OpenTSDBTemplate turns a message into OpenTSDB data points: the spec's
// {"measurement", "tags", "value", "timestamp"}. It is immutable and safe for concurrent use.
type OpenTSDBTemplate struct {
	where   string
	slots   []slot // measurement, value, tags..., timestamp
	tagKeys []string
	hasTime bool
	unit    time.Duration
}

// DataPoint is an OpenTSDB data point.
type DataPoint struct {
	Metric string
	Tags   []Tag     // sorted by key
	Value  any       // int64 or float64
	Time   time.Time // the zero time: none, the writer stamps it
}

// ParseOpenTSDB parses an OpenTSDB template file (emqx_backend_opentsdb.tmpl): a JSON
// object from topic filters to templates, or to lists of templates, each
//
//	{"measurement": V, "tags": {"key": V, ...}, "value": V, "timestamp": V}
//
// where measurement and value are required.
func ParseOpenTSDB(data []byte, opts OpenTSDBOptions) (*Set[OpenTSDBTemplate], error) {
	unit, err := timeUnit(opts.TimeUnit)
	if err != nil {
		return nil, err
	}
	return parseSet(data, func(where string, obj gjson.Result) (*OpenTSDBTemplate, error) {
		m, err := members(where, obj, "measurement", "tags", "value", "timestamp")
		if err != nil {
			return nil, err
		}
		// The same slots as an InfluxTemplate, with the value as its one field.
		it := &InfluxTemplate{where: where}
		for _, k := range []string{"measurement", "value"} {
			if !m[k].Exists() {
				return nil, invalid(where, "", k+" is required")
			}
			if err := it.add(where, k, m[k]); err != nil {
				return nil, err
			}
		}
		n, err := it.addMap(where, "tags", m["tags"], false)
		if err != nil {
			return nil, err
		}
		t := &OpenTSDBTemplate{where: where, unit: unit}
		for _, s := range it.slots[2 : 2+n] {
			t.tagKeys = append(t.tagKeys, s.name[len("tags."):])
		}
		if ts := m["timestamp"]; ts.Exists() {
			t.hasTime = true
			if err := it.add(where, "timestamp", ts); err != nil {
				return nil, err
			}
		}
		t.slots = it.slots
		return t, nil
	})
}

// Render appends to dst the data points t makes of the message v and returns the extended
// slice: one point, or one per element of the $0 paths (none for empty arrays). The value
// must be a number, or text holding one; tags whose value is null or empty are left out.
// On error dst is returned unchanged.
func (t *OpenTSDBTemplate) Render(dst []DataPoint, v *Values) ([]DataPoint, error) {
	n := len(dst)
	err := evaluate(t.where, t.slots, v, func(row []datum) error {
		var p DataPoint
		var ok bool
		if p.Metric, _ = row[0].text(); p.Metric == "" || hasLineBreak(p.Metric) {
			return fmt.Errorf("template %s: %w: the measurement is empty, null or holds a line break", t.where, ErrValueType)
		}
		if p.Value, ok = row[1].number(); !ok {
			return fmt.Errorf("template %s value %s: %w: %s is not a finite number", t.where, t.slots[1].val.text, ErrValueType, row[1].describe())
		}
		if len(t.tagKeys) > 0 {
			p.Tags = make([]Tag, 0, len(t.tagKeys))
		}
		for i, k := range t.tagKeys {
			if val, ok := row[2+i].text(); ok && val != "" {
				p.Tags = append(p.Tags, Tag{Key: k, Value: val})
			}
		}
		if t.hasTime {
			last := len(t.slots) - 1
			var err error
			if p.Time, err = renderTime(t.slots[last].val, row[last], v, t.unit); err != nil {
				return fmt.Errorf("template %s: %w: %v", t.where, ErrValueType, err)
			}
		}
		dst = append(dst, p)
		return nil
	})
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}
