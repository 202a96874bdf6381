package template

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Errors of the ${var} compilers, wrapped in a *SyntaxError; test with errors.Is.
var (
	ErrUnknownVar           = errors.New("unknown variable")
	ErrUnterminated         = errors.New("unterminated")
	ErrQuotedPlaceholder    = errors.New("placeholder inside a quoted string, identifier or comment")
	ErrMisplacedPlaceholder = errors.New("placeholder where no value can stand")
	ErrBindMarker           = errors.New("statement has its own bind marker")
	ErrEmpty                = errors.New("empty template")
)

// SyntaxError is why a ${var} template did not compile, and where.
type SyntaxError struct {
	Template string // the template as given
	Offset   int    // byte offset of the fault in Template
	Line     int    // 1-based line of Offset
	Column   int    // 1-based column of Offset, in characters (runes)
	Err      error  // one of the Err* sentinels above
	Reason   string // what is wrong, e.g. "unknown variable ${clientId} (...)"
}

func (e *SyntaxError) Error() string {
	if strings.IndexByte(e.Template, '\n') >= 0 {
		return fmt.Sprintf("template: line %d, column %d (offset %d): %s", e.Line, e.Column, e.Offset, e.Reason)
	}
	return fmt.Sprintf("template: offset %d: %s", e.Offset, e.Reason)
}

func (e *SyntaxError) Unwrap() error { return e.Err }

func syntaxError(src string, off int, err error, reason string) *SyntaxError {
	off = min(max(off, 0), len(src))
	line := 1 + strings.Count(src[:off], "\n")
	bol := strings.LastIndexByte(src[:off], '\n') + 1
	return &SyntaxError{Template: src, Offset: off, Line: line, Column: 1 + utf8.RuneCountInString(src[bol:off]), Err: err, Reason: reason}
}

// item is one byte of a template's literal text (v == 0) or one placeholder (v != 0), with
// its offset in the source. Compilers look at templates as item sequences so that quotes,
// comments and separators are recognised in the text around the placeholders, never in a
// placeholder.
type item struct {
	c   byte
	v   Var
	off int
}

// scan parses the ${var} layer of src: placeholders, and the escape "$${" for a literal "${".
func scan(src string) ([]item, error) {
	items := make([]item, 0, len(src))
	for i := 0; i < len(src); {
		switch {
		case strings.HasPrefix(src[i:], "$${"):
			items = append(items, item{c: '$', off: i}, item{c: '{', off: i + 1})
			i += 3
		case strings.HasPrefix(src[i:], "${"):
			j := i + 2
			for j < len(src) && isNameByte(src[j]) {
				j++
			}
			if j == len(src) || src[j] != '}' {
				return nil, syntaxError(src, i, ErrUnterminated, "${ is not closed by } after a variable name")
			}
			name := src[i+2 : j]
			x, ok := LookupVar(name)
			if !ok {
				return nil, syntaxError(src, i, ErrUnknownVar, unknownVarReason(name))
			}
			items = append(items, item{v: x, off: i})
			i = j + 1
		default:
			items = append(items, item{c: src[i], off: i})
			i++
		}
	}
	return items, nil
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
}

// segment is a run of literal text or one variable.
type segment struct {
	lit string
	v   Var
}

// segments groups items into literal runs and variables.
func segments(items []item) []segment {
	var segs []segment
	var lit []byte
	for _, it := range items {
		if it.v == 0 {
			lit = append(lit, it.c)
			continue
		}
		if len(lit) > 0 {
			segs = append(segs, segment{lit: string(lit)})
			lit = lit[:0]
		}
		segs = append(segs, segment{v: it.v})
	}
	if len(lit) > 0 {
		segs = append(segs, segment{lit: string(lit)})
	}
	return segs
}

func varsOf(segs []segment) []Var {
	var vars []Var
	for _, s := range segs {
		if s.v != 0 {
			vars = append(vars, s.v)
		}
	}
	return vars
}

// appendSegments renders segs as text.
func appendSegments(dst []byte, segs []segment, v *Values) []byte {
	for _, s := range segs {
		if s.v == 0 {
			dst = append(dst, s.lit...)
		} else {
			dst = v.appendText(dst, s.v)
		}
	}
	return dst
}

// Text is a compiled plain-text template (log lines, keys). It is immutable and safe for
// concurrent use.
type Text struct {
	src  string
	segs []segment
	size int // bytes of literal text
}

// CompileText compiles src as plain text: every placeholder is replaced by its value.
func CompileText(src string) (*Text, error) {
	items, err := scan(src)
	if err != nil {
		return nil, err
	}
	t := &Text{src: src, segs: segments(items)}
	for _, s := range t.segs {
		t.size += len(s.lit)
	}
	return t, nil
}

// Source returns the template as given to CompileText.
func (t *Text) Source() string { return t.src }

// Vars returns the template's variables in order of appearance.
func (t *Text) Vars() []Var { return varsOf(t.segs) }

// Append appends the rendered text to dst: strings and the payload byte for byte, qos and ts
// in decimal.
func (t *Text) Append(dst []byte, v *Values) []byte { return appendSegments(dst, t.segs, v) }

// Render returns the rendered text.
func (t *Text) Render(v *Values) string {
	n := t.size
	for _, s := range t.segs {
		if s.v != 0 {
			n += v.textLen(s.v)
		}
	}
	return string(t.Append(make([]byte, 0, n), v))
}
