package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ParseRuleKey splits an EMQX rule key, "backend.<store>.hook.<point>.<n>" (e.g.
// "backend.pgsql.hook.message.publish.1"), into the store name and the point. n must be a
// decimal number; it only tells rules apart. Errors are *RuleError wrapping ErrRuleKey or
// ErrUnknownPoint.
func ParseRuleKey(key string) (store string, p Point, err error) {
	fail := func(err error) (string, Point, error) { return "", 0, &RuleError{Rule: key, Err: err} }
	rest, ok := strings.CutPrefix(key, "backend.")
	if ok {
		store, rest, ok = strings.Cut(rest, ".")
	}
	if ok {
		rest, ok = strings.CutPrefix(rest, "hook.")
	}
	i := strings.LastIndexByte(rest, '.')
	if !ok || store == "" || i < 0 || !isDigits(rest[i+1:]) {
		return fail(fmt.Errorf("%w: want backend.<store>.hook.<point>.<n>", ErrRuleKey))
	}
	if p, err = ParsePoint(rest[:i]); err != nil {
		return fail(fmt.Errorf("%w %q", ErrUnknownPoint, rest[:i]))
	}
	return store, p, nil
}

func isDigits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// ParseRule parses the value of an EMQX rule for point p, exactly as EMQX 4.x writes it:
//
//	{"topic": "queue/#", "action": {"function": "on_message_fetch_for_queue"}, "pool": "pool1"}
//	{"topic": "#", "action": {"sql": ["delete from mqtt_acked where clientid = ${clientid}"]}, "pool": "pool1"}
//	{"topic": "#", "action": {"function": "on_message_fetch"}, "offline_opts": {"max_returned_count": 500, "time_range": "2h"}, "pool": "pool1"}
//	{"topic": "#", "action": {"function": "on_message_publish"}, "expired_time" : 3600, "pool": "pool1"}
//
// The keys:
//   - "topic": a topic filter; absent or "" matches every event of the point.
//   - "action": an object with exactly one of "function" (a built-in function allowed at p),
//     "commands" (Redis), "sql" or "cql" (non-empty lists of non-empty statements). Statements
//     are kept as written: the store compiles them (package template) in its Prepare.
//   - "pool": a string.
//   - "offline_opts": "max_returned_count" (an integer >= 0; 0 means no limit) and "time_range"
//     (a duration string, or a number of seconds; see below). Other keys are errors.
//   - "expired_time": an integer number of seconds >= 0.
//   - any other key is kept raw in Rule.Options for the store (MongoDB's "payload_format").
//
// A time_range string is a Go duration ("2h", "90m", "1h30m", "1.5h") in which the EMQX units
// "d" (24h) and "w" (7d) are also accepted ("1d", "2w", "1d12h").
//
// Errors are *RuleError naming the rule (name) and the field, wrapping ErrSyntax (with the
// 1-based byte position and the text around it), ErrValue, ErrAction, ErrUnknownFunction,
// ErrFunctionPoint, ErrDuration, or the topic package's error for a bad filter. The returned rule has passed Rule.Validate.
func ParseRule(name string, p Point, value []byte) (Rule, error) {
	r := Rule{Name: name, Point: p}
	fail := func(field string, err error) (Rule, error) {
		return Rule{}, &RuleError{Rule: name, Field: field, Err: err}
	}
	var fields map[string]json.RawMessage
	if err := decodeObject(value, &fields); err != nil {
		return fail("", err)
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) { // sorted: the same error every time
		raw := fields[key]
		var err error
		switch key {
		case "topic":
			err = decodeValue(raw, &r.Topic)
		case "pool":
			err = decodeValue(raw, &r.Pool)
		case "action":
			var field string
			field, err = parseAction(raw, &r.Action)
			if err != nil {
				return fail("action"+field, err)
			}
		case "offline_opts":
			var field string
			field, err = parseOfflineOpts(raw, &r.OfflineOpts)
			if err != nil {
				return fail("offline_opts"+field, err)
			}
		case "expired_time":
			var secs int64
			if err = decodeValue(raw, &secs); err == nil {
				r.ExpiredTime, err = seconds(secs)
			}
		default:
			if r.Options == nil {
				r.Options = make(map[string]json.RawMessage)
			}
			r.Options[key] = raw
		}
		if err != nil {
			return fail(key, err)
		}
	}
	if _, ok := fields["action"]; !ok {
		return fail("action", fmt.Errorf("%w: missing", ErrAction))
	}
	if err := r.Validate(); err != nil {
		return Rule{}, err
	}
	return r, nil
}

// parseAction decodes the "action" object; field is the failing key, as ".function".
func parseAction(raw json.RawMessage, a *RuleAction) (field string, err error) {
	var fields map[string]json.RawMessage
	if err := decodeObject(raw, &fields); err != nil {
		return "", err
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[key]
		switch key {
		case "function":
			err = decodeValue(raw, &a.Function)
			if err == nil && a.Function == "" {
				err = fmt.Errorf("%w: empty function name", ErrAction)
			}
		case "commands":
			err = decodeValue(raw, &a.Commands)
		case "sql":
			err = decodeValue(raw, &a.SQL)
		case "cql":
			err = decodeValue(raw, &a.CQL)
		default:
			err = fmt.Errorf(`%w: unknown key (want one of "function", "commands", "sql", "cql")`, ErrAction)
		}
		if err != nil {
			return "." + key, err
		}
	}
	return "", nil
}

func parseOfflineOpts(raw json.RawMessage, o *OfflineOpts) (field string, err error) {
	var fields map[string]json.RawMessage
	if err := decodeObject(raw, &fields); err != nil {
		return "", err
	}
	for _, key := range slices.Sorted(maps.Keys(fields)) {
		raw := fields[key]
		switch key {
		case "max_returned_count":
			err = decodeValue(raw, &o.MaxReturnedCount)
		case "time_range":
			o.TimeRange, err = parseTimeRange(raw)
		default:
			err = fmt.Errorf(`%w: unknown key (want "max_returned_count" or "time_range")`, ErrValue)
		}
		if err != nil {
			return "." + key, err
		}
	}
	return "", nil
}

func parseTimeRange(raw json.RawMessage) (time.Duration, error) {
	var secs int64
	if decodeValue(raw, &secs) == nil {
		return seconds(secs)
	}
	var s string
	if err := decodeValue(raw, &s); err != nil {
		return 0, fmt.Errorf("%w: want a duration string like \"2h\" or a number of seconds", ErrDuration)
	}
	return ParseDuration(s)
}

// ParseDuration parses a duration as written in EMQX configuration: a Go duration ("2h",
// "90m", "1h30m", "1.5h", "500ms") in which the units "d" (24h) and "w" (7 days) are also
// accepted ("1d", "2w", "1d12h"). Negative durations are rejected. Errors wrap ErrDuration.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil && strings.ContainsAny(s, "dw") {
		d, err = parseDayDuration(s)
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("%w %q: %v", ErrDuration, s, strings.TrimPrefix(err.Error(), "time: "))
	case d < 0:
		return 0, fmt.Errorf("%w %q: negative", ErrDuration, s)
	}
	return d, nil
}

