package sqlstore

import (
	"strings"
)

// filterPlan is how a topic filter becomes an indexable SQL condition: an equality for a
// filter without wildcards; otherwise a range on the literal levels before the first wildcard
// (which the (topic, id) and topic indexes serve), narrowed by a regular expression (or, on
// SQLite, by topic.Match registered as a function) so that a LIMIT counts only matching rows.
// Results are still checked with topic.Match in Go: the SQL side may be looser under a
// case-insensitive collation of an existing EMQX MySQL table.
type filterPlan struct {
	filter string
	exact  bool
	// prefix is the literal levels before the first wildcard level, each with its '/': the
	// range is [prefix, prefix with its last '/' replaced by '0'). Empty when the first level
	// is a wildcard: no range.
	prefix string
	// parent is the topic that a trailing "/#" also matches ("a" for "a/#"), when hasParent.
	parent    string
	hasParent bool
	// prefixOnly: the filter is prefix + "#", so the range (and parent) is exact and needs no
	// pattern.
	prefixOnly bool
	// dollar: the first level is a wildcard, so topics starting with '$' do not match.
	dollar bool
}

func planFilter(filter string) filterPlan {
	p := filterPlan{filter: filter}
	levels := strings.Split(filter, "/")
	first := -1
	for i, l := range levels {
		if l == "+" || l == "#" {
			first = i
			break
		}
	}
	if first < 0 {
		p.exact = true
		return p
	}
	p.dollar = first == 0
	if first > 0 {
		p.prefix = strings.Join(levels[:first], "/") + "/"
	}
	if levels[first] == "#" { // '#' is last (the filter is valid)
		p.prefixOnly = !p.dollar
		if first > 0 {
			p.hasParent, p.parent = true, strings.Join(levels[:first], "/")
		}
	}
	return p
}

// rangeEnd is the exclusive upper bound of the topics starting with prefix, which ends in
// '/': '/' + 1 is '0', in bytes, code points and the collations of the supported schemas.
func rangeEnd(prefix string) string { return prefix[:len(prefix)-1] + "0" }

// regexp returns an anchored pattern that matches the topics the filter matches, in the
// common syntax of PostgreSQL AREs, PCRE (MariaDB) and ICU (MySQL 8). mysql selects "\z" as
// the end anchor and "(?s)" so that '.' and '$' treat a newline in a topic as any other
// character (PostgreSQL's defaults).
func (p filterPlan) regexp(mysql bool) string {
	var b strings.Builder
	if mysql {
		b.WriteString("(?s)")
	}
	b.WriteByte('^')
	levels := strings.Split(p.filter, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i == 0:
			b.WriteString(`([^$].*)?`)
		case l == "#":
			// "a/#" also matches "a": the separator is part of the optional tail.
			b.WriteString(`(/.*)?`)
		default:
			if i > 0 {
				b.WriteByte('/')
			}
			if l == "+" && i == 0 {
				b.WriteString(`([^$/][^/]*)?`)
			} else if l == "+" {
				b.WriteString(`[^/]*`)
			} else {
				quoteRegexp(&b, l)
			}
		}
	}
	if mysql {
		b.WriteString(`\z`)
	} else {
		b.WriteByte('$')
	}
	return b.String()
}

// quoteRegexp writes s with every ASCII punctuation character escaped by a backslash, which
// all three engines read as the literal character; letters, digits and non-ASCII bytes stand
// for themselves.
func quoteRegexp(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') && c > ' ' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
}
