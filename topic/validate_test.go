package topic

import (
	"errors"
	"strings"
	"testing"
)

type validateCase struct {
	name   string
	in     string
	reason error // nil: valid
	offset int
	level  int
}

// Cases that hold for names and filters alike.
var commonCases = []validateCase{
	{"4.7.1.3_slash_finance", "/finance", nil, 0, 0},
	{"4.7.3_only_slash", "/", nil, 0, 0},
	{"4.7.3_only_slashes", "//", nil, 0, 0},
	{"4.7.3_space", "Accounts payable", nil, 0, 0},
	{"4.7.2_dollar_sys", "$SYS/monitor/Clients", nil, 0, 0},
	{"1.5.4_utf8", "温度/室内", nil, 0, 0},
	{"1.5.4_control_characters_allowed", "a\x01b/\u0085", nil, 0, 0},
	{"4.7.3_max_length", strings.Repeat("a", MaxLen), nil, 0, 0},
	{"4.7.3-1_empty", "", ErrEmpty, 0, 0},
	{"4.7.3-2_nul", "a/b\x00c", ErrNUL, 3, 1},
	{"4.7.3-3_too_long", strings.Repeat("a/", MaxLen/2) + "ab", ErrTooLong, MaxLen, MaxLen / 2},
	{"1.5.4-1_invalid_utf8_byte", "a/\xff", ErrInvalidUTF8, 2, 1},
	{"1.5.4-1_truncated_utf8", "ab\xe6\xb8", ErrInvalidUTF8, 2, 0},
	{"1.5.4-1_surrogate", "x/y/\xed\xa0\x80", ErrInvalidUTF8, 4, 2},
	{"1.5.4-1_overlong", "\xc0\xaf", ErrInvalidUTF8, 0, 0},
}

func TestValidateName(t *testing.T) {
	cases := append([]validateCase{
		{"3.3.2-2_plain_name", "sport/tennis/player1", nil, 0, 0},
		{"4.8.2_shared_prefix_is_an_ordinary_name", "$share/g", nil, 0, 0},
		{"3.3.2-2_plus_in_name", "sport/+", ErrWildcardInName, 6, 1},
		{"3.3.2-2_hash_in_name", "#", ErrWildcardInName, 0, 0},
		{"3.3.2-2_hash_inside_level", "sport/tennis#", ErrWildcardInName, 12, 1},
	}, commonCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkValidate(t, ValidateName, false, c) })
	}
}

func TestValidateFilter(t *testing.T) {
	cases := append([]validateCase{
		{"4.7.1.2_hash_after_levels", "sport/tennis/player1/#", nil, 0, 0},
		{"4.7.1.2_hash_alone", "#", nil, 0, 0},
		{"4.7.1.2_sport_tennis_hash", "sport/tennis/#", nil, 0, 0},
		{"4.7.1.3_plus_alone", "+", nil, 0, 0},
		{"4.7.1.3_plus_tennis_hash", "+/tennis/#", nil, 0, 0},
		{"4.7.1.3_plus_in_middle", "sport/+/player1", nil, 0, 0},
		{"4.7.1.3_plus_plus", "+/+", nil, 0, 0},
		{"4.7.1.3_slash_plus", "/+", nil, 0, 0},
		{"4.7.1.3_plus_empty_levels", "+//+/", nil, 0, 0},
		{"4.7.2_dollar_sys_hash", "$SYS/#", nil, 0, 0},
		{"4.7.1-1_hash_inside_level", "sport/tennis#", ErrMisplacedWildcard, 12, 1},
		{"4.7.1-1_hash_not_last", "sport/tennis/#/ranking", ErrMisplacedWildcard, 13, 2},
		{"4.7.1-1_hash_then_slash", "#/", ErrMisplacedWildcard, 0, 0},
		{"4.7.1-1_hash_hash", "a/##", ErrMisplacedWildcard, 2, 1},
		{"4.7.1-2_plus_after_text", "sport+", ErrMisplacedWildcard, 5, 0},
		{"4.7.1-2_plus_before_text", "a/+b", ErrMisplacedWildcard, 2, 1},
		{"4.7.1-2_plus_hash", "+#", ErrMisplacedWildcard, 0, 0},
		{"4.8.2_shared", "$share/group1/sport/+", nil, 0, 0},
		{"4.8.2_shared_hash", "$share/g/#", nil, 0, 0},
		{"4.8.2_shared_dollar_inner", "$share/g/$SYS/#", nil, 0, 0},
		{"emqx_queue", "$queue/sport/#", nil, 0, 0},
		{"4.8.2-1_empty_group", "$share//sport", ErrInvalidShared, 7, 1},
		{"4.8.2-2_no_filter_after_group", "$share/group1", ErrInvalidShared, 13, 1},
		{"4.8.2-2_empty_filter", "$share/group1/", ErrInvalidShared, 14, 2},
		{"4.8.2-2_plus_in_group", "$share/g+/a", ErrInvalidShared, 8, 1},
		{"4.8.2-2_hash_group", "$share/#/a", ErrInvalidShared, 7, 1},
		{"4.8.2_invalid_inner_filter", "$share/g/a/b#", ErrMisplacedWildcard, 12, 3},
		{"4.8.2_inner_hash_not_last", "$share/g/#/a", ErrMisplacedWildcard, 9, 2},
		{"emqx_queue_empty_filter", "$queue/", ErrInvalidShared, 7, 1},
		{"emqx_queue_invalid_inner_filter", "$queue/a+", ErrMisplacedWildcard, 8, 1},
	}, commonCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkValidate(t, ValidateFilter, true, c) })
	}
}

