package influx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
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

// MaxDatagram is the most bytes one UDP datagram carries: InfluxDB's UDP listener reads
// datagrams into a 64 KiB buffer, and an IPv4 UDP payload holds 65507 bytes at most.
const MaxDatagram = 65507

// Config configures a Store.
type Config struct {
	// Server is where points go: "host:port" for the UDP line-protocol listener (what EMQX
	// 4.x used; "udp://host:port" too), or an http:// or https:// base URL for the HTTP API.
	Server string
	// Database and RetentionPolicy are /write's db and rp (HTTP, API v1). Database is
	// required for v1.
	Database, RetentionPolicy string
	// Username and Password authenticate HTTP v1 writes (basic auth); empty: none.
	Username, Password string
	// Bucket selects the v2 API (/api/v2/write, InfluxDB 2.x, 1.8+ and VictoriaMetrics):
	// bucket, org and "Authorization: Token <Token>". Empty: v1.
	Bucket, Org, Token string
	// Precision is the unit of the timestamps written: time.Nanosecond, Microsecond,
	// Millisecond, Second, Minute or Hour (v2: Second at most). Zero means time.Millisecond,
	// the spec's UDP setting. Over UDP it must be the listener's precision (the datagram
	// cannot say it). Numeric timestamps taken from payloads are read in this unit.
	Precision time.Duration
	// SetTimestamp stamps a point whose template has no timestamp with the message's time
	// (the spec's set_timestamp); otherwise InfluxDB stamps it on arrival.
	SetTimestamp bool
	// Templates are the payload templates (emqx_backend_influxdb.tmpl), parsed with
	// template.ParseInflux and a TimeUnit of Precision. Required.
	Templates *template.Set[template.InfluxTemplate]
	// Options are the writer's settings; PoolSize is the HTTP connections (or UDP sockets).
	Options backend.Options
	// Client sends the HTTP requests; nil: one of the Store's own, with Options.PoolSize
	// connections and Options.TLS.
	Client *http.Client
}

// Store is an InfluxDB sink: a hook.Backend whose one function, on_message_publish, turns
// each message into points through the templates of its topic and writes them in batches.
// It is safe for concurrent use.
type Store struct {
	cfg      Config
	opts     backend.Options
	udp      bool
	writeURL string
	client   *http.Client
	ownHTTP  bool
	conns    chan net.Conn // UDP sockets, PoolSize of them
	w        *backend.Writer[item]
	// partial counts the points InfluxDB dropped from batches it stored in part (HTTP 400
	// "partial write ... dropped=N"), added to Stats.Failed.
	partial    atomic.Uint64
	partialLog tsdb.RateLog
	once       sync.Once
}

// item is one message's points in line protocol, or why it has none.
type item struct {
	key     string // the topic: one topic's points are written in order
	lines   []byte
	points  int
	stamped bool  // every point has a timestamp: writing it twice changes nothing
	err     error // the template did not apply
}

// Open returns a Store writing to cfg.Server. It does not contact the server (UDP cannot);
// Ping checks an HTTP server.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Templates == nil {
		return nil, fmt.Errorf("influx: %w: no templates (Config.Templates)", hook.ErrConfig)
	}
	if cfg.Precision == 0 {
		cfg.Precision = time.Millisecond
	}
	s := &Store{cfg: cfg, opts: cfg.Options.WithDefaults()}
	server := cfg.Server
	switch {
	case strings.HasPrefix(server, "http://") || strings.HasPrefix(server, "https://"):
		u, err := s.buildURL()
		if err != nil {
			return nil, err
		}
		s.writeURL = u
		s.client = cfg.Client
		if s.client == nil {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.MaxConnsPerHost = s.opts.PoolSize
			tr.MaxIdleConnsPerHost = s.opts.PoolSize
			tr.TLSClientConfig = s.opts.TLS
			tr.DialContext = (&net.Dialer{Timeout: s.opts.ConnectTimeout}).DialContext
			s.client, s.ownHTTP = &http.Client{Transport: tr}, true
		}
	default:
		s.udp = true
		addr := strings.TrimPrefix(server, "udp://")
		if addr == "" {
			return nil, fmt.Errorf("influx: %w: no server", hook.ErrConfig)
		}
		if _, err := precisionName(cfg.Precision, false); err != nil {
			return nil, err
		}
		s.conns = make(chan net.Conn, s.opts.PoolSize)
		for range s.opts.PoolSize {
			c, err := (&net.Dialer{Timeout: s.opts.ConnectTimeout}).DialContext(ctx, "udp", addr)
			if err != nil {
				s.closeConns()
				return nil, fmt.Errorf("influx: %w: udp %s: %w", hook.ErrConfig, addr, err)
			}
			s.conns <- c
		}
	}
	wc := backend.WriterConfig[item]{
		Store:    "influx",
		Options:  s.opts,
		Flush:    s.flush,
		Key:      func(it item) string { return it.key },
		Size:     func(it item) int { return len(it.lines) },
		Classify: classify,
		// Points without a timestamp are stamped by the server on arrival: written twice,
		// they are two points. Those with one are marked for retry by flush itself.
		NotIdempotent: true,
	}
	if s.udp {
		wc.MaxBatchBytes = MaxDatagram
	}
	s.w = backend.NewWriter(wc)
	return s, nil
}

