package topic

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	"sport/tennis/player1/#", "sport/tennis/player1", "sport/tennis/player1/score/wimbledon",
	"sport/#", "sport", "sport/", "#", "+", "+/+", "/+", "/finance", "/", "//",
	"sport/tennis/+", "sport/+/player1", "+/tennis/#", "sport/tennis#", "sport/tennis/#/ranking", "sport+",
	"$SYS/#", "$SYS/monitor/+", "+/monitor/Clients", "$SYS/monitor/Clients", "$SYS",
	"$share/g/sport/#", "$share/g", "$share//a", "$share/g+/a", "$queue/a/+", "$queue/",
	"queue/+/x", "a/#/b", "a\x00b", "a/\xff", "\xed\xa0\x80", "温度/+",
}

// FuzzIndexAgainstMatch holds Index against brute-force Match. The input is
// split at '\n' into filters, each added with value i%3 (so values repeat
// across filters and pairs repeat); the filters whose bit is set in remove
// are then removed. Every part is also used as a topic, before and after the
// removals.
func FuzzIndexAgainstMatch(f *testing.F) {
	f.Add(strings.Join(fuzzSeeds, "\n"), uint64(0))
	f.Add(strings.Join(fuzzSeeds, "\n"), uint64(0x5555_5555_5555_5555))
	f.Add("a/b\na/+\na/#\n#\n+/b\n+/+\na\na/b/c\n$a/b\n/\n/b\na/\n", uint64(0b1011))
	f.Add("x\nx\nx\n+\n+\n#\n#\nx/#\nx/#", uint64(0b101010101))
	f.Fuzz(func(t *testing.T, input string, remove uint64) {
		parts := strings.Split(input, "\n")
		if len(parts) > 64 {
			parts = parts[:64]
		}
		type pair struct {
			filter string
			v      int
		}
		var x Index[int]
		model := map[pair]bool{}
		check := func(stage string) {
			if x.Len() != len(model) {
				t.Fatalf("%s: Len = %d, want %d", stage, x.Len(), len(model))
			}
			for _, topic := range parts {
				var want []int
				for p := range model {
					if Match(p.filter, topic) {
						want = append(want, p.v)
					}
				}
				got := x.Match(topic)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("%s: Index.Match(%q) = %v, brute force %v (pairs %v)", stage, topic, got, want, model)
				}
			}
		}
		for i, filter := range parts {
			x.Add(filter, i%3)
			model[pair{filter, i % 3}] = true
		}
		check("after Add")
		for i, filter := range parts {
			if remove&(1<<i) != 0 {
				p := pair{filter, i % 3}
				if got := x.Remove(filter, i%3); got != model[p] {
					t.Fatalf("Remove(%q, %d) = %v, want %v", filter, i%3, got, model[p])
				}
				delete(model, p)
			}
		}
		check("after Remove")
	})
}

// checkError checks the shape of an error from ValidateName or ValidateFilter.
func checkError(t *testing.T, err error, s string, filter bool) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%q: error %v is not an *Error", s, err)
	}
	if e.Topic != s || e.Filter != filter || e.Offset < 0 || e.Offset > len(s) || e.Level != strings.Count(s[:e.Offset], "/") {
		t.Fatalf("%q: bad error %+v", s, e)
	}
	switch {
	case errors.Is(err, ErrNUL):
		if s[e.Offset] != 0 {
			t.Fatalf("%q: no NUL at offset %d", s, e.Offset)
		}
	case errors.Is(err, ErrWildcardInName), errors.Is(err, ErrMisplacedWildcard):
		if c := s[e.Offset]; c != '+' && c != '#' {
			t.Fatalf("%q: no wildcard at offset %d", s, e.Offset)
		}
	case errors.Is(err, ErrInvalidUTF8):
		if r, size := utf8.DecodeRuneInString(s[e.Offset:]); r != utf8.RuneError || size != 1 || !utf8.ValidString(s[:e.Offset]) {
			t.Fatalf("%q: offset %d is not the first invalid byte", s, e.Offset)
		}
	case errors.Is(err, ErrEmpty), errors.Is(err, ErrTooLong), errors.Is(err, ErrInvalidShared):
	default:
		t.Fatalf("%q: error %v wraps no known reason", s, err)
	}
	_ = e.Error()
}

func FuzzValidateName(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateName(s)
		want := s != "" && len(s) <= MaxLen && utf8.ValidString(s) && !strings.ContainsAny(s, "\x00+#")
		if (err == nil) != want {
			t.Fatalf("ValidateName(%q) = %v, want valid %v", s, err, want)
		}
		if err != nil {
			checkError(t, err, s, false)
			return
		}
		if !Match(s, s) {
			t.Fatalf("valid name %q does not match itself", s)
		}
		// A valid name is a valid filter, except where the filter reading
		// makes it a shared subscription, whose rules are stricter.
		if !strings.HasPrefix(s, "$share/") && !strings.HasPrefix(s, "$queue/") {
			if err := ValidateFilter(s); err != nil {
				t.Fatalf("valid name %q is not a valid filter: %v", s, err)
			}
		}
	})
}

func FuzzValidateFilter(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := ValidateFilter(s)
		// An independent statement of the rules, level by level.
		want := s != "" && len(s) <= MaxLen && utf8.ValidString(s) && !strings.ContainsRune(s, 0)
		inner := s
		if strings.HasPrefix(s, "$share/") || strings.HasPrefix(s, "$queue/") {
			group, real, shared := ParseShared(s)
			want = want && shared && real != "" && !strings.ContainsAny(group, "+#")
			inner = real
		}
		levels := strings.Split(inner, "/")
		for i, l := range levels {
			if strings.ContainsAny(l, "+#") && l != "+" && (l != "#" || i != len(levels)-1) {
				want = false
			}
		}
		if (err == nil) != want {
			t.Fatalf("ValidateFilter(%q) = %v, want valid %v", s, err, want)
		}
		if err != nil {
			checkError(t, err, s, true)
			return
		}
		// The filter matches a topic made by filling in its wildcards.
		for i, l := range levels {
			if l == "+" || l == "#" {
				levels[i] = "x"
			}
		}
		if topic := strings.Join(levels, "/"); !Match(inner, topic) {
			t.Fatalf("valid filter %q does not match %q", inner, topic)
		}
	})
}