func checkValidate(t *testing.T, validate func(string) error, filter bool, c validateCase) {
	t.Helper()
	err := validate(c.in)
	if c.reason == nil {
		if err != nil {
			t.Fatalf("got %v, want valid", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v (%T), want *Error", err, err)
	}
	if !errors.Is(err, c.reason) || e.Offset != c.offset || e.Level != c.level || e.Topic != c.in || e.Filter != filter {
		t.Errorf("got %+v, want reason %v at offset %d level %d", e, c.reason, c.offset, c.level)
	}
}

func TestErrorMessage(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{ValidateFilter("sport/tennis#"), `topic: invalid topic filter "sport/tennis#": misplaced wildcard: '#' must be a whole level at byte 12 (level 1)`},
		{ValidateName("a/+"), `topic: invalid topic name "a/+": wildcard in topic name at byte 2 (level 1)`},
		{ValidateFilter("$share/g"), `topic: invalid topic filter "$share/g": invalid shared subscription: no filter after the group name at byte 8 (level 1)`},
		{ValidateName(strings.Repeat("x", MaxLen+1)), `topic: invalid topic name "` + strings.Repeat("x", 64) + `...": too long: 65536 bytes, at most 65535 allowed at byte 65535 (level 0)`},
	} {
		if c.err == nil || c.err.Error() != c.want {
			t.Errorf("got  %v\nwant %s", c.err, c.want)
		}
	}
}

func TestParseShared(t *testing.T) {
	for _, c := range []struct {
		name, in, group, filter string
		shared                  bool
	}{
		{"4.8.2_share", "$share/g1/sport/+", "g1", "sport/+", true},
		{"4.8.2_share_hash", "$share/g/#", "g", "#", true},
		{"4.8.2_share_nested_prefix_is_inner_filter", "$share/g/$share/h/x", "g", "$share/h/x", true},
		{"4.8.2_share_empty_filter_not_validated", "$share/g/", "g", "", true},
		{"emqx_queue", "$queue/sport/#", "", "sport/#", true},
		{"emqx_queue_empty_filter_not_validated", "$queue/", "", "", true},
		{"4.8.2_no_filter_is_not_shared", "$share/g", "", "$share/g", false},
		{"4.8.2_empty_group_is_not_shared", "$share//a", "", "$share//a", false},
		{"4.8.2_prefix_is_case_sensitive", "$SHARE/g/a", "", "$SHARE/g/a", false},
		{"4.8.2_prefix_needs_slash", "$sharex/g/a", "", "$sharex/g/a", false},
		{"plain_filter", "sport/#", "", "sport/#", false},
		{"dollar_sys", "$SYS/#", "", "$SYS/#", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			group, filter, shared := ParseShared(c.in)
			if group != c.group || filter != c.filter || shared != c.shared {
				t.Errorf("ParseShared(%q) = %q, %q, %v; want %q, %q, %v", c.in, group, filter, shared, c.group, c.filter, c.shared)
			}
		})
	}
}

func TestUnshared(t *testing.T) {
	for in, want := range map[string]string{
		"a/+": "a/+", "$share/g/a/+": "a/+", "$queue/a/#": "a/#", "$SYS/x": "$SYS/x", "$share/g": "$share/g", "": "",
	} {
		if got := Unshared(in); got != want {
			t.Errorf("Unshared(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Unshared("$share/g/a/+") }); n != 0 {
		t.Errorf("Unshared allocates %v times", n)
	}
}
