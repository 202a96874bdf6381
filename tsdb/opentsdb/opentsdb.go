package opentsdb

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/topic"
	"github.com/mqttstore/mqttstore/tsdb"
)

// DefaultMaxBatch is the spec's max_batch_size: data points per /api/put request.
const DefaultMaxBatch = 20

// Config configures a Store.
type Config struct {
	// Server is the OpenTSDB HTTP API: "host:port" (as the spec writes it) or a base URL.
	Server string
	// MaxBatch is the most data points one /api/put request carries (max_batch_size);
	// 0 means DefaultMaxBatch.
	MaxBatch int
	// Summary and Details ask OpenTSDB to answer with what it stored and what it refused.
	// With Details, each refused point is matched to its message, which fails alone; with
	// Summary only, the refused points are counted (Stats.Failed) but the messages are
	// unknown; with neither, a 400 counts every point of the request as failed (the others
	// stay stored: they are never written again).
	Summary, Details bool
	// Sync makes OpenTSDB answer once the points are stored, waiting SyncTimeout at most
	// (0: no limit).
	Sync        bool
	SyncTimeout time.Duration
	// Templates are the payload templates (emqx_backend_opentsdb.tmpl). Required.
	Templates *template.Set[template.OpenTSDBTemplate]
	// Options are the writer's settings; PoolSize is the HTTP connections.
	Options backend.Options
	// Client sends the requests; nil: one of the Store's own.
	Client *http.Client
}

// Store is an OpenTSDB sink: a hook.Backend whose one function, on_message_publish, turns
// each message into data points through the templates of its topic and puts them in
// batches. It is safe for concurrent use.
type Store struct {
	cfg     Config
	opts    backend.Options
	putURL  string
	client  *http.Client
	ownHTTP bool
	w       *backend.Writer[item]
	// uncounted counts refused points that could not be matched to a message.
	uncounted    atomic.Uint64
	uncountedLog tsdb.RateLog
	once         sync.Once
}

// item is one message's data points, each as a JSON object, or why it has none.
type item struct {
	key    string
	points [][]byte
	err    error
}

// jsonPoint is a data point as /api/put takes it (and echoes it in details).
type jsonPoint struct {
	Metric    string            `json:"metric"`
	Timestamp int64             `json:"timestamp"`
	Value     any               `json:"value"`
	Tags      map[string]string `json:"tags"`
}

// Open returns a Store putting to cfg.Server. It does not contact the server; Ping does.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Templates == nil {
		return nil, fmt.Errorf("opentsdb: %w: no templates (Config.Templates)", hook.ErrConfig)
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	s := &Store{cfg: cfg, opts: cfg.Options.WithDefaults()}
	base := cfg.Server
	if base == "" {
		return nil, fmt.Errorf("opentsdb: %w: no server", hook.ErrConfig)
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	q := url.Values{}
	if cfg.Summary {
		q.Set("summary", "true")
	}
	if cfg.Details {
		q.Set("details", "true")
	}
	if cfg.Sync {
		q.Set("sync", "true")
		if cfg.SyncTimeout > 0 {
			q.Set("sync_timeout", strconv.FormatInt(cfg.SyncTimeout.Milliseconds(), 10))
		}
	}
	s.putURL = strings.TrimSuffix(base, "/") + "/api/put"
	if len(q) > 0 {
		s.putURL += "?" + q.Encode()
	}
	s.client = cfg.Client
	if s.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxConnsPerHost = s.opts.PoolSize
		tr.MaxIdleConnsPerHost = s.opts.PoolSize
		tr.TLSClientConfig = s.opts.TLS
		tr.DialContext = (&net.Dialer{Timeout: s.opts.ConnectTimeout}).DialContext
		s.client, s.ownHTTP = &http.Client{Transport: tr}, true
	}
	s.w = backend.NewWriter(backend.WriterConfig[item]{
		Store:   "opentsdb",
		Options: s.opts,
		Flush:   s.flush,
		Key:     func(it item) string { return it.key },
		// Size counts points, so that MaxBatchBytes bounds the points of a request.
		Size:          func(it item) int { return len(it.points) },
		MaxBatch:      cfg.MaxBatch,
		MaxBatchBytes: cfg.MaxBatch,
		Classify:      classify,
		// Every point has a timestamp: putting it again stores the same value.
	})
	return s, nil
}

