package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// InfluxConfig locates InfluxDB 1.x and the parts of it a test owns.
//
// The UDP listener writes every point it receives into one database, UDPDatabase, with
// millisecond precision (as the spec configures it), so UDP tests share that database and keep
// apart by measurement names: each test gets Measurement, a fresh name to use as is or as a
// prefix.
type InfluxConfig struct {
	// HTTPURL is the base URL of the HTTP API, e.g. http://127.0.0.1:8086.
	HTTPURL string
	// Database is a fresh database of the test's own, dropped when the test ends.
	Database string
	// UDPAddr is the host:port of the UDP line-protocol listener.
	UDPAddr string
	// UDPDatabase is the database the UDP listener writes to ("emqx"), shared by all tests.
	UDPDatabase string
	// Measurement is a fresh measurement name (or prefix) of the test's own; series in
	// UDPDatabase whose measurement starts with it are dropped when the test ends.
	Measurement string
}

// InfluxDB returns InfluxDB 1.x with a fresh HTTP database and measurement name; the server is
// scripts/services' influxdb (MQTTSTORE_INFLUXDB_URL, default http://127.0.0.1:8086;
// MQTTSTORE_INFLUXDB_UDP_ADDR, default 127.0.0.1:8089; MQTTSTORE_INFLUXDB_UDP_DATABASE, default
// emqx).
func InfluxDB(t testing.TB) InfluxConfig {
	t.Helper()
	c := InfluxConfig{
		HTTPURL:     strings.TrimSuffix(Getenv("MQTTSTORE_INFLUXDB_URL", "http://127.0.0.1:8086"), "/"),
		Database:    Name(t, 48),
		UDPAddr:     Getenv("MQTTSTORE_INFLUXDB_UDP_ADDR", "127.0.0.1:8089"),
		UDPDatabase: Getenv("MQTTSTORE_INFLUXDB_UDP_DATABASE", "emqx"),
		Measurement: Name(t, 48),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := httpStatus(ctx, http.MethodGet, c.HTTPURL+"/ping", "", http.StatusNoContent); err != nil {
		Unavailable(t, "influxdb", err)
	}
	// Names come from Name: letters, digits and '_' only.
	if _, err := c.Query(ctx, "", `CREATE DATABASE "`+c.Database+`"`); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Query(ctx, "", `DROP DATABASE "`+c.Database+`"`); err != nil {
			t.Errorf("testenv: %v", err)
		}
		if _, err := c.Query(ctx, c.UDPDatabase, `DROP SERIES FROM /^`+c.Measurement+`/`); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return c
}

// InfluxSeries is one series of an InfluxQL result. Numbers in Values are json.Number, so
// integers keep their precision; time is an RFC 3339 string.
type InfluxSeries struct {
	Name    string            `json:"name"`
	Tags    map[string]string `json:"tags"`
	Columns []string          `json:"columns"`
	Values  [][]any           `json:"values"`
}

// Query runs the InfluxQL statement q against database db (empty for none) over HTTP and
// returns the series of its result.
func (c InfluxConfig) Query(ctx context.Context, db, q string) ([]InfluxSeries, error) {
	form := url.Values{"q": {q}}
	if db != "" {
		form.Set("db", db)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.HTTPURL+"/query", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("influxdb query %q: %w", q, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxdb query %q: %w", q, err)
	}
	defer resp.Body.Close()
	var body struct {
		Error   string `json:"error"`
		Results []struct {
			Error  string         `json:"error"`
			Series []InfluxSeries `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("influxdb query %q: %s: %w", q, resp.Status, err)
	}
	switch {
	case body.Error != "":
		return nil, fmt.Errorf("influxdb query %q: %s", q, body.Error)
	case len(body.Results) != 1:
		return nil, fmt.Errorf("influxdb query %q: %d results, want 1", q, len(body.Results))
	case body.Results[0].Error != "":
		return nil, fmt.Errorf("influxdb query %q: %s", q, body.Results[0].Error)
	}
	return body.Results[0].Series, nil
}

// httpStatus sends a request with body (none if empty) and checks the response status.
func httpStatus(ctx context.Context, method, url, body string, want int) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, msg)
	}
	return nil
}
