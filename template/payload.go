package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Errors of payload templates; test with errors.Is.
var (
	// ErrInvalidTemplate: a template file was rejected by ParseInflux, ParseOpenTSDB or
	// ParseTimescale.
	ErrInvalidTemplate = errors.New("invalid payload template")
	// ErrPayloadNotJSON: a template has a $payload path and the payload is not JSON.
	ErrPayloadNotJSON = errors.New("payload is not JSON")
	// ErrNoValue: a $payload path leads nowhere (a missing key, an element past the end, a
	// key looked up in something that is not an object, $N or $0 in something that is not an
	// array).
	ErrNoValue = errors.New("no value at path")
	// ErrRowCount: two $0 paths of one template give different numbers of elements.
	ErrRowCount = errors.New("$0 paths give different element counts")
	// ErrValueType: a value cannot be used where the template puts it (a null or empty
	// measurement, a text OpenTSDB value, a timestamp that is not a number of TimeUnit...).
	ErrValueType = errors.New("value of the wrong type")
)

// Set is a parsed template file: its topic filters, in file order, each with its templates.
// It is immutable and safe for concurrent use.
type Set[T any] struct {
	entries []Entry[T]
}

// Entry is one key of a template file: a topic filter and its templates, in file order.
type Entry[T any] struct {
	Filter    string
	Templates []*T
}

// Entries returns the set's entries in file order, for callers that index the filters
// themselves (e.g. in a topic.Index).
func (s *Set[T]) Entries() []Entry[T] { return append([]Entry[T](nil), s.entries...) }

// Select appends to dst the templates of every entry whose filter matches topic, in file
// order, and returns the extended slice. match(filter, topic) is the caller's MQTT matcher
// (topic.Match).
func (s *Set[T]) Select(dst []*T, topic string, match func(filter, topic string) bool) []*T {
	for _, e := range s.entries {
		if match(e.Filter, topic) {
			dst = append(dst, e.Templates...)
		}
	}
	return dst
}

