package testenv

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestInfluxDBHTTPRoundTrip(t *testing.T) {
	t.Parallel()
	c := InfluxDB(t)
	ctx := t.Context()
	line := "msg,topic=a/b qos=1i,payload=\"hi\" 1700000000123"
	resp, err := http.Post(c.HTTPURL+"/write?precision=ms&db="+c.Database, "text/plain", strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("write: %s", resp.Status)
	}
	series, err := c.Query(ctx, c.Database, `SELECT qos, payload, topic FROM msg`)
	if err != nil {
		t.Fatal(err)
	}
	want := `[["2023-11-14T22:13:20.123Z",1,"hi","a/b"]]`
	if got := jsonString(t, series); got != `[{"name":"msg","tags":null,"columns":["time","qos","payload","topic"],"values":`+want+`}]` {
		t.Errorf("read back %s, want values %s", got, want)
	}
}

// Points sent to the UDP listener land in UDPDatabase with millisecond timestamps.
func TestInfluxDBUDPRoundTrip(t *testing.T) {
	t.Parallel()
	c := InfluxDB(t)
	conn, err := net.Dial("udp", c.UDPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprintf(conn, "%s,topic=a/b value=42i 1700000000123\n", c.Measurement); err != nil {
		t.Fatal(err)
	}
	q := `SELECT value FROM "` + c.Measurement + `"`
	var got string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		series, err := c.Query(t.Context(), c.UDPDatabase, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(series) > 0 {
			got = jsonString(t, series[0].Values)
			break
		}
	}
	if want := `[["2023-11-14T22:13:20.123Z",42]]`; got != want {
		t.Errorf("%s in %s = %s, want %s", q, c.UDPDatabase, got, want)
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
