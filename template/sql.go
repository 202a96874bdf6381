package template

import (
	"fmt"
	"strconv"
	"strings"
)

// Dialect is the language of a statement template. It decides the bind markers of the
// compiled statement and the quoting and comment rules the compiler applies to find
// placeholders that are not where a value can be bound.
type Dialect uint8

const (
	// MySQL (and MariaDB): ? markers. '...' and "..." are strings (backslash escapes and
	// doubled quotes), `...` identifiers; comments are #, "-- " and /* */.
	MySQL Dialect = iota + 1
	// PostgreSQL: $1..$n markers. '...' strings (E'...' with backslash escapes), $tag$...$tag$
	// strings, "..." identifiers; comments are -- and nested /* */.
	PostgreSQL
	// SQLite: ? markers. '...' strings; "...", `...` and [...] identifiers; comments are --
	// and /* */.
	SQLite
	// CQL (Cassandra): ? markers. '...' and $$...$$ strings, "..." identifiers; comments are
	// --, // and /* */.
	CQL
)

var dialectNames = [...]string{"", "mysql", "postgresql", "sqlite", "cql"}

func (d Dialect) String() string {
	if int(d) < len(dialectNames) && d != 0 {
		return dialectNames[d]
	}
	return "Dialect(" + strconv.Itoa(int(d)) + ")"
}

// Statement is a compiled SQL or CQL template: statement text with bind markers where the
// placeholders were, and the variable of each marker. It is immutable and safe for
// concurrent use.
type Statement struct {
	dialect Dialect
	src     string
	text    string
	vars    []Var
}

// CompileStatement compiles src, a SQL or CQL statement with ${var} placeholders, for d.
// Every placeholder becomes one bind marker; the statement text is fixed here and no value
// is ever written into it. A placeholder must stand where a value can: not inside a quoted
// string, quoted identifier or comment, and not joined to a word, number or another
// placeholder (t_${clientid}, ${qos}1). The statement must not have bind markers of its own
// (?, $1, :name), whose arguments nothing would supply.
func CompileStatement(d Dialect, src string) (*Statement, error) {
	if d < MySQL || d > CQL {
		return nil, fmt.Errorf("template: unknown dialect %v", d)
	}
	if strings.TrimSpace(src) == "" {
		return nil, syntaxError(src, 0, ErrEmpty, "empty statement")
	}
	items, err := scan(src)
	if err != nil {
		return nil, err
	}
	l := sqlLexer{d: d, src: src, items: items}
	if err := l.run(); err != nil {
		return nil, err
	}
	s := &Statement{dialect: d, src: src}
	var b strings.Builder
	b.Grow(len(items) + 8)
	for _, it := range items {
		if it.v == 0 {
			b.WriteByte(it.c)
			continue
		}
		s.vars = append(s.vars, it.v)
		if d == PostgreSQL {
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(len(s.vars)))
		} else {
			b.WriteByte('?')
		}
	}
	s.text = b.String()
	return s, nil
}

// Text returns the statement to prepare or execute, with bind markers.
func (s *Statement) Text() string { return s.text }

// Source returns the template as given to CompileStatement.
func (s *Statement) Source() string { return s.src }

// Dialect returns the dialect the statement was compiled for.
func (s *Statement) Dialect() Dialect { return s.dialect }

// Vars returns the variable bound to each marker, in order.
func (s *Statement) Vars() []Var { return append([]Var(nil), s.vars...) }

// NumArgs returns the number of bind markers, which is the number of arguments Args appends.
func (s *Statement) NumArgs() int { return len(s.vars) }

// Args appends the statement's arguments to dst, one per bind marker, in order, and returns
// the extended slice. Types: string for clientid, username, peerhost, node, topic and msgid;
// []byte for payload (binary-safe, never nil, aliasing v.Payload); int64 for qos and for ts
// (milliseconds since the Unix epoch).
func (s *Statement) Args(dst []any, v *Values) []any {
	for _, x := range s.vars {
		dst = append(dst, v.arg(x))
	}
	return dst
}

// sqlLexer walks a statement's items to check where its placeholders stand.
type sqlLexer struct {
	d     Dialect
	src   string
	items []item
	// raw accepts bind markers and records them in params: the digits of each $n, or "?"
	// (Timescale templates bind param_keys by position; tests check compiled statements).
	raw    bool
	params []string
}