// buildURL returns the write URL of the HTTP API: /write?db=&rp=&precision= (v1) or
// /api/v2/write?bucket=&org=&precision= (v2).
func (s *Store) buildURL() (string, error) {
	c := s.cfg
	q := url.Values{}
	path := "/write"
	v2 := c.Bucket != ""
	p, err := precisionName(c.Precision, v2)
	if err != nil {
		return "", err
	}
	q.Set("precision", p)
	if v2 {
		path = "/api/v2/write"
		q.Set("bucket", c.Bucket)
		if c.Org != "" {
			q.Set("org", c.Org)
		}
	} else {
		if c.Database == "" {
			return "", fmt.Errorf("influx: %w: no database for the HTTP API v1 (or a bucket for v2)", hook.ErrConfig)
		}
		q.Set("db", c.Database)
		if c.RetentionPolicy != "" {
			q.Set("rp", c.RetentionPolicy)
		}
	}
	return strings.TrimSuffix(c.Server, "/") + path + "?" + q.Encode(), nil
}

// precisionName is the API's name of precision: InfluxDB 1.x takes n, u, ms, s, m, h; the
// v2 API ns, us, ms, s.
func precisionName(p time.Duration, v2 bool) (string, error) {
	names := map[time.Duration][2]string{
		time.Nanosecond: {"n", "ns"}, time.Microsecond: {"u", "us"}, time.Millisecond: {"ms", "ms"},
		time.Second: {"s", "s"}, time.Minute: {"m", ""}, time.Hour: {"h", ""},
	}
	n, ok := names[p]
	i := 0
	if v2 {
		i = 1
	}
	if !ok || n[i] == "" {
		return "", fmt.Errorf("influx: %w: precision %v (InfluxDB takes ns, us, ms, s, and for v1 also m and h)", hook.ErrConfig, p)
	}
	return n[i], nil
}

// ParsePrecision reads a precision as EMQX and InfluxDB write it: "n" or "ns", "u" or "us",
// "ms", "s", "m", "h".
func ParsePrecision(s string) (time.Duration, error) {
	switch s {
	case "n", "ns":
		return time.Nanosecond, nil
	case "u", "us", "µs":
		return time.Microsecond, nil
	case "ms", "":
		return time.Millisecond, nil
	case "s":
		return time.Second, nil
	case "m":
		return time.Minute, nil
	case "h":
		return time.Hour, nil
	}
	return 0, fmt.Errorf("influx: %w: precision %q (want n, u, ms, s, m or h)", hook.ErrConfig, s)
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

// Write renders the message's points and enqueues them; a message its templates do not
// apply to is enqueued as a failure, counted and logged by the writer.
func (a *publish) Write(ctx context.Context, e hook.Event) error {
	m, err := tsdb.PublishedMessage(e)
	if err != nil {
		return err
	}
	return a.s.w.EnqueueContext(ctx, a.s.render(a.rule, m))
}

// render makes the item of m.
func (s *Store) render(rule string, m *hook.Message) item {
	it := item{key: m.Topic, stamped: true}
	fail := func(err error) item {
		return item{key: m.Topic, err: fmt.Errorf("rule %s, message %s on %q: %w", rule, m.ID, m.Topic, err)}
	}
	var tbuf [4]*template.InfluxTemplate
	ts := s.cfg.Templates.Select(tbuf[:0], m.Topic, topic.Match)
	if len(ts) == 0 {
		return fail(errors.New("no template for the topic"))
	}
	v := tsdb.Values(m)
	var pbuf [4]template.Point
	pts := pbuf[:0]
	for _, t := range ts {
		var err error
		if pts, err = t.Render(pts, &v); err != nil {
			return fail(err)
		}
	}
	for i := range pts {
		p := &pts[i]
		if p.Time.IsZero() && s.cfg.SetTimestamp {
			p.Time = m.Timestamp
		}
		if p.Time.IsZero() {
			it.stamped = false
		}
		var err error
		if it.lines, err = p.AppendLine(it.lines, s.cfg.Precision); err != nil {
			return fail(err)
		}
	}
	if !utf8.Valid(it.lines) {
		return fail(fmt.Errorf("%w: the point holds invalid UTF-8, which InfluxDB would return altered", template.ErrValueType))
	}
	if s.udp && len(it.lines) > MaxDatagram {
		return fail(fmt.Errorf("%w: the points take %d bytes, more than one UDP datagram carries (%d); a point is never split", template.ErrValueType, len(it.lines), MaxDatagram))
	}
	it.points = len(pts)
	return it
}

// statusError is an HTTP answer other than success, with what it means for the batch.
type statusError struct {
	code    int
	body    string
	failure backend.Failure
}

func (e *statusError) Error() string {
	return fmt.Sprintf("http %d %s: %s", e.code, http.StatusText(e.code), e.body)
}

// classify: status errors say; a refused connection wrote nothing; anything else during a
// request may have been written.
func classify(err error) backend.Failure {
	var se *statusError
	switch {
	case errors.As(err, &se):
		return se.failure
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, errNotSent):
		return backend.FailRetry
	}
	return backend.FailUnknown
}

