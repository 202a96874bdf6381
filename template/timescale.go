package template

import (
	"strconv"

	"github.com/tidwall/gjson"
)

// TimescaleTemplate turns a message into SQL statements for TimescaleDB (PostgreSQL): the
// spec's {"name", "sql", "param_keys"}. It is immutable and safe for concurrent use.
type TimescaleTemplate struct {
	name  string
	sql   string
	where string
	slots []slot // param_keys
}

// TimescaleInsert is a statement to execute: the template's SQL, with $1..$n bound to Args.
type TimescaleInsert struct {
	Name string // the template's name
	SQL  string
	// Args has one argument per param_keys entry, in order: string, int64 or float64 (JSON
	// numbers: int64 when integral), bool, nil (JSON null), or the JSON text of an object
	// or array. $payload is the payload as a string, $qos an int64, $timestamp an int64 of
	// milliseconds since the Unix epoch.
	Args []any
}

// ParseTimescale parses a Timescale template file (emqx_backend_timescale.tmpl): a JSON
// object from topic filters to templates, or to lists of templates, each
//
//	{"name": "unique name", "sql": "insert into t(a, b) values ($1, $2)", "param_keys": [V, V]}
//
// all required. param_keys[0] is bound to $1, and so on: the statement must use exactly
// $1..$n for n param_keys, and names must be unique in the file.
func ParseTimescale(data []byte) (*Set[TimescaleTemplate], error) {
	names := map[string]bool{}
	return parseSet(data, func(where string, obj gjson.Result) (*TimescaleTemplate, error) {
		m, err := members(where, obj, "name", "sql", "param_keys")
		if err != nil {
			return nil, err
		}
		for _, k := range []string{"name", "sql"} {
			if m[k].Type != gjson.String || m[k].Str == "" {
				return nil, invalid(where, k, "is required, a non-empty string")
			}
		}
		t := &TimescaleTemplate{name: m["name"].Str, sql: m["sql"].Str, where: where + " (" + strconv.Quote(m["name"].Str) + ")"}
		if names[t.name] {
			return nil, invalid(where, "name", strconv.Quote(t.name)+" is the name of another template")
		}
		names[t.name] = true
		keys := m["param_keys"]
		if !keys.IsArray() {
			return nil, invalid(where, "param_keys", "is required, an array")
		}
		for i, k := range keys.Array() {
			name := "param_keys[" + strconv.Itoa(i) + "]"
			v, err := parseValue(where, name, k)
			if err != nil {
				return nil, err
			}
			t.slots = append(t.slots, slot{name: name, val: &v})
		}
		if msg := checkParams(t.sql, len(t.slots)); msg != "" {
			return nil, invalid(where, "sql", msg)
		}
		return t, nil
	})
}

// checkParams returns why sql does not use exactly $1..$n, or "".
func checkParams(sql string, n int) string {
	l := sqlLexer{d: PostgreSQL, src: sql, items: rawItems(sql), raw: true}
	if err := l.run(); err != nil {
		se := err.(*SyntaxError)
		return "offset " + strconv.Itoa(se.Offset) + ": " + se.Reason
	}
	used := map[int]bool{}
	for _, digits := range l.params {
		p, err := strconv.Atoi(digits)
		if err != nil || p < 1 || p > n {
			return "the statement's $" + digits + " has no param_keys entry (there are " + strconv.Itoa(n) + ")"
		}
		used[p] = true
	}
	for p := 1; p <= n; p++ {
		if !used[p] {
			return "param_keys[" + strconv.Itoa(p-1) + "] is not used: the statement has no $" + strconv.Itoa(p)
		}
	}
	return ""
}

// Name returns the template's name.
func (t *TimescaleTemplate) Name() string { return t.name }

// SQL returns the template's statement.
func (t *TimescaleTemplate) SQL() string { return t.sql }

// Render appends to dst the statements t makes of the message v and returns the extended
// slice: one, or one per element of the $0 paths (none for empty arrays). On error dst is
// returned unchanged.
func (t *TimescaleTemplate) Render(dst []TimescaleInsert, v *Values) ([]TimescaleInsert, error) {
	n := len(dst)
	err := evaluate(t.where, t.slots, v, func(row []datum) error {
		args := make([]any, len(row))
		for i, d := range row {
			args[i] = d.arg()
		}
		dst = append(dst, TimescaleInsert{Name: t.name, SQL: t.sql, Args: args})
		return nil
	})
	if err != nil {
		return dst[:n], err
	}
	return dst, nil
}
