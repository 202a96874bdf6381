package template

import (
	"bytes"
	"database/sql/driver"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// hostile values: what a client controls, shaped to break out of a statement or command.
var hostile = Values{
	ClientID: "c'); DROP TABLE mqtt_msg; --",
	Username: "u\" OR \"1\"=\"1",
	Peerhost: "10.0.0.1 /* x */",
	Node:     "emqx@127.0.0.1\n\r\t",
	Topic:    "a b\nc $1 ? ${clientid} `x` [y]",
	MsgID:    "\x00\x01\xff\xfe",
	QoS:      2,
	Payload:  []byte("pay load\x00\xff\n'\";--"),
	TS:       time.UnixMilli(1560743513626),
}

func TestStatementDialects(t *testing.T) {
	src := "insert into mqtt_sub(clientid, topic, qos) values (${clientid}, ${topic}, ${qos})"
	for d, want := range map[Dialect]string{
		MySQL:      "insert into mqtt_sub(clientid, topic, qos) values (?, ?, ?)",
		SQLite:     "insert into mqtt_sub(clientid, topic, qos) values (?, ?, ?)",
		CQL:        "insert into mqtt_sub(clientid, topic, qos) values (?, ?, ?)",
		PostgreSQL: "insert into mqtt_sub(clientid, topic, qos) values ($1, $2, $3)",
	} {
		s, err := CompileStatement(d, src)
		if err != nil {
			t.Fatalf("%v: %v", d, err)
		}
		if s.Text() != want {
			t.Errorf("%v: Text() = %q, want %q", d, s.Text(), want)
		}
		if got := s.Vars(); !reflect.DeepEqual(got, []Var{VarClientID, VarTopic, VarQoS}) {
			t.Errorf("%v: Vars() = %v", d, got)
		}
	}
}

// Values of every kind end up in the arguments byte for byte, and never in the statement.
func TestStatementInjectionValuesOnlyInArgs(t *testing.T) {
	src := "insert into rec(clientid, username, peerhost, node, topic, msgid, qos, payload, ts) values " +
		"(${clientid}, ${username}, ${peerhost}, ${node}, ${topic}, ${msgid}, ${qos}, ${payload}, ${ts})"
	for _, d := range []Dialect{MySQL, PostgreSQL, SQLite, CQL} {
		s, err := CompileStatement(d, src)
		if err != nil {
			t.Fatal(err)
		}
		before := s.Text()
		args := s.Args(nil, &hostile)
		if s.Text() != before {
			t.Fatalf("%v: rendering changed the statement", d)
		}
		want := []any{hostile.ClientID, hostile.Username, hostile.Peerhost, hostile.Node, hostile.Topic,
			hostile.MsgID, int64(2), hostile.Payload, int64(1560743513626)}
		if !reflect.DeepEqual(args, want) {
			t.Fatalf("%v: args = %#v\nwant %#v", d, args, want)
		}
		for _, a := range args {
			if !driver.IsValue(a) {
				t.Errorf("%v: %T is not a database/sql driver value", d, a)
			}
			if s, ok := a.(string); ok && strings.Contains(before, s) {
				t.Errorf("%v: value %q appears in the statement", d, s)
			}
		}
	}
}

func TestArgsAppendsToDst(t *testing.T) {
	s, err := CompileStatement(MySQL, "delete from mqtt_acked where clientid = ${clientid} and topic = ${topic}")
	if err != nil {
		t.Fatal(err)
	}
	dst := []any{"keep"}
	got := s.Args(dst, &Values{ClientID: "c1", Topic: "t/1"})
	if !reflect.DeepEqual(got, []any{"keep", "c1", "t/1"}) {
		t.Fatalf("Args = %#v", got)
	}
	if s.NumArgs() != 2 {
		t.Fatalf("NumArgs = %d", s.NumArgs())
	}
}

func TestZeroValues(t *testing.T) {
	s, err := CompileStatement(PostgreSQL, "select ${payload}, ${ts}, ${qos}, ${node}")
	if err != nil {
		t.Fatal(err)
	}
	args := s.Args(nil, &Values{})
	if p, ok := args[0].([]byte); !ok || p == nil || len(p) != 0 {
		t.Errorf("empty payload = %#v, want a non-nil empty []byte (stored as empty, not NULL)", args[0])
	}
	if args[1] != int64(0) || args[2] != int64(0) || args[3] != "" {
		t.Errorf("zero values = %#v", args[1:])
	}
}

func TestStatementQuotingAndEscapes(t *testing.T) {
	ok := []struct {
		d        Dialect
		src      string
		want     string
		wantVars int
	}{
		{MySQL, "select 'it''s', ${clientid}", "select 'it''s', ?", 1},
		{MySQL, `select 'it\'s', ${clientid}`, `select 'it\'s', ?`, 1},
		{MySQL, `select "a\"b", ${clientid}`, `select "a\"b", ?`, 1},
		{MySQL, "select `we``ird`, ${clientid} # $${not a var\n", "select `we``ird`, ? # ${not a var\n", 1},
		{MySQL, "select 1--${qos}", "select 1--?", 1}, // "--" without a space is not a comment in MySQL
		{PostgreSQL, "select E'a\\'b', ${clientid}", "select E'a\\'b', $1", 1},
		{PostgreSQL, "select $$ $${nope $$, ${clientid}", "select $$ ${nope $$, $1", 1},
		{PostgreSQL, "select $fn$ it's $fn$, ${clientid}", "select $fn$ it's $fn$, $1", 1},
		{PostgreSQL, "select /* a /* nested */ $${x */ ${clientid}", "select /* a /* nested */ ${x */ $1", 1},
		{PostgreSQL, "select ${payload}::bytea, ${ts}/1000", "select $1::bytea, $2/1000", 2},
		{PostgreSQL, "select col$1 from t where a = ${topic}", "select col$1 from t where a = $1", 1},
		{PostgreSQL, "select data ? 'k' from t where a = ${topic}", "select data ? 'k' from t where a = $1", 1},
		{SQLite, "select [we ird], `x`, \"y\", ${topic}", "select [we ird], `x`, \"y\", ?", 1},
		{CQL, "select $$it's$$, ${topic} // $${x\n", "select $$it's$$, ? // ${x\n", 1},
		{MySQL, "select 1 -- ${x", "", -1}, // the ${var} layer comes first, even in comments
		{CQL, "insert into t(m) values ({'a': 1}) using ttl ${qos}", "insert into t(m) values ({'a': 1}) using ttl ?", 1},
		{MySQL, "select '$${clientid}', ${clientid}", "select '${clientid}', ?", 1},
		{MySQL, "select 1 -- ${x}", "select 1 -- ${x}", -1},
	}
	for _, c := range ok {
		s, err := CompileStatement(c.d, c.src)
		if c.wantVars < 0 {
			if err == nil {
				t.Errorf("%v %q: compiled, want an error", c.d, c.src)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v %q: %v", c.d, c.src, err)
			continue
		}
		if s.Text() != c.want || s.NumArgs() != c.wantVars {
			t.Errorf("%v %q: Text() = %q (%d args), want %q (%d)", c.d, c.src, s.Text(), s.NumArgs(), c.want, c.wantVars)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		d      Dialect
		src    string
		err    error
		offset int
		in     string // in the message
	}{
		{MySQL, "insert into t values(${clientId})", ErrUnknownVar, 21, "${clientid}"},
		{MySQL, "insert into t values(${message})", ErrUnknownVar, 21, "${payload}"},
		{MySQL, "insert into t values(${nope})", ErrUnknownVar, 21, "${clientid}, ${username}"},
		{MySQL, "insert into t values(${})", ErrUnknownVar, 21, "empty variable name"},
		{MySQL, "insert into t values(${clientid)", ErrUnterminated, 21, "not closed"},
		{MySQL, "insert into t values(${clientid", ErrUnterminated, 21, "not closed"},
		{MySQL, "insert into t values('${clientid}')", ErrQuotedPlaceholder, 22, "string literal"},
		{MySQL, `insert into t values("${clientid}")`, ErrQuotedPlaceholder, 22, "string literal"},
		{PostgreSQL, `insert into "${topic}" values(1)`, ErrQuotedPlaceholder, 13, "quoted identifier"},
		{MySQL, "insert into `${topic}` values(1)", ErrQuotedPlaceholder, 13, "quoted identifier"},
		{MySQL, `select 'a\'${topic}'`, ErrQuotedPlaceholder, 11, "string literal"},
		{MySQL, `select 'a\${topic}'`, ErrQuotedPlaceholder, 10, "string literal"},
		{PostgreSQL, `select 'a\'${topic}'`, ErrUnterminated, 19, "not closed"}, // standard strings: \ is literal
		{PostgreSQL, "select 'it''s ${topic}'", ErrQuotedPlaceholder, 14, "string literal"},
		{PostgreSQL, "select $x$ ${topic} $x$", ErrQuotedPlaceholder, 11, "dollar-quoted"},
		{CQL, "select $$ ${topic} $$", ErrQuotedPlaceholder, 10, "$$ string"},
		{SQLite, "select [${topic}]", ErrQuotedPlaceholder, 8, "quoted identifier"},
		{PostgreSQL, "select 1 -- ${topic}", ErrQuotedPlaceholder, 12, "comment"},
		{MySQL, "select 1 # ${topic}", ErrQuotedPlaceholder, 11, "comment"},
		{CQL, "select 1 // ${topic}", ErrQuotedPlaceholder, 12, "comment"},
		{MySQL, "select 1 /* ${topic} */", ErrQuotedPlaceholder, 12, "comment"},
		{PostgreSQL, "select /* /* */ ${topic} */", ErrQuotedPlaceholder, 16, "comment"},
		{MySQL, "select 'abc", ErrUnterminated, 7, "not closed"},
		{MySQL, "select 1 /* abc", ErrUnterminated, 9, "not closed"},
		{MySQL, "select * from t_${clientid}", ErrMisplacedPlaceholder, 16, "joined"},
		{PostgreSQL, "select ${qos}1", ErrMisplacedPlaceholder, 7, "joined"},
		{MySQL, "select ${qos}${ts}", ErrMisplacedPlaceholder, 13, "next to each other"},
		{MySQL, "select ? , ${qos}", ErrBindMarker, 7, "?"},
		{SQLite, "select :name, ${qos}", ErrBindMarker, 7, "named"},
		{SQLite, "select @name, ${qos}", ErrBindMarker, 7, "named"},
		{CQL, "select :name, ${qos}", ErrBindMarker, 7, "named"},
		{PostgreSQL, "select $1, ${qos}", ErrBindMarker, 7, "$n"},
		{MySQL, "  \n ", ErrEmpty, 0, "empty"},
	}
	for _, c := range cases {
		_, err := CompileStatement(c.d, c.src)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, c.err) {
			t.Errorf("%v %q: err = %v, want a *SyntaxError wrapping %v", c.d, c.src, err, c.err)
			continue
		}
		if se.Offset != c.offset || !strings.Contains(err.Error(), c.in) || se.Template != c.src {
			t.Errorf("%v %q: %v (offset %d), want offset %d and %q in the message", c.d, c.src, err, se.Offset, c.offset, c.in)
		}
	}
}

func TestSyntaxErrorLineColumn(t *testing.T) {
	src := "insert into t(a, b)\n  values (${clientid},\n\t'é ${topic}')"
	_, err := CompileStatement(PostgreSQL, src)
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v", err)
	}
	if se.Line != 3 || se.Column != 5 || se.Offset != strings.Index(src, "${topic}") {
		t.Fatalf("line %d column %d offset %d, want 3, 5, %d", se.Line, se.Column, se.Offset, strings.Index(src, "${topic}"))
	}
	if want := "template: line 3, column 5 (offset "; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Error() = %q, want prefix %q", err, want)
	}
	_, err = CompileRedis("SET ${nope} x")
	if want := "template: offset 4: unknown variable ${nope}"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("Error() = %v, want prefix %q", err, want)
	}
}

