package dynamostore_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/dynamostore"
	"github.com/mqttstore/mqttstore/hook"
)

// faults is an http.RoundTripper between the SDK and dynalite that injects what dynalite
// never does: UnprocessedItems, throttling and 5xx answers. Everything else is dynalite's
// answer.
type faults struct {
	base http.RoundTripper

	mu sync.Mutex
	// Counts of the next BatchWriteItem (or UpdateItem) calls to fault.
	unprocessed, throttle, serverError, throttleUpdate int
	down                                               bool
	downWith                                           error // what a down endpoint answers; nil: connection refused
	cut                                                int   // the next calls answered with half a body
	// What was injected.
	injectedUnprocessed, injectedThrottle, injectedServerError, injectedUpdate int
}

func (f *faults) take(n *int, done *int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *n > 0 {
		*n--
		*done++
		return true
	}
	return false
}

func (f *faults) set(fn func(f *faults)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func answer(req *http.Request, status int, body string) *http.Response {
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/x-amz-json-1.0"}, "X-Amzn-Requestid": {"injected"},
			"X-Amz-Crc32": {strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(body))), 10)}},
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

func (f *faults) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	down, downWith := f.down, f.downWith
	f.mu.Unlock()
	if down {
		if downWith != nil {
			return nil, downWith
		}
		return nil, fmt.Errorf("injected: dial tcp: %w", syscall.ECONNREFUSED)
	}
	var none int
	if f.take(&f.cut, &none) {
		return answer(req, 200, `{"UnprocessedItems": {"`), nil
	}
	target := req.Header.Get("X-Amz-Target")
	switch {
	case strings.HasSuffix(target, ".BatchWriteItem"):
		if f.take(&f.throttle, &f.injectedThrottle) {
			return answer(req, 400, `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected"}`), nil
		}
		if f.take(&f.serverError, &f.injectedServerError) {
			return answer(req, 500, `{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"injected"}`), nil
		}
		if f.take(&f.unprocessed, &f.injectedUnprocessed) {
			return f.partial(req)
		}
	case strings.HasSuffix(target, ".UpdateItem"):
		if f.take(&f.throttleUpdate, &f.injectedUpdate) {
			return answer(req, 400, `{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"injected"}`), nil
		}
	}
	return f.base.RoundTrip(req)
}

// partial forwards every other write request of a BatchWriteItem to dynalite and returns the
// others as UnprocessedItems, as DynamoDB does when it throttles part of a batch.
func (f *faults) partial(req *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, err
	}
	var in struct {
		RequestItems map[string][]json.RawMessage
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return nil, err
	}
	kept, left := map[string][]json.RawMessage{}, map[string][]json.RawMessage{}
	n := 0
	for table, wrs := range in.RequestItems {
		for _, wr := range wrs {
			if n%2 == 0 {
				left[table] = append(left[table], wr)
			} else {
				kept[table] = append(kept[table], wr)
			}
			n++
		}
	}
	out := map[string]any{}
	if len(kept) > 0 {
		b, _ := json.Marshal(map[string]any{"RequestItems": kept})
		r := req.Clone(req.Context())
		r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		resp, err := f.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		rb, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return answer(req, resp.StatusCode, string(rb)), nil
		}
		if err := json.Unmarshal(rb, &out); err != nil {
			return nil, err
		}
	}
	out["UnprocessedItems"] = left
	b, _ := json.Marshal(out)
	return answer(req, 200, string(b)), nil
}

