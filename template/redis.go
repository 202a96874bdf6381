package template

import "strings"

// Command is a compiled Redis command template, split into arguments at compile time. It is
// immutable and safe for concurrent use.
type Command struct {
	src  string
	args []redisArg
}

// redisArg is one argument: a literal (boxed once, so rendering it does not allocate),
// exactly one placeholder, or literal text and placeholders to concatenate.
type redisArg struct {
	lit  any
	v    Var
	segs []segment
	size int // bytes of literal text in segs
}

// CompileRedis compiles src, a Redis command with ${var} placeholders such as
// "HSET mqtt:sub:${clientid} ${topic} ${qos}". The command is split into arguments on
// whitespace (runs of spaces, tabs and newlines count as one separator; there is no quoting,
// so a literal argument holds no whitespace). A placeholder is always inside one argument,
// whatever its value holds: "${payload}" alone is one argument, and a token mixing text and
// placeholders, like mqtt:acked:${clientid}:${topic}, is one argument made by concatenation.
// The first argument, the command name, must be literal text.
func CompileRedis(src string) (*Command, error) {
	items, err := scan(src)
	if err != nil {
		return nil, err
	}
	c := &Command{src: src}
	for i := 0; i < len(items); {
		if items[i].v == 0 && isSpace(items[i].c) {
			i++
			continue
		}
		j := i
		for j < len(items) && (items[j].v != 0 || !isSpace(items[j].c)) {
			j++
		}
		segs := segments(items[i:j])
		var a redisArg
		switch {
		case len(segs) == 1 && segs[0].v == 0:
			a.lit = segs[0].lit
		case len(segs) == 1:
			a.v = segs[0].v
		default:
			a.segs = segs
			for _, s := range segs {
				a.size += len(s.lit)
			}
		}
		if len(c.args) == 0 && a.lit == nil {
			return nil, syntaxError(src, items[i].off, ErrMisplacedPlaceholder, "placeholder in the command name: the command must be literal text")
		}
		c.args = append(c.args, a)
		i = j
	}
	if len(c.args) == 0 {
		return nil, syntaxError(src, 0, ErrEmpty, "empty command")
	}
	return c, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// Source returns the template as given to CompileRedis.
func (c *Command) Source() string { return c.src }

// Name returns the command name (the first argument), e.g. "HSET".
func (c *Command) Name() string { return c.args[0].lit.(string) }

// NumArgs returns the number of arguments Args appends, the command name included.
func (c *Command) NumArgs() int { return len(c.args) }

// Vars returns the template's variables in order of appearance.
func (c *Command) Vars() []Var {
	var vars []Var
	for _, a := range c.args {
		if a.v != 0 {
			vars = append(vars, a.v)
		}
		vars = append(vars, varsOf(a.segs)...)
	}
	return vars
}

// Args appends the command's arguments to dst, the command name first, and returns the
// extended slice (ready for go-redis's Do). Literal arguments are strings. An argument that
// is exactly one placeholder has the type Statement.Args gives it: string, []byte for
// payload (aliasing v.Payload), int64 for qos and ts (milliseconds). An argument mixing text
// and placeholders is a string, with qos and ts in decimal.
func (c *Command) Args(dst []any, v *Values) []any {
	for i := range c.args {
		a := &c.args[i]
		switch {
		case a.lit != nil:
			dst = append(dst, a.lit)
		case a.v != 0:
			dst = append(dst, v.arg(a.v))
		default:
			n := a.size
			for _, s := range a.segs {
				if s.v != 0 {
					n += v.textLen(s.v)
				}
			}
			var b strings.Builder
			b.Grow(n)
			for _, s := range a.segs {
				if s.v == 0 {
					b.WriteString(s.lit)
				} else {
					v.writeText(&b, s.v)
				}
			}
			dst = append(dst, b.String())
		}
	}
	return dst
}