var errNotSent = errors.New("not sent")

var droppedRE = regexp.MustCompile(`dropped=(\d+)`)

// flush writes the batch's points: one datagram (UDP) or one request (HTTP).
func (s *Store) flush(ctx context.Context, batch []item, res *backend.BatchResult) error {
	var body []byte
	good := make([]int, 0, len(batch))
	for i := range batch {
		if batch[i].err != nil {
			res.Fail(i, batch[i].err)
			continue
		}
		good = append(good, i)
	}
	if len(good) == 0 {
		return nil
	}
	if len(good) == 1 {
		body = batch[good[0]].lines
	} else {
		for _, i := range good {
			body = append(body, batch[i].lines...)
		}
	}
	if s.udp {
		return s.send(ctx, body)
	}
	err := s.post(ctx, body)
	var se *statusError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &se) && se.code == http.StatusBadRequest && strings.Contains(se.body, "partial write"):
		// InfluxDB stored the other points: retrying them would duplicate those it stamped.
		if len(good) == 1 {
			res.Fail(good[0], err)
			return nil
		}
		n := len(good)
		if m := droppedRE.FindStringSubmatch(se.body); m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		s.partial.Add(uint64(n))
		s.partialLog.Add(s.opts.Logger, uint64(n), "influx: partial write: InfluxDB dropped points of a batch and stored the others",
			"points", pointCount(batch, good), "error", err)
		return nil
	case classify(err) == backend.FailUnknown:
		// Points with a timestamp overwrite themselves: those may be written again.
		for _, i := range good {
			if batch[i].stamped {
				res.Retry(i, err)
			}
		}
	}
	return err
}

func pointCount(batch []item, good []int) int {
	n := 0
	for _, i := range good {
		n += batch[i].points
	}
	return n
}

// send writes body as one datagram.
func (s *Store) send(ctx context.Context, body []byte) error {
	var c net.Conn
	select {
	case c = <-s.conns:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", errNotSent, ctx.Err())
	}
	defer func() { s.conns <- c }()
	if _, err := c.Write(body); err != nil {
		return fmt.Errorf("%w: udp: %w", errNotSent, err) // a datagram goes whole or not at all
	}
	return nil
}

// post sends body to the write endpoint.
func (s *Store) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.writeURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	switch {
	case s.cfg.Token != "":
		req.Header.Set("Authorization", "Token "+s.cfg.Token)
	case s.cfg.Username != "":
		req.SetBasicAuth(s.cfg.Username, s.cfg.Password)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return &statusError{code: resp.StatusCode, body: strings.TrimSpace(string(msg)), failure: failureOf(resp.StatusCode)}
}

// failureOf says what an HTTP status means for the batch: 413 and other 4xx split it (a bad
// point fails alone), 429 and 5xx are retried, and a missing database or refused credentials
// fail it whole.
func failureOf(code int) backend.Failure {
	switch {
	case code == http.StatusTooManyRequests || code >= 500:
		return backend.FailRetry
	case code == http.StatusUnauthorized || code == http.StatusForbidden || code == http.StatusNotFound:
		return backend.FailBatch
	}
	return backend.FailItem // 400 (the whole request refused), 413, ...
}

// Ping checks that the HTTP server answers /ping (a UDP server cannot be checked).
func (s *Store) Ping(ctx context.Context) error {
	if s.udp {
		return nil
	}
	u, _ := url.Parse(s.writeURL)
	u.Path, u.RawQuery = "/ping", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Errorf("influx: ping: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("influx: ping: %s", resp.Status)
	}
	return nil
}

// Flush returns once everything enqueued before it is written or counted.
func (s *Store) Flush(ctx context.Context) error { return s.w.Flush(ctx) }

// Stats returns the write counters. Failed also counts the points InfluxDB dropped from
// batches it stored in part (which messages they came from, it does not say).
func (s *Store) Stats() backend.Stats {
	st := s.w.Stats()
	st.Failed += s.partial.Load()
	return st
}

// Close writes out the queue (giving up when ctx is done) and closes the connections.
func (s *Store) Close(ctx context.Context) error {
	err := s.w.Close(ctx)
	s.partialLog.Flush(s.opts.Logger)
	s.once.Do(func() {
		if s.udp {
			s.closeConns()
		} else if s.ownHTTP {
			s.client.CloseIdleConnections()
		}
	})
	return err
}

func (s *Store) closeConns() {
	for {
		select {
		case c := <-s.conns:
			c.Close()
		default:
			return
		}
	}
}