func faultyConfig(t *testing.T) (dynamostore.Config, *faults) {
	cfg := testConfig(t)
	f := &faults{base: http.DefaultTransport.(*http.Transport).Clone()}
	cfg.HTTPClient = &http.Client{Transport: f}
	cfg.Options.Retry = backend.Retry{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	return cfg, f
}

// TestRetryPaths: UnprocessedItems, throttling and 5xx answers of BatchWriteItem, and
// throttled UpdateItems, are retried until written: nothing lost, nothing duplicated, nothing
// counted as failed, and the retries counted.
func TestRetryPaths(t *testing.T) {
	t.Parallel()
	cfg, ft := faultyConfig(t)
	f := newFixture(t, cfg)
	ft.set(func(f *faults) { f.unprocessed, f.throttle, f.serverError, f.throttleUpdate = 6, 3, 3, 3 })
	var all []*hook.Message
	for i := range 80 {
		all = append(all, f.msg(fmt.Sprintf("retry/%d", i%5), 1, fmt.Sprint("m", i)))
	}
	f.publish(all...)
	f.flush()
	f.noFailures()
	got := f.fetch("x", "retry/#")
	wantIDs(t, "fetch of retry/# after the injected faults", got, all...)
	ft.mu.Lock()
	injected := [4]int{ft.injectedUnprocessed, ft.injectedThrottle, ft.injectedServerError, ft.injectedUpdate}
	ft.mu.Unlock()
	if injected != [4]int{6, 3, 3, 3} {
		t.Errorf("injected (unprocessed, throttled, 5xx, throttled updates) = %v; want [6 3 3 3]", injected)
	}
	if st := f.s.Stats(); st.Retried == 0 || st.Success != 80 {
		t.Errorf("stats %+v; want 80 successes and retries counted", st)
	}
}

// TestUnprocessedKeepsOrder: a message stored and acked in one batch, with the store's put
// left unprocessed: the ack is written again after it, so the message does not come back.
func TestUnprocessedKeepsOrder(t *testing.T) {
	t.Parallel()
	cfg, ft := faultyConfig(t)
	cfg.Options.BatchInterval = 200 * time.Millisecond
	cfg.Options.Shards = 1
	f := newFixture(t, cfg)
	ft.set(func(f *faults) { f.unprocessed = 1 })
	var ms []*hook.Message
	for i := range 6 {
		ms = append(ms, f.msg("order/a", 1, fmt.Sprint("m", i)))
	}
	f.publish(ms...)
	f.ack("A", ms[:3]...)
	f.flush()
	f.noFailures()
	wantIDs(t, "fetch after storing 6 and acking 3 in one partly unprocessed batch", f.fetch("B", "order/a"), ms[3:]...)
	if n := scanCount(t, f.s, dynamostore.TableMsg); n != 3 {
		t.Errorf("mqtt_msg holds %d items; want 3", n)
	}
	if ft.injectedUnprocessed != 1 || f.s.Stats().Retried == 0 {
		t.Errorf("injected %d, stats %+v; want one partly unprocessed batch, retried", ft.injectedUnprocessed, f.s.Stats())
	}
}

// TestOutage: the endpoint refuses connections (injected in the HTTP client) while messages
// are published (the writer sees the outage: retries counted), then comes back: every message
// is stored exactly once. TestOutage30s is the same through a TCP proxy, for 30 s.
func TestOutage(t *testing.T) {
	t.Parallel()
	cfg, ft := faultyConfig(t)
	f := newFixture(t, cfg)
	ft.set(func(f *faults) { f.down = true })
	var all []*hook.Message
	for i := range 200 {
		m := f.msg(fmt.Sprintf("out/%d", i%7), 1, fmt.Sprint("m", i))
		all = append(all, m)
		f.publish(m)
		if i == 100 {
			for f.s.Stats().Retried == 0 {
				time.Sleep(10 * time.Millisecond)
			}
			ft.set(func(f *faults) { f.down = false })
		}
	}
	f.flush()
	f.noFailures()
	wantIDs(t, "fetch of out/# after the outage", f.fetch("x", "out/#"), all...)
	if st := f.s.Stats(); st.Success != 200 {
		t.Errorf("stats %+v; want 200 successes", st)
	}
}

// TestTransportErrorsRetried: whatever the HTTP client answers when the endpoint goes away
// (errors that are no syscall error nor io.EOF, a 200 answer cut short), the writes are
// retried, not failed: connection errors are outages, never bad items.
func TestTransportErrorsRetried(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		set  func(f *faults)
	}{
		// net/http's error when the server closes a pooled connection as it is reused.
		{"server closed idle connection", func(f *faults) { f.down, f.downWith = true, errors.New("http: server closed idle connection") }},
		{"connection reset", func(f *faults) { f.down, f.downWith = true, fmt.Errorf("read tcp: %w", syscall.ECONNRESET) }},
		{"answer cut short", func(f *faults) { f.cut = 5 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg, ft := faultyConfig(t)
			f := newFixture(t, cfg)
			ft.set(tc.set)
			var all []*hook.Message
			for i := range 20 {
				all = append(all, f.msg(fmt.Sprintf("tr/%d", i%3), 1, fmt.Sprint("m", i)))
			}
			f.publish(all...)
			for st := f.s.Stats(); st.Retried == 0 && st.Failed == 0; st = f.s.Stats() {
				time.Sleep(5 * time.Millisecond)
			}
			ft.set(func(f *faults) { f.down = false })
			f.flush()
			f.noFailures()
			wantIDs(t, "fetch of tr/#", f.fetch("x", "tr/#"), all...)
		})
	}
}