func TestRedisArgs(t *testing.T) {
	cases := []struct {
		src  string
		want []any
	}{
		{"SET conn:${clientid} ${clientid}", []any{"SET", "conn:" + hostile.ClientID, hostile.ClientID}},
		{"HSET sub:${clientid} ${topic} ${qos}", []any{"HSET", "sub:" + hostile.ClientID, hostile.Topic, int64(2)}},
		{"DEL mqtt:acked:${clientid}:${topic}", []any{"DEL", "mqtt:acked:" + hostile.ClientID + ":" + hostile.Topic}},
		{"RPUSH pub:${topic}  \t ${payload}\n", []any{"RPUSH", "pub:" + hostile.Topic, hostile.Payload}},
		{"HSET mqtt:node:${node} ${clientid} ${ts}", []any{"HSET", "mqtt:node:" + hostile.Node, hostile.ClientID, int64(1560743513626)}},
		{"SET k:${qos}:${ts} $${x}", []any{"SET", "k:2:1560743513626", "${x}"}},
		{"SET k ${payload}x", []any{"SET", "k", string(hostile.Payload) + "x"}},
	}
	for _, c := range cases {
		cmd, err := CompileRedis(c.src)
		if err != nil {
			t.Fatalf("%q: %v", c.src, err)
		}
		got := cmd.Args(nil, &hostile)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q:\n got %#v\nwant %#v", c.src, got, c.want)
		}
		if cmd.NumArgs() != len(c.want) {
			t.Errorf("%q: NumArgs() = %d, want %d", c.src, cmd.NumArgs(), len(c.want))
		}
	}
}