// Prepare accepts on_message_publish at message.publish and nothing else.
func (s *Store) Prepare(r *hook.Rule) (hook.Action, error) {
	if err := tsdb.CheckRule(r); err != nil {
		return nil, err
	}
	return &publish{s: s, rule: r.Name}, nil
}

type publish struct {
	s    *Store
	rule string
}

// Write renders the message's data points and enqueues them; a message its templates do
// not apply to is enqueued as a failure, counted and logged by the writer.
func (a *publish) Write(ctx context.Context, e hook.Event) error {
	m, err := tsdb.PublishedMessage(e)
	if err != nil {
		return err
	}
	return a.s.w.EnqueueContext(ctx, a.s.render(a.rule, m))
}

func (s *Store) render(rule string, m *hook.Message) item {
	fail := func(err error) item {
		return item{key: m.Topic, err: fmt.Errorf("rule %s, message %s on %q: %w", rule, m.ID, m.Topic, err)}
	}
	var tbuf [4]*template.OpenTSDBTemplate
	ts := s.cfg.Templates.Select(tbuf[:0], m.Topic, topic.Match)
	if len(ts) == 0 {
		return fail(errors.New("no template for the topic"))
	}
	v := tsdb.Values(m)
	var pbuf [4]template.DataPoint
	pts := pbuf[:0]
	for _, t := range ts {
		var err error
		if pts, err = t.Render(pts, &v); err != nil {
			return fail(err)
		}
	}
	it := item{key: m.Topic, points: make([][]byte, 0, len(pts))}
	for _, p := range pts {
		jp, err := toJSON(p, m.Timestamp)
		if err != nil {
			return fail(err)
		}
		b, err := json.Marshal(jp)
		if err != nil {
			return fail(err)
		}
		it.points = append(it.points, b)
	}
	return it
}

// toJSON is p as /api/put takes it: the time in milliseconds (the message's when p has
// none). Text that is not valid UTF-8 is refused: JSON would carry it altered.
func toJSON(p template.DataPoint, received time.Time) (jsonPoint, error) {
	at := p.Time
	if at.IsZero() {
		at = received
	}
	if at.IsZero() {
		at = time.Now()
	}
	jp := jsonPoint{Metric: p.Metric, Timestamp: at.UnixMilli(), Value: p.Value, Tags: make(map[string]string, len(p.Tags))}
	if f, ok := p.Value.(float64); ok && (math.IsInf(f, 0) || math.IsNaN(f)) {
		return jp, fmt.Errorf("%w: value %v is not a finite number", template.ErrValueType, f)
	}
	if !utf8.ValidString(p.Metric) {
		return jp, fmt.Errorf("%w: the metric is not valid UTF-8", template.ErrValueType)
	}
	for _, t := range p.Tags {
		if !utf8.ValidString(t.Key) || !utf8.ValidString(t.Value) {
			return jp, fmt.Errorf("%w: tag %q is not valid UTF-8, which JSON would carry altered", template.ErrValueType, t.Key)
		}
		jp.Tags[t.Key] = t.Value
	}
	return jp, nil
}

// statusError is an HTTP answer other than success, with what it means for the request.
type statusError struct {
	code    int
	body    string
	failure backend.Failure
}

func (e *statusError) Error() string {
	return fmt.Sprintf("http %d %s: %s", e.code, http.StatusText(e.code), e.body)
}

func classify(err error) backend.Failure {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.failure
	case errors.Is(err, syscall.ECONNREFUSED):
		return backend.FailRetry
	}
	return backend.FailUnknown // idempotent: retried
}

// failureOf says what an HTTP status means: 413 splits the batch, 429 and 5xx are retried,
// refused credentials or a missing endpoint fail the batch. 400 is handled by flush.
func failureOf(code int) backend.Failure {
	switch {
	case code == http.StatusTooManyRequests || code >= 500:
		return backend.FailRetry
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound:
		return backend.FailBatch
	}
	return backend.FailItem
}

// ref says which item a point of a request came from.
type ref struct{ item, point int }

