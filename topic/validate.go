package topic

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxLen is the longest topic name or filter in bytes: MQTT strings carry a
// two-byte length.
const MaxLen = 65535

// Reasons a topic name or filter is invalid. An [*Error] wraps one of them;
// test with errors.Is.
var (
	ErrEmpty             = errors.New("empty")
	ErrTooLong           = errors.New("too long")
	ErrInvalidUTF8       = errors.New("invalid UTF-8")
	ErrNUL               = errors.New("NUL character (U+0000)")
	ErrWildcardInName    = errors.New("wildcard in topic name")
	ErrMisplacedWildcard = errors.New("misplaced wildcard")
	ErrInvalidShared     = errors.New("invalid shared subscription")
)

// Error describes an invalid topic name or filter.
type Error struct {
	Filter bool   // whether Topic was checked as a filter (else as a name)
	Topic  string // the string checked
	Offset int    // byte offset of the problem in Topic
	Level  int    // index of the '/'-separated level holding Offset, from 0
	Reason error  // one of the Err* sentinels, possibly wrapped with detail
}

func (e *Error) Error() string {
	kind := "topic name"
	if e.Filter {
		kind = "topic filter"
	}
	t := e.Topic
	if len(t) > 64 {
		t = t[:64] + "..."
	}
	return fmt.Sprintf("topic: invalid %s %q: %v at byte %d (level %d)", kind, t, e.Reason, e.Offset, e.Level)
}

func (e *Error) Unwrap() error { return e.Reason }

func newError(filter bool, s string, offset int, reason error) *Error {
	return &Error{
		Filter: filter,
		Topic:  s,
		Offset: offset,
		Level:  strings.Count(s[:min(offset, len(s))], "/"),
		Reason: reason,
	}
}

// ValidateName reports whether topic is a valid topic name, the topic of a
// published message: non-empty, at most [MaxLen] bytes, well-formed UTF-8
// without U+0000, and free of the wildcards '+' and '#'. Control characters
// and non-characters, which the specification discourages but allows, are
// accepted.
func ValidateName(topic string) error { return validate(topic, false) }

// ValidateFilter reports whether filter is a valid topic filter, the subject
// of a subscription: as [ValidateName], except that '+' may stand as a whole
// level and '#' as the whole last level.
//
// A filter starting with "$share/" is a shared subscription and must have the
// form "$share/<group>/<filter>", where group is non-empty and holds no '/',
// '+' or '#' (MQTT 5.0 §4.8.2), and filter is valid; "$queue/<filter>"
// (EMQX) needs a valid filter. Shared prefixes are therefore stricter than
// the MQTT 3.1.1 reading, in which "$share/g" is an ordinary filter: such
// strings are valid names but not valid filters.
func ValidateFilter(filter string) error { return validate(filter, true) }

func validate(s string, filter bool) error {
	switch {
	case s == "":
		return newError(filter, s, 0, ErrEmpty)
	case len(s) > MaxLen:
		return newError(filter, s, MaxLen, fmt.Errorf("%w: %d bytes, at most %d allowed", ErrTooLong, len(s), MaxLen))
	}
	start := 0 // where the filter proper begins, after a shared prefix
	if filter {
		var err error
		if start, err = sharedPrefix(s); err != nil {
			return err
		}
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case 0:
			return newError(filter, s, i, ErrNUL)
		case '+', '#':
			if !filter {
				return newError(filter, s, i, ErrWildcardInName)
			}
			if i > start && s[i-1] != '/' || i+1 < len(s) && s[i+1] != '/' {
				return newError(filter, s, i, fmt.Errorf("%w: %q must be a whole level", ErrMisplacedWildcard, c))
			}
			if c == '#' && i+1 < len(s) {
				return newError(filter, s, i, fmt.Errorf("%w: '#' must be the last level", ErrMisplacedWildcard))
			}
		default:
			if c >= utf8.RuneSelf {
				r, size := utf8.DecodeRuneInString(s[i:])
				if r == utf8.RuneError && size == 1 {
					return newError(filter, s, i, ErrInvalidUTF8)
				}
				i += size - 1
			}
		}
	}
	return nil
}

// sharedPrefix returns the length of a shared-subscription prefix of filter,
// or an error if filter starts like one but is malformed.
func sharedPrefix(filter string) (int, error) {
	const share, queue = "$share/", "$queue/"
	start := 0
	switch {
	case strings.HasPrefix(filter, share):
		group, _, ok := strings.Cut(filter[len(share):], "/")
		switch {
		case group == "":
			return 0, newError(true, filter, len(share), fmt.Errorf("%w: empty group name", ErrInvalidShared))
		case !ok:
			return 0, newError(true, filter, len(filter), fmt.Errorf("%w: no filter after the group name", ErrInvalidShared))
		}
		if i := strings.IndexAny(group, "+#"); i >= 0 {
			return 0, newError(true, filter, len(share)+i, fmt.Errorf("%w: wildcard in group name", ErrInvalidShared))
		}
		start = len(share) + len(group) + 1
	case strings.HasPrefix(filter, queue):
		start = len(queue)
	default:
		return 0, nil
	}
	if start == len(filter) {
		return 0, newError(true, filter, start, fmt.Errorf("%w: empty filter", ErrInvalidShared))
	}
	return start, nil
}

// Unshared returns filter without its shared-subscription prefix ("$share/g/a/+" gives "a/+";
// any other filter is returned as it is): what a stored message or retained lookup of the
// subscription matches. It allocates nothing.
func Unshared(filter string) string {
	if filter == "" || filter[0] != '$' {
		return filter
	}
	_, real, _ := ParseShared(filter)
	return real
}

// ParseShared splits a shared-subscription filter into its group and the
// filter proper: "$share/g/a/+" gives ("g", "a/+", true), and EMQX's
// "$queue/a/+" gives ("", "a/+", true); the empty group stands for the one
// implicit queue group. Any other filter, including a malformed "$share/..."
// without a group or without the '/' after it, gives ("", filter, false).
// ParseShared does not validate; see [ValidateFilter].
func ParseShared(filter string) (group, realFilter string, shared bool) {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if group, real, ok := strings.Cut(rest, "/"); ok && group != "" {
			return group, real, true
		}
		return "", filter, false
	}
	if rest, ok := strings.CutPrefix(filter, "$queue/"); ok {
		return "", rest, true
	}
	return "", filter, false
}
