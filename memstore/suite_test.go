package memstore

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

// profile is a configuration of the Store and what its harness declares.
type profile struct {
	v        variant
	fns      []string // nil: all
	features backendtest.Features
	custom   bool // Harness.Custom is set (RECORD commands)
}

var (
	everything = backendtest.Features{ExpiredTime: true, MaxReturnedCount: true, TimeRange: true,
		BinaryPayload: true, WildcardFetch: true, WildcardRetained: true}
	// sqlFunctions is what the SQL stores implement.
	sqlFunctions = []string{
		hook.OnClientConnected, hook.OnClientDisconnected, hook.OnSubscribeLookup,
		hook.OnMessagePublish, hook.OnMessageStore, hook.OnMessageRetain, hook.OnRetainDelete, hook.OnRetainLookup,
		hook.OnMessageFetch, hook.OnMessageAcked, hook.OnAckedDelete,
	}
)

// profiles are the configurations the suite runs against: the reference, and stores with
// the limits a real one may declare. Each must pass the whole suite.
var profiles = map[string]profile{
	"full": {features: everything, custom: true},
	// The functions of the SQL stores, without custom commands.
	"sql": {fns: sqlFunctions, v: variant{noCommands: true}, features: everything},
	// A time-series sink: on_message_publish stores every QoS, read back with ReadBack.
	"sink": {fns: []string{hook.OnMessagePublish}, v: variant{sink: true, noCommands: true},
		features: backendtest.Features{Sink: true, BinaryPayload: true}},
	// A store whose schema keeps text payloads (Cassandra's and MongoDB's spec schemas).
	"text": {v: variant{textPayloads: true}, features: with(everything, func(f *backendtest.Features) { f.BinaryPayload = false }), custom: true},
	// A store that looks messages up by exact topic only.
	"exact": {v: variant{exactFilters: true}, custom: true,
		features: with(everything, func(f *backendtest.Features) { f.WildcardFetch, f.WildcardRetained = false, false })},
	// time_range answered with a msgid range, as a store with an index on msgid may.
	"time-range-by-id": {v: variant{timeRangeByID: true}, features: everything, custom: true},
	// The reference store declaring less than it does: the suite must notice.
	"undeclared": {features: with(everything, func(f *backendtest.Features) {
		f.BinaryPayload, f.WildcardFetch, f.WildcardRetained = false, false, false
	}), custom: true},
}

func with(f backendtest.Features, adjust func(*backendtest.Features)) backendtest.Features {
	adjust(&f)
	return f
}

// harness returns the harness of profile p, with bug b.
func (p profile) harness(b bug) backendtest.Harness {
	v := p.v
	v.bug = b
	open := func(t *testing.T, ns *Namespace) hook.Backend {
		s, err := newStore(Config{Namespace: ns, Functions: p.fns}, v)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	ns := func(b hook.Backend) *Namespace { return b.(*Store).Namespace() }
	f := p.features
	f.Functions = p.fns
	if f.Functions == nil {
		f.Functions = Functions
	}
	h := backendtest.Harness{
		New:      func(t *testing.T) hook.Backend { return open(t, nil) },
		Reopen:   func(t *testing.T, old hook.Backend) hook.Backend { return open(t, ns(old)) },
		Twin:     func(t *testing.T, b hook.Backend) hook.Backend { return open(t, ns(b)) },
		Features: f,
	}
	if f.Sink {
		h.ReadBack = func(ctx context.Context, b hook.Backend) ([]*hook.Message, error) { return ns(b).Messages(), nil }
	}
	if p.custom {
		h.Custom = &backendtest.CustomActions{
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
		}
	}
	return h
}

// TestConformanceProfiles runs the suite against the Store in each limited profile ("full"
// is TestConformance, "undeclared" must fail), which must pass it.
func TestConformanceProfiles(t *testing.T) {
	if os.Getenv(caseEnv) != "" {
		t.Skip("in a subprocess of TestSuiteCatchesBugs")
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range profiles {
			if n != "full" && n != "undeclared" && !yield(n) {
				return
			}
		}
	}) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, profiles[name].harness(""))
		})
	}
}

// caseEnv, set in a subprocess, makes TestBuggyStore run the suite against the Store of one
// case of TestSuiteCatchesBugs: "profile/bug".
const caseEnv = "MEMSTORE_SUITE_CASE"