func TestRedisErrors(t *testing.T) {
	for src, want := range map[string]error{
		"":                   ErrEmpty,
		" \n\t ":             ErrEmpty,
		"${clientid} k v":    ErrMisplacedPlaceholder,
		"S${topic}ET k v":    ErrMisplacedPlaceholder,
		"SET k ${clientid":   ErrUnterminated,
		"SET k ${client_id}": ErrUnknownVar,
	} {
		_, err := CompileRedis(src)
		var se *SyntaxError
		if !errors.Is(err, want) || !errors.As(err, &se) {
			t.Errorf("%q: err = %v, want %v", src, err, want)
		}
	}
}

func TestText(t *testing.T) {
	tx, err := CompileText("client ${clientid} sent ${payload} on ${topic} at ${ts} (qos ${qos}) $${literal} $1 $")
	if err != nil {
		t.Fatal(err)
	}
	v := Values{ClientID: "c1", Payload: []byte{0, 0xff, 'x'}, Topic: "t/1", TS: time.UnixMilli(42), QoS: 1}
	want := "client c1 sent \x00\xffx on t/1 at 42 (qos 1) ${literal} $1 $"
	if got := tx.Render(&v); got != want {
		t.Fatalf("Render = %q, want %q", got, want)
	}
	if got := tx.Append([]byte("> "), &v); !bytes.Equal(got, []byte("> "+want)) {
		t.Fatalf("Append = %q", got)
	}
	if got := tx.Vars(); !reflect.DeepEqual(got, []Var{VarClientID, VarPayload, VarTopic, VarTS, VarQoS}) {
		t.Fatalf("Vars = %v", got)
	}
}

func TestVarNames(t *testing.T) {
	for x := VarClientID; x <= VarTS; x++ {
		if y, ok := LookupVar(x.String()); !ok || y != x {
			t.Errorf("LookupVar(%q) = %v, %v", x.String(), y, ok)
		}
	}
	if _, ok := LookupVar("message"); ok {
		t.Error("message is not a variable")
	}
	if Var(0).String() != "Var(0)" || Var(200).String() != "Var(200)" {
		t.Error("invalid Var names")
	}
}