// rawItems is s as literal items, for statements without ${var} placeholders.
func rawItems(s string) []item {
	items := make([]item, len(s))
	for i := 0; i < len(s); i++ {
		items[i] = item{c: s[i], off: i}
	}
	return items
}

// lit returns the literal byte at i; ok is false past the end or at a placeholder.
func (l *sqlLexer) lit(i int) (c byte, ok bool) {
	if i < 0 || i >= len(l.items) || l.items[i].v != 0 {
		return 0, false
	}
	return l.items[i].c, true
}

func (l *sqlLexer) identBefore(i int) bool {
	c, ok := l.lit(i - 1)
	return ok && isIdentByte(c)
}

func isIdentByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func (l *sqlLexer) fail(i int, err error, reason string) error {
	off := len(l.src)
	if i < len(l.items) {
		off = l.items[i].off
	}
	return syntaxError(l.src, off, err, reason)
}

func (l *sqlLexer) run() error {
	for i := 0; i < len(l.items); {
		if l.items[i].v != 0 {
			if err := l.checkPlacement(i); err != nil {
				return err
			}
			i++
			continue
		}
		c := l.items[i].c
		next, _ := l.lit(i + 1)
		end, err := i+1, error(nil)
		switch {
		case c == '\'':
			end, err = l.quoted(i, '\'', l.backslashes(i), "string literal")
		case c == '"' && l.d == MySQL:
			end, err = l.quoted(i, '"', true, "string literal")
		case c == '"':
			end, err = l.quoted(i, '"', false, "quoted identifier")
		case c == '`' && (l.d == MySQL || l.d == SQLite):
			end, err = l.quoted(i, '`', false, "quoted identifier")
		case c == '[' && l.d == SQLite:
			end, err = l.until(i, i+1, "]", "quoted identifier")
		case c == '-' && next == '-' && (l.d != MySQL || l.mysqlDashComment(i+2)),
			c == '#' && l.d == MySQL,
			c == '/' && next == '/' && l.d == CQL:
			end, err = l.lineComment(i)
		case c == '/' && next == '*':
			end, err = l.blockComment(i)
		case c == '$' && l.d == PostgreSQL && !l.identBefore(i):
			end, err = l.pgDollar(i)
		case c == '$' && next == '$' && l.d == CQL:
			end, err = l.until(i, i+2, "$$", "$$ string")
		case c == '?' && l.d != PostgreSQL && l.raw:
			l.params = append(l.params, "?")
		case c == '?' && l.d != PostgreSQL:
			err = l.fail(i, ErrBindMarker, "bind marker ? in the template: use a ${var} placeholder")
		case isIdentStart(next) && !l.identBefore(i) &&
			(c == ':' && (l.d == SQLite || l.d == CQL) || (c == '@' || c == '$') && l.d == SQLite):
			err = l.fail(i, ErrBindMarker, "named bind marker "+string(c)+"name in the template: use a ${var} placeholder")
		}
		if err != nil {
			return err
		}
		i = end
	}
	return nil
}

// checkPlacement rejects a placeholder glued to a word, a number or another placeholder:
// the bind marker would become part of a name (t_?), change a number ($11), or sit next to
// another marker.
func (l *sqlLexer) checkPlacement(i int) error {
	name := "${" + l.items[i].v.String() + "}"
	for _, j := range [2]int{i - 1, i + 1} {
		if j < 0 || j >= len(l.items) {
			continue
		}
		if l.items[j].v != 0 {
			return l.fail(max(i, j), ErrMisplacedPlaceholder, "two placeholders next to each other: a placeholder is a whole value")
		}
		if isIdentByte(l.items[j].c) {
			return l.fail(i, ErrMisplacedPlaceholder, name+" is joined to "+strconv.Quote(string(l.items[j].c))+": a placeholder is a whole bound value, not part of a name or number")
		}
	}
	return nil
}

// backslashes reports whether backslash escapes apply in the string opened at i.
func (l *sqlLexer) backslashes(i int) bool {
	switch l.d {
	case MySQL:
		return true
	case PostgreSQL:
		c, ok := l.lit(i - 1)
		return ok && (c == 'E' || c == 'e') && !l.identBefore(i-1)
	}
	return false
}

