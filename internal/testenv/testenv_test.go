package testenv

import (
	"regexp"
	"testing"
)

func TestNameIsSafeUniqueAndBounded(t *testing.T) {
	valid := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	a, b := Name(t, 20), Name(t, 20)
	for _, n := range []string{a, b} {
		if !valid.MatchString(n) || len(n) > 20 {
			t.Errorf("Name = %q: want [a-z][a-z0-9_]*, at most 20 bytes", n)
		}
	}
	if a == b {
		t.Errorf("two Names are equal: %q", a)
	}
}

func TestRequired(t *testing.T) {
	for v, want := range map[string]bool{"": false, "0": false, "false": false, "1": true, "true": true} {
		t.Setenv(RequireEnv, v)
		if got := Required(); got != want {
			t.Errorf("%s=%q: Required() = %v, want %v", RequireEnv, v, got, want)
		}
	}
}