func TestBuggyStore(t *testing.T) {
	c := os.Getenv(caseEnv)
	if c == "" {
		t.Skip("run by TestSuiteCatchesBugs")
	}
	name, b, _ := strings.Cut(c, "/")
	p, ok := profiles[name]
	if !ok {
		t.Fatalf("no profile %q", name)
	}
	backendtest.Run(t, p.harness(bug(b)))
}

// bugs describes every deliberate bug.
var bugs = map[bug]string{
	bugFetchIgnoresAck:            "fetch returns messages at or before the client's acked position",
	bugRetainIgnoresDollar:        "retained lookup matches '$' topics with leading wildcards",
	bugPublishStoresQoS0:          "on_message_publish stores QoS 0 messages",
	bugCloseDropsQueue:            "Close discards queued writes",
	bugNoDedupe:                   "a message written twice is stored twice",
	bugNewestFirst:                "fetch returns the newest message first",
	bugIgnoresMaxReturned:         "fetch ignores max_returned_count",
	bugIgnoresTimeRange:           "fetch ignores time_range",
	bugNeverExpires:               "expired_time is ignored",
	bugAckedDeleteExact:           "on_acked_delete deletes only the position whose topic equals the filter",
	bugSplicesCustom:              "custom commands are rendered into text and split again",
	bugLossyPayload:               "stored payloads lose NUL and invalid UTF-8",
	bugDropsWhenBusy:              "writes arriving while 16 are queued are silently dropped",
	bugCaseInsensitiveTopics:      "topics match ignoring case",
	bugQueueAckIsPosition:         "on_message_acked_for_queue moves a per-client position instead of removing the message",
	bugKeepLatestKeepsFirst:       "on_message_store_keep_latest keeps the first message of a topic",
	bugDisconnectIgnored:          "on_client_disconnected records nothing",
	bugSubsOfAllClients:           "on_subscribe_lookup returns every client's subscriptions",
	bugRetainStoresEmpty:          "on_message_retain stores an empty payload",
	bugUnknownFunctionAccepted:    "Prepare accepts an unknown function",
	bugUnknownPlaceholderAccepted: "Prepare accepts an unknown placeholder",
	bugUnknownOptionAccepted:      "Prepare ignores unknown rule options",
	bugAckMovesBack:               "an ack sets the position even when it is older",
	bugCloseForgetsRetained:       "Close loses the retained messages",
	bugPrepareAppliesExpiry:       "Prepare records a rule's expired_time for its topic filter in the store",
	bugKeysBeforeCommit:           "order keys are taken before a batch commits, and every other batch commits late",
	bugSinkSkipsQoS0:              "the sink's on_message_publish skips QoS 0",
	bugTrimsSpace:                 "stored payloads lose leading and trailing white space",
	bugRefusesEmptyPayload:        "Write refuses empty payloads as well as binary ones",
	bugBinaryDroppedSilently:      "a text-only store drops binary payloads without counting them",
	bugWildcardFetchEmpty:         "a store without wildcard fetches answers them with nothing instead of an error",
	bugWildcardRetainedEmpty:      "a store without wildcard retained lookups answers them with nothing instead of an error",
	bugSyncNotStored:              "writes do not report their outcome to the hook.Completion of a Sync dispatch",
}

