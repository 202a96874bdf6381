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
//	func TestConformancePostgres(t *testing.T) {
//		backendtest.Run(t, backendtest.Harness{
//			New: func(t *testing.T) hook.Backend {
//				s, err := sqlstore.Open(context.Background(), sqlstore.Config{
//					Dialect:      sqlstore.Postgres,
//					DSN:          testenv.Postgres(t), // a fresh schema, or a skip
//					EnsureSchema: true,
//				})
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Features: backendtest.Features{
//				Functions:        []string{hook.OnMessagePublish, hook.OnMessageFetch, hook.OnMessageAcked /* ... */},
//				ExpiredTime:      true,
//				MaxReturnedCount: true,
//				TimeRange:        true,
//			},
//		})
//	}
//
// What the suite relies on: the backend implements hook.Flusher (it flushes before every
// read); the optional interfaces that the listed functions are read through (see
// Features.Functions); and, for a store that refuses some values of custom actions
// asynchronously, backend.StatsReporter, whose Failed count must account for each refusal.
// When the backend reports Stats, every flush also checks that nothing failed or was dropped.
// Messages get their IDs from a hook.IDGenerator, so "newer" is a string comparison of IDs,
// and "oldest first" means in ID order across all the topics a fetch covers.
//
// Every subtest opens its own backend with Harness.New and, unless Features.Serial is set,
// runs in parallel with the others of its group; subtests are named after the behaviour they
// check (e.g. TestConformancePostgres/OfflineMessages/on_message_fetch/AckedPositionPerTopic),
// so one can be rerun with go test -run. The whole suite takes a few seconds against a local
// database; the expiry check, which waits for a 2-second expired_time to pass, dominates.
package backendtest
