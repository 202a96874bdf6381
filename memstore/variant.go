package memstore

// variant is how a Store deviates from the reference behaviour: the limits of a store with
// fewer capabilities, and deliberate bugs. Only this package's tests set it (see
// TestSuiteCatchesBugs): it proves that the conformance suite notices each misbehaviour, and
// that it accepts the limits a store declares.
type variant struct {
	bug bug

	sink          bool // on_message_publish stores every QoS, as a time-series sink does
	textPayloads  bool // payloads holding NUL or invalid UTF-8 are refused (counted as failed)
	exactFilters  bool // fetch and retained lookups refuse wildcard filters (hook.ErrUnsupported)
	noCommands    bool // Prepare refuses custom commands
	timeRangeByID bool // time_range compares generated IDs' time part, not Timestamp
}

// bug names a deliberate misbehaviour; "" is none. The descriptions are in the tests.
type bug string

const (
	bugFetchIgnoresAck            bug = "fetch-ignores-ack"
	bugRetainIgnoresDollar        bug = "retain-ignores-dollar"
	bugPublishStoresQoS0          bug = "publish-stores-qos0"
	bugCloseDropsQueue            bug = "close-drops-queue"
	bugNoDedupe                   bug = "no-dedupe"
	bugNewestFirst                bug = "newest-first"
	bugIgnoresMaxReturned         bug = "ignores-max-returned"
	bugIgnoresTimeRange           bug = "ignores-time-range"
	bugNeverExpires               bug = "never-expires"
	bugAckedDeleteExact           bug = "acked-delete-exact"
	bugSplicesCustom              bug = "splices-custom"
	bugLossyPayload               bug = "lossy-payload"
	bugDropsWhenBusy              bug = "drops-when-busy"
	bugCaseInsensitiveTopics      bug = "case-insensitive-topics"
	bugQueueAckIsPosition         bug = "queue-ack-is-position"
	bugKeepLatestKeepsFirst       bug = "keep-latest-keeps-first"
	bugDisconnectIgnored          bug = "disconnect-ignored"
	bugSubsOfAllClients           bug = "subs-of-all-clients"
	bugRetainStoresEmpty          bug = "retain-stores-empty"
	bugUnknownFunctionAccepted    bug = "unknown-function-accepted"
	bugUnknownPlaceholderAccepted bug = "unknown-placeholder-accepted"

	bugUnknownOptionAccepted bug = "unknown-option-accepted"
	bugAckMovesBack          bug = "ack-moves-back"
	bugCloseForgetsRetained  bug = "close-forgets-retained"
	bugPrepareAppliesExpiry  bug = "prepare-applies-expiry"
	bugKeysBeforeCommit      bug = "keys-before-commit"
	bugSinkSkipsQoS0         bug = "sink-skips-qos0"
	bugTrimsSpace            bug = "trims-space"
	bugBinaryDroppedSilently bug = "binary-dropped-silently"
	bugRefusesEmptyPayload   bug = "refuses-empty-payload"
	bugWildcardFetchEmpty    bug = "wildcard-fetch-empty"
	bugWildcardRetainedEmpty bug = "wildcard-retained-empty"
	bugSyncNotStored         bug = "sync-not-stored"
)
