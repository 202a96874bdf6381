package backendtest

import "testing"

// Run runs the conformance suite against the store h opens.
func Run(t *testing.T, h Harness) {
	t.Helper()
	// The subtests land in the next commits; until then the suite says so instead of passing.
	t.Skip("backendtest: the conformance subtests are not committed yet")
}
