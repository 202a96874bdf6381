package memstore_test

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/memstore"
)

// TestConformance runs the conformance suite against a Store with every feature, through
// the exported API only: what a store's conformance test looks like.
func TestConformance(t *testing.T) {
	open := func(t *testing.T, ns *memstore.Namespace) hook.Backend {
		s, err := memstore.New(memstore.Config{Namespace: ns})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ns := func(b hook.Backend) *memstore.Namespace { return b.(*memstore.Store).Namespace() }
	backendtest.Run(t, backendtest.Harness{
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
	})
}