// TestSuiteCatchesBugs runs the suite against each deliberately broken Store in a
// subprocess and checks that the subtests of the broken behaviour fail, while control
// subtests pass.
func TestSuiteCatchesBugs(t *testing.T) {
	if os.Getenv(caseEnv) != "" {
		t.Skip("in a subprocess of TestSuiteCatchesBugs")
	}
	if testing.Short() {
		t.Skip("runs the suite once per bug")
	}
	const fetch, pubsub = "OfflineMessages/on_message_fetch/", "OfflineMessages/on_message_fetch_for_pubsub/"
	type bugCase struct {
		profile    string
		bug        bug      // "" for a profile that must fail as it is
		fail, pass []string // subtests (under TestBuggyStore) that must fail, and controls that must pass
	}
	cases := []bugCase{
		{"full", bugFetchIgnoresAck, []string{fetch + "AckedPositionPerTopic", fetch + "IndependentSubscribers"}, []string{fetch + "FetchByExactTopic"}},
		{"full", bugRetainIgnoresDollar, []string{"Retained/DollarTopicsOnlyByExplicitFilter"}, []string{"Retained/LookupByWildcard"}},
		{"full", bugPublishStoresQoS0, []string{fetch + "PublishStoresQoS1And2NotQoS0"}, []string{fetch + "StoreKeepsQoS0"}},
		{"full", bugCloseDropsQueue, []string{fetch + "CloseDrains"}, []string{fetch + "SameMsgIDStoredOnce"}},
		{"full", bugNoDedupe, []string{fetch + "SameMsgIDStoredOnce", fetch + "EachMessageOnceEvenIfStoredByTwoRules"}, []string{fetch + "OldestFirst"}},
		{"full", bugNewestFirst, []string{fetch + "OldestFirst", fetch + "AckedPositionPerTopic"}, []string{fetch + "FetchByExactTopic"}},
		{"full", bugIgnoresMaxReturned, []string{fetch + "MaxReturnedCount"}, []string{fetch + "TimeRange"}},
		{"full", bugIgnoresTimeRange, []string{fetch + "TimeRange"}, []string{fetch + "MaxReturnedCount"}},
		{"full", bugNeverExpires, []string{fetch + "ExpiredTime"}, []string{fetch + "OldestFirst"}},
		{"full", bugAckedDeleteExact, []string{fetch + "AckedDeleteOnUnsubscribe"}, []string{fetch + "IndependentSubscribers"}},
		{"full", bugSplicesCustom, []string{"CustomActions/HostileValuesStoredExactlyOrRefused"}, []string{"CustomActions/PublishPlaceholders"}},
		{"full", bugLossyPayload, []string{fetch + "BinaryPayload", "Retained/BinaryPayload"}, []string{fetch + "SpecialCharactersStoredVerbatim"}},
		{"full", bugDropsWhenBusy, []string{fetch + "ConcurrentPublishFetchAck", fetch + "CloseDrains"}, []string{fetch + "OldestFirst"}},
		{"full", bugCaseInsensitiveTopics, []string{fetch + "FetchByExactTopic"}, []string{fetch + "FetchByPlusWildcard"}},
		{"full", bugQueueAckIsPosition, []string{"Queue/AckedMessageGoneForEveryone"}, []string{"Queue/FetchByWildcard"}},
		{"full", bugKeepLatestKeepsFirst, []string{"KeepLatest/OnlyLatestPerTopic", "KeepLatest/ReturnedWhenNewerThanPosition"}, []string{"Retained/StoreAndLookupExact"}},
		{"full", bugDisconnectIgnored, []string{"ClientState/OnlineOfflineWithTimesAndNode", "ClientState/ClientsAreIndependent"}, []string{"ClientState/UnknownClientNotFound"}},
		{"full", bugSubsOfAllClients, []string{"Subscriptions/LookupReturnsStoredSubscriptionsWithQoS"}, []string{"Subscriptions/AddAgainReplacesQoS"}},
		{"full", bugRetainStoresEmpty, []string{"Retained/EmptyPayloadDeletes"}, []string{"Retained/ReplaceKeepsLatest"}},
		{"full", bugUnknownFunctionAccepted, []string{"Prepare/UnlistedFunctionsRefused"}, []string{"Prepare/ListedFunctionsGiveTheirActionKind"}},
		{"full", bugUnknownPlaceholderAccepted, []string{"CustomActions/UnknownPlaceholderRefused"}, []string{"CustomActions/PublishPlaceholders"}},

		{"full", bugUnknownOptionAccepted, []string{"Prepare/UnknownOptionRefused"}, []string{"Prepare/UnlistedFunctionsRefused"}},
		{"full", bugAckMovesBack, []string{fetch + "AcksOutOfOrder", pubsub + "AcksOutOfOrder", "KeepLatest/AcksOutOfOrder"}, []string{fetch + "AckedPositionPerTopic"}},
		{"full", bugCloseForgetsRetained, []string{"Restart/KeepsEverything"}, []string{fetch + "CloseDrains"}},
		{"full", bugPrepareAppliesExpiry, []string{"Registration/FailedRegistrationLeavesNoTrace"}, []string{fetch + "ExpiredTime"}},
		{"sql", bugPrepareAppliesExpiry, []string{"Registration/FailedRegistrationLeavesNoTrace"}, []string{fetch + "ExpiredTime"}},
		{"full", bugKeysBeforeCommit, []string{fetch + "TwoWriters", pubsub + "TwoWriters"}, []string{fetch + "ConcurrentPublishFetchAck"}},
		{"full", bugTrimsSpace, []string{fetch + "SpecialCharactersStoredVerbatim"}, []string{fetch + "OldestFirst"}},
		{"full", bugSyncNotStored, []string{"SyncDurability"}, []string{fetch + "OldestFirst"}},

		{"sink", bugSinkSkipsQoS0, []string{"Sink/EveryQoSStored"}, []string{"Prepare/ListedFunctionsGiveTheirActionKind"}},
		{"sink", bugDropsWhenBusy, []string{"Sink/ManyConcurrent", "Sink/CloseDrains"}, []string{"Sink/EveryQoSStored"}},
		{"sink", bugCloseDropsQueue, []string{"Sink/CloseDrains"}, []string{"Sink/ManyConcurrent"}},
		{"sink", bugLossyPayload, []string{"Sink/BinaryPayload"}, []string{"Sink/SpecialValuesStoredVerbatim"}},
		{"sink", bugTrimsSpace, []string{"Sink/SpecialValuesStoredVerbatim"}, []string{"Sink/EveryQoSStored"}},

		{"text", bugLossyPayload, []string{fetch + "BinaryPayload", "Retained/BinaryPayload"}, []string{fetch + "SpecialCharactersStoredVerbatim"}},
		{"text", bugBinaryDroppedSilently, []string{fetch + "BinaryPayload", "Retained/BinaryPayload"}, []string{fetch + "SpecialCharactersStoredVerbatim"}},
		{"text", bugRefusesEmptyPayload, []string{fetch + "BinaryPayload", fetch + "SpecialCharactersStoredVerbatim"}, []string{fetch + "OldestFirst"}},
		{"exact", bugWildcardFetchEmpty, []string{fetch + "FetchByPlusWildcard", fetch + "FetchByHashWildcard", "Queue/FetchByWildcard"}, []string{fetch + "FetchByExactTopic", fetch + "AckedPositionPerTopic"}},
		{"exact", bugWildcardRetainedEmpty, []string{"Retained/LookupByWildcard", "Retained/DollarTopicsOnlyByExplicitFilter"}, []string{"Retained/StoreAndLookupExact"}},
		// A store that keeps binary payloads and answers wildcards but does not say so.
		{"undeclared", "", []string{fetch + "BinaryPayload", "Retained/BinaryPayload", fetch + "FetchByPlusWildcard", "Retained/LookupByWildcard"}, []string{fetch + "FetchByExactTopic"}},
	}
	for _, c := range cases {
		if _, ok := bugs[c.bug]; !ok && c.bug != "" {
			t.Fatalf("case %s/%s: the Store has no such bug", c.profile, c.bug)
		}
	}
	for b := range bugs {
		if !slices.ContainsFunc(cases, func(c bugCase) bool { return c.bug == b }) {
			t.Errorf("bug %s has no case", b)
		}
	}
	for _, c := range cases {
		name := c.profile + "/" + string(c.bug)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			what := "a Store whose " + bugs[c.bug]
			if c.bug == "" {
				what = "the " + c.profile + " profile"
			}
			if c.profile != "full" {
				what += " (" + c.profile + " profile)"
			}
			cmd := exec.Command(os.Args[0], "-test.run", runPattern("TestBuggyStore", append(c.fail, c.pass...)), "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), caseEnv+"="+name)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Errorf("the suite passed against %s", what)
			}
			for _, sub := range c.fail {
				if !strings.Contains(string(out), "--- FAIL: TestBuggyStore/"+sub+" (") {
					t.Errorf("%s did not fail against %s", sub, what)
				}
			}
			for _, sub := range c.pass {
				if !strings.Contains(string(out), "--- PASS: TestBuggyStore/"+sub+" (") {
					t.Errorf("%s did not pass against %s; the failure is not specific", sub, what)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// runPattern is a -test.run pattern selecting the subtest paths of test (and, where paths
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
