// Package testenv tells tests where the real services are (started by scripts/services) and
// gives each test a fresh, isolated namespace on them: its own database, schema, keyspace, key
// prefix or table prefix, so tests run in parallel without seeing each other's data.
//
// A test asks for a service by name, e.g. testenv.Postgres(t). When the service cannot be
// reached the test is skipped with the reason, except under MQTTSTORE_REQUIRE_SERVICES=1 (set by
// `make test` and CI), where it fails: nothing passes by skipping.
//
// Addresses come from the MQTTSTORE_* variables that `scripts/services env` prints; each has the
// loopback default of scripts/services, so a plain `go test` finds services started by hand.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"
)

// RequireEnv is the variable that turns a missing service from a skip into a failure.
const RequireEnv = "MQTTSTORE_REQUIRE_SERVICES"

// Required reports whether missing services fail tests instead of skipping them.
func Required() bool {
	v := os.Getenv(RequireEnv)
	return v != "" && v != "0" && !strings.EqualFold(v, "false")
}

// Unavailable ends the test because service cannot be used: a skip naming the reason, or a
// failure when Required.
func Unavailable(t testing.TB, service string, err error) {
	t.Helper()
	msg := service + " is not available (start it with `scripts/services up " + service + "`): " + errString(err)
	if Required() {
		t.Fatalf("%s; %s=1 makes this a failure", msg, RequireEnv)
	}
	t.Skip(msg)
}

func errString(err error) string {
	if err == nil {
		return "unknown reason"
	}
	return err.Error()
}

// Getenv returns the variable key, or def when it is unset or empty.
func Getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// Name returns a fresh identifier for an isolated namespace, derived from the test's name and
// a random suffix: lower-case letters, digits and '_' only, starting with a letter, at most max
// bytes (at least 12). It is safe to use unquoted as a database, schema, keyspace or table name.
func Name(t testing.TB, max int) string {
	t.Helper()
	if max < 12 {
		max = 12
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	suffix := "_" + hex.EncodeToString(b[:])
	var sb strings.Builder
	sb.WriteString("t_")
	for _, r := range strings.ToLower(t.Name()) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		default:
			sb.WriteByte('_')
		}
	}
	base := sb.String()
	if len(base) > max-len(suffix) {
		base = base[:max-len(suffix)]
	}
	return base + suffix
}

// Eventually polls cond until it holds, failing the test if that takes over a minute: a bound
// on a hang, not a timing assertion.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting, after a minute, until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