// parseDayDuration parses a sequence of <number><unit> where the unit may be "d" or "w".
func parseDayDuration(s string) (time.Duration, error) {
	var total time.Duration
	for rest := s; rest != ""; {
		numEnd := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
		if numEnd <= 0 {
			return 0, fmt.Errorf("expected a number at %q", rest)
		}
		unitEnd := strings.IndexFunc(rest[numEnd:], func(r rune) bool { return r >= '0' && r <= '9' || r == '.' })
		if unitEnd < 0 {
			unitEnd = len(rest)
		} else {
			unitEnd += numEnd
		}
		num, unit := rest[:numEnd], rest[numEnd:unitEnd]
		var d time.Duration
		switch unit {
		case "d", "w":
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid number %q", num)
			}
			f *= float64(24 * time.Hour)
			if unit == "w" {
				f *= 7
			}
			if f >= math.MaxInt64 {
				return 0, errors.New("out of range")
			}
			d = time.Duration(f)
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, err
			}
		}
		if total += d; total < d {
			return 0, errors.New("out of range")
		}
		rest = rest[unitEnd:]
	}
	return total, nil
}

func seconds(n int64) (time.Duration, error) {
	if n < 0 {
		return 0, fmt.Errorf("%w: negative: %d", ErrValue, n)
	}
	if n > math.MaxInt64/int64(time.Second) {
		return 0, fmt.Errorf("%w: too large: %d", ErrValue, n)
	}
	return time.Duration(n) * time.Second, nil
}

// decodeObject decodes a JSON object into *map; anything else is an error (for invalid JSON,
// wrapping ErrSyntax with the byte offset and the text there).
func decodeObject(data []byte, m *map[string]json.RawMessage) error {
	if err := decodeValue(data, m); err != nil {
		return err
	}
	if *m == nil {
		return fmt.Errorf("%w: want an object, got null", ErrValue)
	}
	return nil
}

// decodeValue decodes one JSON value into v, translating encoding/json's errors.
func decodeValue(data []byte, v any) error {
	err := json.Unmarshal(data, v)
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &syntax):
		return fmt.Errorf("%w at byte %d, near %s: %s", ErrSyntax, syntax.Offset, near(data, syntax.Offset), syntax)
	case errors.As(err, &typ):
		return fmt.Errorf("%w: want %s, got %s", ErrValue, typeName(typ.Type.String()), typ.Value)
	}
	return fmt.Errorf("%w: %v", ErrValue, err)
}

// near quotes the text around the byte at 1-based position pos (json.SyntaxError.Offset is
// just past the offending byte), for error messages.
func near(data []byte, pos int64) string {
	start := max(int(pos)-13, 0)
	end := min(int(pos)+12, len(data))
	start = min(start, end)
	return strconv.Quote(string(bytes.ToValidUTF8(data[start:end], []byte("?"))))
}

func typeName(goType string) string {
	switch goType {
	case "string":
		return "a string"
	case "[]string":
		return "a list of strings"
	case "int", "int64":
		return "an integer"
	case "map[string]json.RawMessage":
		return "an object"
	}
	return goType
}
