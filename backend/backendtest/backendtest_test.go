package backendtest_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/memstore"
)

// harness is the conformance harness of a memstore.Store with every feature: the reference
// the suite is written against. (Package memstore runs the suite against its limited and
// deliberately broken variants, TestSuiteCatchesBugs.)
func harness() backendtest.Harness {
	open := func(t *testing.T, ns *memstore.Namespace) hook.Backend {
		s, err := memstore.New(memstore.Config{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ns := func(b hook.Backend) *memstore.Namespace { return b.(*memstore.Store).Namespace() }
	return backendtest.Harness{
		New:    func(t *testing.T) hook.Backend { return open(t, nil) },
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend { return open(t, ns(old)) },
		Twin:   func(t *testing.T, b hook.Backend) hook.Backend { return open(t, ns(b)) },
		Features: backendtest.Features{
			Functions:        memstore.Functions,
			ExpiredTime:      true,
			MaxReturnedCount: true,
			TimeRange:        true,
			BinaryPayload:    true,
			WildcardFetch:    true,
			WildcardRetained: true,
		},
		Custom: &backendtest.CustomActions{
			Record: func(vars []string) hook.RuleAction {
				cmd := "RECORD"
				for _, v := range vars {
					cmd += " " + v + "=${" + v + "}"
				}
				return hook.RuleAction{Commands: []string{cmd}}
			},
			Read: func(ctx context.Context, b hook.Backend) ([]backendtest.Record, error) {
				var out []backendtest.Record
				for _, r := range ns(b).Records() {
					out = append(out, backendtest.Record(r))
				}
				return out, nil
			},
		},
	}
}

// The suite passes against the reference store.
func TestReferenceStore(t *testing.T) {
	backendtest.Run(t, harness())
}

// harnessEnv, set in a subprocess, names the contradictory harness TestHarnessRefused runs.
const harnessEnv = "BACKENDTEST_HARNESS"

// contradictions are harnesses Run must refuse at once, rather than skip subtests unnoticed,
// with the message it must give.
var contradictions = map[string]struct {
	adjust func(*backendtest.Harness)
	want   string
}{
	"fetch-without-store-function": {
		func(h *backendtest.Harness) {
			h.Features.Functions = []string{hook.OnMessageFetch, hook.OnMessageAcked}
		},
		"lists on_message_fetch but neither on_message_publish nor on_message_store",
	},
	"sink-without-readback": {
		func(h *backendtest.Harness) {
			h.Features.Functions = []string{hook.OnMessagePublish}
			h.Features.Sink = true
		},
		"Features.Sink needs Harness.ReadBack",
	},
	"readback-without-sink": {
		func(h *backendtest.Harness) {
			h.ReadBack = func(context.Context, hook.Backend) ([]*hook.Message, error) { return nil, nil }
		},
		"Harness.ReadBack is set but Features.Sink is false",
	},
	"sink-with-fetch": {
		func(h *backendtest.Harness) {
			h.Features.Sink = true
			h.ReadBack = func(context.Context, hook.Backend) ([]*hook.Message, error) { return nil, nil }
		},
		"Features.Sink needs Features.Functions to be exactly [on_message_publish]",
	},
}

// A harness that contradicts itself fails Run at once, saying why.
func TestHarnessRefused(t *testing.T) {
	if name := os.Getenv(harnessEnv); name != "" {
		h := harness()
		h.Custom = nil
		contradictions[name].adjust(&h)
		backendtest.Run(t, h)
		return
	}
	for name, c := range contradictions {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run", "^TestHarnessRefused$", "-test.count=1")
			cmd.Env = append(os.Environ(), harnessEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil || !strings.Contains(string(out), c.want) {
				t.Errorf("Run with the %s harness: err = %v, want a failure saying %q; output:\n%s", name, err, c.want, out)
			}
			if strings.Contains(string(out), "--- PASS") || strings.Contains(string(out), "--- SKIP") {
				t.Errorf("Run with the %s harness ran subtests; it must fail before any:\n%s", name, out)
			}
		})
	}
}