func (l *sqlLexer) quotedPlaceholder(j, open int, what string) error {
	o := syntaxError(l.src, l.items[open].off, nil, "")
	return l.fail(j, ErrQuotedPlaceholder, "${"+l.items[j].v.String()+"} inside a "+what+" opened at line "+
		strconv.Itoa(o.Line)+", column "+strconv.Itoa(o.Column)+": it would not be bound")
}

// quoted skips the quoted string or identifier opened by q at i; a doubled q (and, with
// backslash, \q) stands for q. It returns the index after the closing quote.
func (l *sqlLexer) quoted(i int, q byte, backslash bool, what string) (int, error) {
	for j := i + 1; j < len(l.items); j++ {
		if l.items[j].v != 0 {
			return 0, l.quotedPlaceholder(j, i, what)
		}
		switch l.items[j].c {
		case '\\':
			if backslash {
				if j+1 < len(l.items) && l.items[j+1].v != 0 {
					return 0, l.quotedPlaceholder(j+1, i, what)
				}
				j++
			}
		case q:
			if c, ok := l.lit(j + 1); ok && c == q {
				j++
				continue
			}
			return j + 1, nil
		}
	}
	return 0, l.fail(i, ErrUnterminated, what+" opened here is not closed")
}

// until skips from `from` to past the first occurrence of closing, for a construct opened
// at i.
func (l *sqlLexer) until(i, from int, closing, what string) (int, error) {
	for j := from; j < len(l.items); j++ {
		if l.items[j].v != 0 {
			return 0, l.quotedPlaceholder(j, i, what)
		}
		if l.hasLit(j, closing) {
			return j + len(closing), nil
		}
	}
	return 0, l.fail(i, ErrUnterminated, what+" opened here is not closed")
}

// hasLit reports whether the literal text at j starts with s.
func (l *sqlLexer) hasLit(j int, s string) bool {
	for k := 0; k < len(s); k++ {
		if c, ok := l.lit(j + k); !ok || c != s[k] {
			return false
		}
	}
	return true
}

// mysqlDashComment reports whether "--" followed by the item at j starts a MySQL comment,
// which needs a whitespace or control character (or the end) after the dashes.
func (l *sqlLexer) mysqlDashComment(j int) bool {
	if j >= len(l.items) {
		return true
	}
	c, ok := l.lit(j)
	return ok && c <= ' '
}

func (l *sqlLexer) lineComment(i int) (int, error) {
	for j := i; j < len(l.items); j++ {
		if l.items[j].v != 0 {
			return 0, l.quotedPlaceholder(j, i, "comment")
		}
		if l.items[j].c == '\n' {
			return j, nil
		}
	}
	return len(l.items), nil
}

func (l *sqlLexer) blockComment(i int) (int, error) {
	depth := 0
	for j := i; j < len(l.items); {
		if l.items[j].v != 0 {
			return 0, l.quotedPlaceholder(j, i, "comment")
		}
		switch {
		case l.hasLit(j, "/*") && (depth == 0 || l.d == PostgreSQL):
			depth++
			j += 2
		case l.hasLit(j, "*/"):
			depth--
			j += 2
			if depth == 0 {
				return j, nil
			}
		default:
			j++
		}
	}
	return 0, l.fail(i, ErrUnterminated, "comment opened here is not closed")
}

// pgDollar handles a '$' at i in PostgreSQL text: a positional marker $n, the start of a
// dollar-quoted string $tag$...$tag$, or an ordinary character.
func (l *sqlLexer) pgDollar(i int) (int, error) {
	j := i + 1
	for {
		c, ok := l.lit(j)
		if !ok || c < '0' || c > '9' {
			break
		}
		j++
	}
	if j > i+1 {
		if !l.raw {
			return 0, l.fail(i, ErrBindMarker, "bind marker $n in the template: use a ${var} placeholder")
		}
		var digits []byte
		for k := i + 1; k < j; k++ {
			digits = append(digits, l.items[k].c)
		}
		l.params = append(l.params, string(digits))
		return j, nil
	}
	tag := []byte{'$'}
	for j = i + 1; ; j++ {
		c, ok := l.lit(j)
		switch {
		case ok && c == '$':
			tag = append(tag, '$')
			return l.until(i, j+1, string(tag), "dollar-quoted string")
		case ok && (isIdentStart(c) || j > i+1 && c >= '0' && c <= '9'):
			tag = append(tag, c)
		default:
			return i + 1, nil // a lone '$'
		}
	}
}
