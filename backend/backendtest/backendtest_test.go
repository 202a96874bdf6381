package backendtest_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/hook"
)

// bugEnv, set in a subprocess, makes TestMemStore run the suite against a buggy memStore.
const bugEnv = "BACKENDTEST_MEMSTORE_BUG"

var allFunctions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected, hook.OnSubscribeLookup, hook.OnSubscriptionLookup,
	hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
	hook.OnMessageFetchForQueue, hook.OnMessageAckedForQueue, hook.OnMessageFetchForPubsub, hook.OnMessageAckedForPubsub,
	hook.OnMessageStoreKeepLatest, hook.OnMessageFetchForKeepLatest, hook.OnMessageAckedForKeepLatest,
}

// sqlFunctions is what the SQL stores implement.
var sqlFunctions = []string{
	hook.OnClientConnected, hook.OnClientDisconnected, hook.OnSubscribeLookup,
	hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
	hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
}

func memHarness(bug string, fns []string, custom bool) backendtest.Harness {
	h := backendtest.Harness{
		New: func(t *testing.T) hook.Backend { return newMemStore(newMemNamespace(), bug, fns, custom) },
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend {
			return newMemStore(old.(*memStore).ns, bug, fns, custom)
		},
		Features: backendtest.Features{Functions: fns, ExpiredTime: true, MaxReturnedCount: true, TimeRange: true},
	}
	if custom {
		h.Custom = &backendtest.CustomActions{
			Record: func(vars []string) hook.RuleAction {
				cmd := "RECORD"
				for _, v := range vars {
					cmd += " " + v + "=${" + v + "}"
				}
				return hook.RuleAction{Commands: []string{cmd}}
			},
			Read: func(ctx context.Context, b hook.Backend) ([]backendtest.Record, error) {
				ns := b.(*memStore).ns
				ns.mu.Lock()
				defer ns.mu.Unlock()
				return slices.Clone(ns.records), nil
			},
		}
	}
	return h
}

// TestMemStore runs the suite against the reference memStore, which must pass it; with
// bugEnv set (by TestSuiteCatchesBugs), against a buggy one.
func TestMemStore(t *testing.T) {
	backendtest.Run(t, memHarness(os.Getenv(bugEnv), allFunctions, true))
}

// TestMemStoreSQLFeatures runs the suite against a memStore limited to what the SQL stores
// support, without custom actions: the subtests of the rest skip, and Prepare must refuse it.
func TestMemStoreSQLFeatures(t *testing.T) {
	backendtest.Run(t, memHarness("", sqlFunctions, false))
}

// fetchOnlyEnv, set in a subprocess, makes TestFetchWithoutStoreFunction run the suite.
const fetchOnlyEnv = "BACKENDTEST_FETCH_ONLY"

// A harness that lists a fetch function but no function to store messages with is refused:
// otherwise every message subtest would have nothing to fetch and be skipped unnoticed.
func TestFetchWithoutStoreFunction(t *testing.T) {
	if os.Getenv(fetchOnlyEnv) != "" {
		backendtest.Run(t, memHarness("", []string{hook.OnMessageFetch, hook.OnMessageAcked}, false))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFetchWithoutStoreFunction$", "-test.count=1")
	cmd.Env = append(os.Environ(), fetchOnlyEnv+"=1")
	out, err := cmd.CombinedOutput()
	if want := "lists on_message_fetch but neither on_message_publish nor on_message_store"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("Run with Functions [on_message_fetch on_message_acked]: err = %v, want a failure saying %q; output:\n%s", err, want, out)
	}
}