// flush puts the batch's points in one request: the writer's batches hold MaxBatch points
// at most (WriterConfig.Size counts points, MaxBatchBytes is MaxBatch), but for a lone
// message with more points, which goes alone.
func (s *Store) flush(ctx context.Context, batch []item, res *backend.BatchResult) error {
	var refs []ref
	for i := range batch {
		if batch[i].err != nil {
			res.Fail(i, batch[i].err)
			continue
		}
		for j := range batch[i].points {
			refs = append(refs, ref{i, j})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	return s.put(ctx, batch, refs, res)
}

// put sends the points part refers to. A 400 with details fails the messages of the points
// OpenTSDB refused (recorded in failed); the others are stored.
func (s *Store) put(ctx context.Context, batch []item, part []ref, res *backend.BatchResult) error {
	var body bytes.Buffer
	body.WriteByte('[')
	for k, r := range part {
		if k > 0 {
			body.WriteByte(',')
		}
		body.Write(batch[r.item].points[r.point])
	}
	body.WriteByte(']')
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.putURL, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusBadRequest {
		return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(msg)), failure: failureOf(resp.StatusCode)}
	}
	// Some points were refused, the others stored: never put those again.
	refusedAt, unmatched := refused(batch, part, msg)
	for k, why := range refusedAt {
		r := part[k]
		res.Fail(r.item, fmt.Errorf("opentsdb refused data point %s: %s", batch[r.item].points[r.point], why))
	}
	if unmatched > 0 {
		s.uncounted.Add(uint64(unmatched))
		s.uncountedLog.Add(s.opts.Logger, uint64(unmatched), "opentsdb: refused data points not matched to their messages (set details = true)",
			"answer", strings.TrimSpace(string(msg)))
	}
	return nil
}

// refused reads the body of a 400 answer to the points of part: the index in part of each
// point its details name, with the reason, and how many refused points it could not match
// (those a summary counts, or every point when there is neither summary nor details).
func refused(batch []item, part []ref, body []byte) (at map[int]string, unmatched int) {
	var answer struct {
		Failed *int `json:"failed"`
		Errors []struct {
			Datapoint jsonPoint `json:"datapoint"`
			Error     string    `json:"error"`
		} `json:"errors"`
	}
	_ = json.Unmarshal(body, &answer)
	at = make(map[int]string)
	for _, e := range answer.Errors {
		k := match(batch, part, e.Datapoint, at)
		if k < 0 {
			unmatched++
			continue
		}
		at[k] = e.Error
	}
	switch {
	case len(answer.Errors) > 0:
	case answer.Failed != nil:
		unmatched = *answer.Failed
	default:
		unmatched = len(part)
	}
	return at, unmatched
}

// match returns the index in part of the point dp echoes, not in taken, or -1.
func match(batch []item, part []ref, dp jsonPoint, taken map[int]string) int {
	for k, r := range part {
		if _, ok := taken[k]; ok {
			continue
		}
		var p jsonPoint
		if json.Unmarshal(batch[r.item].points[r.point], &p) != nil {
			continue
		}
		if p.Metric == dp.Metric && p.Timestamp == dp.Timestamp && fmt.Sprint(p.Value) == fmt.Sprint(dp.Value) && sameTags(p.Tags, dp.Tags) {
			return k
		}
	}
	return -1
}

func sameTags(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Ping checks that the server answers an empty /api/put.
func (s *Store) Ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.putURL, strings.NewReader("[]"))
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("opentsdb: ping: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusBadRequest {
		return fmt.Errorf("opentsdb: ping: %s", resp.Status)
	}
	return nil
}

// Flush returns once everything enqueued before it is written or counted.
func (s *Store) Flush(ctx context.Context) error { return s.w.Flush(ctx) }

// Stats returns the write counters. Failed also counts the refused points that could not be
// matched to their messages (Summary without Details, or neither).
func (s *Store) Stats() backend.Stats {
	st := s.w.Stats()
	st.Failed += s.uncounted.Load()
	return st
}

// Close writes out the queue (giving up when ctx is done) and closes idle connections.
func (s *Store) Close(ctx context.Context) error {
	err := s.w.Close(ctx)
	s.uncountedLog.Flush(s.opts.Logger)
	s.once.Do(func() {
		if s.ownHTTP {
			s.client.CloseIdleConnections()
		}
	})
	return err
}