// parseSet parses a template file: a JSON object from topic filters to a template object or
// a non-empty list of them. parse makes one template; where names it in errors.
func parseSet[T any](data []byte, parse func(where string, obj gjson.Result) (*T, error)) (*Set[T], error) {
	if !gjson.ValidBytes(data) {
		var x any
		err := json.Unmarshal(data, &x)
		var se *json.SyntaxError
		switch {
		case errors.As(err, &se):
			err = fmt.Errorf("offset %d: %v", se.Offset, err)
		case err == nil:
			err = errors.New("not valid JSON")
		}
		return nil, fmt.Errorf("template: %w: %v", ErrInvalidTemplate, err)
	}
	root := gjson.ParseBytes(data)
	if !root.IsObject() {
		return nil, fmt.Errorf("template: %w: the file must be a JSON object from topic filters to templates", ErrInvalidTemplate)
	}
	s := &Set[T]{}
	seen := map[string]bool{}
	var err error
	root.ForEach(func(key, value gjson.Result) bool {
		filter := key.String()
		where := strconv.Quote(filter)
		if seen[filter] {
			err = invalid(where, "", "topic filter given twice")
			return false
		}
		seen[filter] = true
		if msg := checkFilter(filter); msg != "" {
			err = invalid(where, "", msg)
			return false
		}
		e := Entry[T]{Filter: filter}
		switch {
		case value.IsObject():
			var t *T
			if t, err = parse(where, value); err != nil {
				return false
			}
			e.Templates = append(e.Templates, t)
		case value.IsArray() && len(value.Array()) > 0:
			for i, obj := range value.Array() {
				w := where + "[" + strconv.Itoa(i) + "]"
				if !obj.IsObject() {
					err = invalid(w, "", "a template must be a JSON object")
					return false
				}
				var t *T
				if t, err = parse(w, obj); err != nil {
					return false
				}
				e.Templates = append(e.Templates, t)
			}
		default:
			err = invalid(where, "", "the value must be a template object or a non-empty list of them")
			return false
		}
		s.entries = append(s.entries, e)
		return true
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func invalid(where, slot, msg string) error {
	if slot != "" {
		where += " " + slot
	}
	return fmt.Errorf("template %s: %w: %s", where, ErrInvalidTemplate, msg)
}

// checkFilter returns why f is not an MQTT topic filter, or "".
func checkFilter(f string) string {
	switch {
	case f == "":
		return "empty topic filter"
	case len(f) > 65535:
		return "topic filter longer than 65535 bytes"
	case !utf8.ValidString(f):
		return "topic filter is not valid UTF-8"
	case strings.IndexByte(f, 0) >= 0:
		return "topic filter holds a NUL character"
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if l == "#" && i != len(levels)-1 {
			return "# must be the last level of a topic filter"
		}
		if len(l) > 1 && strings.ContainsAny(l, "+#") {
			return "a wildcard (+ or #) must be a whole level of a topic filter"
		}
	}
	return ""
}

// members returns obj's keys and values, rejecting keys not in allowed and repeated keys.
func members(where string, obj gjson.Result, allowed ...string) (map[string]gjson.Result, error) {
	m := map[string]gjson.Result{}
	var err error
	obj.ForEach(func(k, v gjson.Result) bool {
		key := k.String()
		switch {
		case m[key].Exists():
			err = invalid(where, key, "key given twice")
		case len(allowed) > 0 && !contains(allowed, key):
			err = invalid(where, key, "unknown key; the keys are "+strings.Join(allowed, ", "))
		default:
			m[key] = v
			return true
		}
		return false
	})
	return m, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// source is a message field a placeholder stands for.
type source uint8

const (
	srcID source = iota + 1
	srcClientID
	srcUsername
	srcPeerhost
	srcQoS
	srcTopic
	srcPayload
	srcTimestamp
)

var sourceNames = map[string]source{
	"$id": srcID, "$clientid": srcClientID, "$username": srcUsername, "$peerhost": srcPeerhost,
	"$qos": srcQoS, "$topic": srcTopic, "$payload": srcPayload, "$timestamp": srcTimestamp,
}

// value says where a value of a template comes from: a constant, a placeholder, or a path
// into the JSON payload.
type value struct {
	text   string // as written in the template (raw JSON), for errors
	konst  datum  // when src == 0 and path == nil
	src    source
	path   []step // a $payload path, the "$payload" left out
	each   int    // index in path of $0, or -1
	isPath bool
}

// step is one element of a $payload path: an object key, $N (index, 1-based) or $0.
type step struct {
	key   string
	esc   string // key as a gjson path component, or the 0-based index of $N
	index int
	each  bool
}

func (s step) String() string {
	switch {
	case s.each:
		return "$0"
	case s.index > 0:
		return "$" + strconv.Itoa(s.index)
	}
	return strconv.Quote(s.key)
}

// parseValue parses a template value: a constant (a string starting "$$" stands for the
// string with one '$' less), a placeholder like "$clientid", or a path like
// ["$payload", "data", "$0", "temp"].
func parseValue(where, slot string, r gjson.Result) (value, error) {
	v := value{text: r.Raw, each: -1}
	switch {
	case r.Type == gjson.String && strings.HasPrefix(r.Str, "$$"):
		v.konst = datum{kind: dString, s: r.Str[1:]}
	case r.Type == gjson.String && strings.HasPrefix(r.Str, "$"):
		src, ok := sourceNames[r.Str]
		if !ok {
			return v, invalid(where, slot, "unknown placeholder "+strconv.Quote(r.Str)+
				" (the placeholders are $id, $clientid, $username, $peerhost, $qos, $topic, $payload, $timestamp; $N only inside a $payload path; write $$ for a literal $)")
		}
		v.src = src
	case r.IsArray():
		return parsePath(where, slot, r)
	case r.IsObject():
		return v, invalid(where, slot, "a value must be a constant, a placeholder or a $payload path, not an object")
	default:
		v.konst = fromJSON(r)
	}
	return v, nil
}

func parsePath(where, slot string, r gjson.Result) (value, error) {
	v := value{text: r.Raw, each: -1, isPath: true}
	elems := r.Array()
	if len(elems) == 0 || elems[0].Type != gjson.String || elems[0].Str != "$payload" {
		return v, invalid(where, slot, "a path must start with \"$payload\", e.g. [\"$payload\", \"data\", \"$0\", \"temp\"]")
	}
	for _, e := range elems[1:] {
		if e.Type != gjson.String {
			return v, invalid(where, slot, "path element "+e.Raw+" is not a string (write array positions as \"$1\", \"$2\"...)")
		}
		s := e.Str
		switch {
		case strings.HasPrefix(s, "$$"):
			v.path = append(v.path, keyStep(s[1:]))
		case strings.HasPrefix(s, "$"):
			n, err := strconv.Atoi(s[1:])
			if err != nil || n < 0 || s[1] == '+' || s[1] == '-' {
				return v, invalid(where, slot, "path element "+strconv.Quote(s)+" is neither a key nor $N (write $$ for a key starting with $)")
			}
			if n == 0 {
				if v.each >= 0 {
					return v, invalid(where, slot, "a path may hold $0 only once")
				}
				v.each = len(v.path)
				v.path = append(v.path, step{each: true})
			} else {
				v.path = append(v.path, step{index: n, esc: strconv.Itoa(n - 1)})
			}
		default:
			v.path = append(v.path, keyStep(s))
		}
	}
	return v, nil
}

func keyStep(key string) step { return step{key: key, esc: gjson.Escape(key)} }

// walk follows steps from r. It returns the value reached, or why there is none.
func walk(r gjson.Result, steps []step) (gjson.Result, string) {
	for _, s := range steps {
		switch {
		case s.index > 0:
			if !r.IsArray() {
				return r, "$" + strconv.Itoa(s.index) + " applied to something that is not an array"
			}
			if r = r.Get(s.esc); !r.Exists() {
				return r, "the array has no element $" + strconv.Itoa(s.index)
			}
		default:
			if !r.IsObject() {
				return r, "key " + strconv.Quote(s.key) + " looked up in something that is not an object"
			}
			found := false
			if s.esc != "" {
				r = r.Get(s.esc)
				found = r.Exists()
			} else { // gjson has no path for the empty key
				r.ForEach(func(k, v gjson.Result) bool {
					if k.Str == "" {
						r, found = v, true
					}
					return !found
				})
			}
			if !found {
				return r, "no key " + strconv.Quote(s.key)
			}
		}
	}
	return r, ""
}

// slot is a value of a template with the name errors give it, e.g. "fields.temperature".
type slot struct {
	name string
	val  *value
}

// evaluate resolves the slots of a template against v and calls emit once per output row
// with the value of each slot: one row, or one row per element of the $0 paths.
func evaluate(where string, slots []slot, v *Values, emit func(row []datum) error) error {
	row := make([]datum, len(slots))
	var lists [][]datum
	var doc gjson.Result
	haveDoc := false
	rows, first := -1, -1
	for i, s := range slots {
		val := s.val
		switch {
		case val.src != 0:
			row[i] = sourceDatum(val.src, v)
		case !val.isPath:
			row[i] = val.konst
		default:
			if !haveDoc {
				if !gjson.ValidBytes(v.Payload) {
					return fmt.Errorf("template %s %s %s: %w", where, s.name, val.text, ErrPayloadNotJSON)
				}
				doc, haveDoc = gjson.ParseBytes(v.Payload), true
			}
			noValue := func(why string) error {
				return fmt.Errorf("template %s %s %s: %w: %s", where, s.name, val.text, ErrNoValue, why)
			}
			if val.each < 0 {
				r, why := walk(doc, val.path)
				if why != "" {
					return noValue(why)
				}
				row[i] = fromJSON(r)
				continue
			}
			arr, why := walk(doc, val.path[:val.each])
			if why != "" {
				return noValue(why)
			}
			if !arr.IsArray() {
				return noValue("$0 applied to something that is not an array")
			}
			var list []datum
			if rows > 0 {
				list = make([]datum, 0, rows)
			}
			arr.ForEach(func(_, e gjson.Result) bool {
				if r, w := walk(e, val.path[val.each+1:]); w != "" {
					why = "element " + strconv.Itoa(len(list)+1) + ": " + w
				} else {
					list = append(list, fromJSON(r))
				}
				return why == ""
			})
			if why != "" {
				return noValue(why)
			}
			if rows < 0 {
				rows, first = len(list), i
				lists = make([][]datum, len(slots))
			} else if len(list) != rows {
				return fmt.Errorf("template %s: %w: %s %s has %d, %s %s has %d", where, ErrRowCount,
					slots[first].name, slots[first].val.text, rows, s.name, val.text, len(list))
			}
			lists[i] = list
		}
	}
	if rows < 0 {
		return emit(row)
	}
	for r := 0; r < rows; r++ {
		for i, l := range lists {
			if l != nil {
				row[i] = l[r]
			}
		}
		if err := emit(row); err != nil {
			return fmt.Errorf("%w (element %d of the $0 paths)", err, r+1)
		}
	}
	return nil
}

// datum is a value taken from a message: JSON-typed.
type datum struct {
	kind datumKind
	s    string  // dString: the string; dNumber: the JSON literal; dJSON: raw JSON
	f    float64 // dNumber
	i    int64   // dInt
	b    bool    // dBool
}

type datumKind uint8

const (
	dNull   datumKind = iota
	dString           // a JSON string, or a text placeholder
	dNumber           // a JSON number
	dInt              // $qos, $timestamp (milliseconds)
	dBool
	dJSON // a JSON object or array
)

func fromJSON(r gjson.Result) datum {
	switch r.Type {
	case gjson.String:
		return datum{kind: dString, s: r.Str}
	case gjson.Number:
		return datum{kind: dNumber, s: r.Raw, f: r.Num}
	case gjson.True, gjson.False:
		return datum{kind: dBool, b: r.Type == gjson.True}
	case gjson.JSON:
		return datum{kind: dJSON, s: r.Raw}
	}
	return datum{}
}

func sourceDatum(src source, v *Values) datum {
	var s string
	switch src {
	case srcQoS:
		return datum{kind: dInt, i: int64(v.QoS)}
	case srcTimestamp:
		return datum{kind: dInt, i: v.millis()}
	case srcPayload:
		s = string(v.Payload)
	case srcID:
		s = v.MsgID
	case srcClientID:
		s = v.ClientID
	case srcUsername:
		s = v.Username
	case srcPeerhost:
		s = v.Peerhost
	case srcTopic:
		s = v.Topic
	}
	return datum{kind: dString, s: s}
}

func (d datum) describe() string {
	switch d.kind {
	case dNull:
		return "null"
	case dString:
		return strconv.Quote(d.s)
	case dInt:
		return strconv.FormatInt(d.i, 10)
	case dBool:
		return strconv.FormatBool(d.b)
	}
	return d.s
}

// text is d as a string (a tag value, a measurement, a string field); ok is false for null.
// Numbers keep their JSON spelling.
func (d datum) text() (s string, ok bool) {
	switch d.kind {
	case dNull:
		return "", false
	case dInt:
		return strconv.FormatInt(d.i, 10), true
	case dBool:
		return strconv.FormatBool(d.b), true
	}
	return d.s, true
}

// number is d as an OpenTSDB value or SQL argument: int64 when it is an integer that fits,
// float64 otherwise. Text is parsed; ok is false for what is not a finite number.
func (d datum) number() (n any, ok bool) {
	switch d.kind {
	case dInt:
		return d.i, true
	case dNumber, dString:
		if isInteger(d.s) {
			if i, err := strconv.ParseInt(d.s, 10, 64); err == nil {
				return i, true
			}
		}
		f, err := strconv.ParseFloat(d.s, 64)
		if d.kind == dNumber {
			f, err = d.f, nil
		}
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, false
		}
		return f, true
	}
	return nil, false
}

// isInteger reports whether s looks like a decimal integer (so that number does not make
// strconv build an error for every 21.3).
func isInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// arg is d as a SQL argument: nil, string, int64, float64 or bool; JSON objects and arrays
// as their JSON text.
func (d datum) arg() any {
	switch d.kind {
	case dNull:
		return nil
	case dNumber, dInt:
		if n, ok := d.number(); ok {
			return n
		}
		return d.f // ±Inf from an out-of-range literal
	case dBool:
		return d.b
	}
	return d.s
}

// timestamp is d as a point's time: an integer count of unit, integer text, or RFC 3339
// text. ok is false for null (no timestamp).
func (d datum) timestamp(unit time.Duration) (t time.Time, ok bool, err error) {
	if d.kind == dNull {
		return time.Time{}, false, nil
	}
	if d.kind == dString {
		if t, perr := time.Parse(time.RFC3339Nano, d.s); perr == nil {
			return t, true, nil
		}
	}
	n, isNum := d.number()
	if !isNum {
		return t, false, errors.New("timestamp " + d.describe() + " is neither a number nor RFC 3339 text")
	}
	var ns float64
	switch n := n.(type) {
	case int64:
		if n <= math.MaxInt64/int64(unit) && n >= math.MinInt64/int64(unit) {
			return time.Unix(0, n*int64(unit)), true, nil
		}
		ns = math.Inf(1)
	case float64:
		ns = n * float64(unit)
	}
	if ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return t, false, errors.New("timestamp " + d.describe() + " is out of range for its unit " + unit.String())
	}
	return time.Unix(0, int64(ns)), true, nil
}

// renderTime is the timestamp of a point: $timestamp is the message time itself; any other
// value is converted with unit.
func renderTime(val *value, d datum, v *Values, unit time.Duration) (time.Time, error) {
	if val == nil {
		return time.Time{}, nil
	}
	if val.src == srcTimestamp {
		return v.TS, nil
	}
	t, _, err := d.timestamp(unit)
	return t, err
}

func timeUnit(u time.Duration) (time.Duration, error) {
	switch {
	case u == 0:
		return time.Millisecond, nil
	case u < 0:
		return 0, fmt.Errorf("template: %w: negative TimeUnit %v", ErrInvalidTemplate, u)
	}
	return u, nil
}
