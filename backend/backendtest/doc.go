// Package backendtest is the conformance suite every store runs against its real database:
// Run drives a store through the path the dispatcher uses (Backend.Prepare, then the
// prepared WriteAction or LookupAction), flushes its asynchronous writes with hook.Flusher, and
// checks the behaviour of every built-in function of the store (ARCHITECTURE.md, "Built-in
// functions"), of custom actions, and of writing under concurrency and across Close.
//
// A store's test supplies a Harness: how to open the store on a fresh namespace, and the
// Features it supports. What a store does not support is declared there, never skipped ad hoc:
// the suite skips the subtests that need an undeclared feature, naming it, and checks that
// Prepare refuses the functions the store does not list.
//
//	func TestConformance(t *testing.T) {
//		backendtest.Run(t, backendtest.Harness{
//			New: func(t *testing.T) hook.Backend {
//				cfg := testenv.Postgres(t) // a fresh schema, or a skip
//				s, err := sqlstore.Open(context.Background(), cfg.DSN, sqlstore.Options{EnsureSchema: true})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Features: backendtest.Features{
//				Functions:        []string{hook.OnMessagePublish, hook.OnMessageFetch, hook.OnMessageAcked /* ... */},
//				MaxReturnedCount: true,
//				TimeRange:        true,
//			},
//		})
//	}
//
// Every subtest opens its own backend with Harness.New and, unless Features.Serial is set,
// runs in parallel with the others. The whole suite takes a few seconds; the expiry check,
// which waits for a 2-second expired_time to pass, dominates.
package backendtest