// TestSuiteCatchesBugs runs the suite against each buggy memStore in a subprocess and checks
// that the subtests of the broken behaviour fail, while a control subtest passes.
func TestSuiteCatchesBugs(t *testing.T) {
	if os.Getenv(bugEnv) != "" {
		t.Skip("in a subprocess of TestSuiteCatchesBugs")
	}
	if testing.Short() {
		t.Skip("runs the suite once per bug")
	}
	const fetch = "OfflineMessages/on_message_fetch/"
	type bugCase struct {
		bug        string   // a key of bugs
		fail, pass []string // subtests (under TestMemStore) that must fail, and controls that must pass
	}
	cases := []bugCase{
		{"fetch-ignores-ack", []string{fetch + "AckedPositionPerTopic", fetch + "IndependentSubscribers"}, []string{fetch + "FetchByExactTopic"}},
		{"retain-ignores-dollar", []string{"Retained/DollarTopicsOnlyByExplicitFilter"}, []string{"Retained/LookupByWildcard"}},
		{"publish-stores-qos0", []string{fetch + "PublishStoresQoS1And2NotQoS0"}, []string{fetch + "StoreKeepsQoS0"}},
		{"close-drops-queue", []string{fetch + "CloseDrains"}, []string{fetch + "SameMsgIDStoredOnce"}},
		{"no-dedupe", []string{fetch + "SameMsgIDStoredOnce", fetch + "EachMessageOnceEvenIfStoredByTwoRules"}, []string{fetch + "OldestFirst"}},
		{"newest-first", []string{fetch + "OldestFirst", fetch + "AckedPositionPerTopic"}, []string{fetch + "FetchByExactTopic"}},
		{"ignores-max-returned", []string{fetch + "MaxReturnedCount"}, []string{fetch + "TimeRange"}},
		{"ignores-time-range", []string{fetch + "TimeRange"}, []string{fetch + "MaxReturnedCount"}},
		{"never-expires", []string{fetch + "ExpiredTime"}, []string{fetch + "OldestFirst"}},
		{"acked-delete-exact", []string{fetch + "AckedDeleteOnUnsubscribe"}, []string{fetch + "IndependentSubscribers"}},
		{"splices-custom", []string{"CustomActions/HostileValuesStoredExactlyOrRefused"}, []string{"CustomActions/PublishPlaceholders"}},
		{"lossy-payload", []string{fetch + "BinaryPayload"}, []string{fetch + "SpecialCharactersStoredVerbatim"}},
		{"drops-when-busy", []string{fetch + "ConcurrentPublishFetchAck", fetch + "CloseDrains"}, []string{fetch + "OldestFirst"}},
		{"case-insensitive-topics", []string{fetch + "FetchByExactTopic"}, []string{fetch + "FetchByPlusWildcard"}},
		{"queue-ack-is-position", []string{"Queue/AckedMessageGoneForEveryone"}, []string{"Queue/FetchByWildcard"}},
		{"keep-latest-keeps-first", []string{"KeepLatest/OnlyLatestPerTopic", "KeepLatest/ReturnedWhenNewerThanPosition"}, []string{"Retained/StoreAndLookupExact"}},
		{"disconnect-ignored", []string{"ClientState/OnlineOfflineWithTimesAndNode", "ClientState/ClientsAreIndependent"}, []string{"ClientState/UnknownClientNotFound"}},
		{"subs-of-all-clients", []string{"Subscriptions/LookupReturnsStoredSubscriptionsWithQoS"}, []string{"Subscriptions/AddAgainReplacesQoS"}},
		{"retain-stores-empty", []string{"Retained/EmptyPayloadDeletes"}, []string{"Retained/ReplaceKeepsLatest"}},
		{"unknown-function-accepted", []string{"Prepare/UnlistedFunctionsRefused"}, []string{"Prepare/ListedFunctionsGiveTheirActionKind"}},
		{"unknown-placeholder-accepted", []string{"CustomActions/UnknownPlaceholderRefused"}, []string{"CustomActions/PublishPlaceholders"}},
	}
	for _, c := range cases {
		if _, ok := bugs[c.bug]; !ok {
			t.Fatalf("case %s: memStore has no such bug", c.bug)
		}
	}
	for bug := range bugs {
		if !slices.ContainsFunc(cases, func(c bugCase) bool { return c.bug == bug }) {
			t.Errorf("memStore bug %s has no case", bug)
		}
	}
	for _, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run", runPattern("TestMemStore", append(c.fail, c.pass...)), "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), bugEnv+"="+c.bug)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Errorf("the suite passed against a memStore whose %s", bugs[c.bug])
			}
			for _, name := range c.fail {
				if !strings.Contains(string(out), "--- FAIL: TestMemStore/"+name+" (") {
					t.Errorf("%s did not fail against a memStore whose %s", name, bugs[c.bug])
				}
			}
			for _, name := range c.pass {
				if !strings.Contains(string(out), "--- PASS: TestMemStore/"+name+" (") {
					t.Errorf("%s did not pass against a memStore whose %s; the failure is not specific", name, bugs[c.bug])
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// runPattern is a -test.run pattern selecting the subtests paths of test (and, where paths
// differ in depth, more).
func runPattern(test string, paths []string) string {
	levels := []string{"^" + test + "$"}
	split := make([][]string, len(paths))
	depth := -1
	for i, p := range paths {
		split[i] = strings.Split(p, "/")
		if depth < 0 || len(split[i]) < depth {
			depth = len(split[i])
		}
	}
	for l := range depth {
		var alts []string
		for _, s := range split {
			if q := regexp.QuoteMeta(s[l]); !slices.Contains(alts, q) {
				alts = append(alts, q)
			}
		}
		levels = append(levels, "^("+strings.Join(alts, "|")+")$")
	}
	return strings.Join(levels, "/")
}
