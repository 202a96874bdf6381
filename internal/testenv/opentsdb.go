package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// OpenTSDBConfig locates the OpenTSDB-protocol server (VictoriaMetrics) and the metric names a
// test owns.
//
// The server accepts OpenTSDB's /api/put (JSON points) but not its query API; points are read
// back with Export, through VictoriaMetrics' own API. Unlike OpenTSDB, /api/put answers 204 No
// Content whatever it was sent, with no summary or details body, and drops malformed points
// (it only logs them).
type OpenTSDBConfig struct {
	// Addr is the host:port of the OpenTSDB HTTP listener, as a store's "server" setting.
	Addr string
	// PutURL is the full URL of /api/put.
	PutURL string
	// QueryURL is the base URL of VictoriaMetrics' HTTP API, for reading back.
	QueryURL string
	// MetricPrefix is a fresh prefix of the test's own, ending in '.'; series whose metric
	// starts with it are deleted when the test ends.
	MetricPrefix string
}

// OpenTSDB returns the OpenTSDB-protocol server (MQTTSTORE_OPENTSDB_URL, default
// http://127.0.0.1:4242; read back through MQTTSTORE_VICTORIAMETRICS_URL, default
// http://127.0.0.1:8428) and a fresh metric prefix; scripts/services' victoriametrics.
func OpenTSDB(t testing.TB) OpenTSDBConfig {
	t.Helper()
	put := strings.TrimSuffix(Getenv("MQTTSTORE_OPENTSDB_URL", "http://127.0.0.1:4242"), "/")
	u, err := url.Parse(put)
	if err != nil {
		t.Fatalf("testenv: MQTTSTORE_OPENTSDB_URL: %v", err)
	}
	c := OpenTSDBConfig{
		Addr:         u.Host,
		PutURL:       put + "/api/put",
		QueryURL:     strings.TrimSuffix(Getenv("MQTTSTORE_VICTORIAMETRICS_URL", "http://127.0.0.1:8428"), "/"),
		MetricPrefix: Name(t, 48) + ".",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := httpStatus(ctx, http.MethodGet, c.QueryURL+"/health", "", http.StatusOK); err != nil {
		Unavailable(t, "victoriametrics", err)
	}
	// An empty batch checks the put listener without writing anything.
	if err := httpStatus(ctx, http.MethodPost, c.PutURL, "[]", http.StatusNoContent); err != nil {
		Unavailable(t, "victoriametrics", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		match := url.QueryEscape(`{__name__=~"` + strings.ReplaceAll(c.MetricPrefix, ".", `\\.`) + `.*"}`)
		if err := httpStatus(ctx, http.MethodPost, c.QueryURL+"/api/v1/admin/tsdb/delete_series?match[]="+match, "", http.StatusNoContent); err != nil {
			t.Errorf("testenv: delete series %s*: %v", c.MetricPrefix, err)
		}
	})
	return c
}

// OpenTSDBSeries is one series as exported by the server: Timestamps in milliseconds.
type OpenTSDBSeries struct {
	Metric     string
	Tags       map[string]string
	Values     []float64
	Timestamps []int64
}

// Export returns the series of metric stored so far. It first flushes the server's ingestion
// buffers, which hastens but does not guarantee that points put before the call are included:
// a new series becomes searchable when VictoriaMetrics (1.79) flushes its index, up to a few
// seconds later on a loaded machine. Read until the expected count, or a deadline.
func (c OpenTSDBConfig) Export(ctx context.Context, metric string) ([]OpenTSDBSeries, error) {
	if err := httpStatus(ctx, http.MethodGet, c.QueryURL+"/internal/force_flush", "", http.StatusOK); err != nil {
		return nil, fmt.Errorf("opentsdb export %s: %w", metric, err)
	}
	selector, _ := json.Marshal(metric) // a JSON string is a valid MetricsQL string literal
	form := url.Values{"match[]": {`{__name__=` + string(selector) + `}`}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.QueryURL+"/api/v1/export", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("opentsdb export %s: %w", metric, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("opentsdb export %s: %w", metric, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("opentsdb export %s: %s", metric, resp.Status)
	}
	var out []OpenTSDBSeries
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() { // one JSON object per line and series
		var line struct {
			Metric     map[string]string `json:"metric"`
			Values     []float64         `json:"values"`
			Timestamps []int64           `json:"timestamps"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			return nil, fmt.Errorf("opentsdb export %s: %w", metric, err)
		}
		s := OpenTSDBSeries{Metric: line.Metric["__name__"], Tags: line.Metric, Values: line.Values, Timestamps: line.Timestamps}
		delete(s.Tags, "__name__")
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("opentsdb export %s: %w", metric, err)
	}
	return out, nil
}
