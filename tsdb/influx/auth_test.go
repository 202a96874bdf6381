package influx

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// privateInflux starts an InfluxDB 1.x of the test's own with authentication on (the shared
// one has it off), on free loopback ports, with an admin user; it returns its URL.
func privateInflux(t *testing.T, admin, password string) string {
	t.Helper()
	bin, err := exec.LookPath("influxd")
	if err != nil {
		testenv.Unavailable(t, "influxdb", err)
	}
	dir := t.TempDir()
	port := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	httpAddr := port()
	conf := fmt.Sprintf(`reporting-disabled = true
bind-address = %q
[meta]
  dir = %q
[data]
  dir = %q
  wal-dir = %q
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = %q
  auth-enabled = true
  log-enabled = false
[continuous_queries]
  enabled = false
`, port(), filepath.Join(dir, "meta"), filepath.Join(dir, "data"), filepath.Join(dir, "wal"), httpAddr)
	if err := os.WriteFile(filepath.Join(dir, "influxdb.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "run", "-config", filepath.Join(dir, "influxdb.conf"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	base := "http://" + httpAddr
	testenv.Eventually(t, "the private influxd answers /ping", func() bool {
		select {
		case <-exited:
			t.Fatalf("influxd exited: %s", out.String())
		default:
		}
		resp, err := http.Get(base + "/ping")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNoContent
	})
	// With auth on and no user yet, InfluxDB takes the first admin without credentials.
	influxQuery(t, base, "", fmt.Sprintf(`CREATE USER %q WITH PASSWORD '%s' WITH ALL PRIVILEGES`, admin, password))
	return base
}

// influxQuery runs an InfluxQL statement as userinfo ("user:password", or none).
func influxQuery(t *testing.T, base, userinfo, q string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(url.Values{"q": {q}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user, pw, ok := strings.Cut(userinfo, ":"); ok {
		req.SetBasicAuth(user, pw)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body bytes.Buffer
	body.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || strings.Contains(body.String(), `"error"`) {
		t.Fatalf("%s: %s %s", q, resp.Status, body.String())
	}
}

// TestAuth: HTTP v1 writes authenticated with the pool's username and password, on an
// InfluxDB with authentication on, by a user who may only write to the database: the spec's
// example is stored. With a wrong password InfluxDB answers 401: the message fails (counted,
// not retried) and nothing is stored.
func TestAuth(t *testing.T) {
	base := privateInflux(t, "admin", "adminpw")
	influxQuery(t, base, "admin:adminpw", `CREATE DATABASE emqx`)
	influxQuery(t, base, "admin:adminpw", `CREATE USER writer WITH PASSWORD 'w p\'w'`)
	influxQuery(t, base, "admin:adminpw", `GRANT WRITE ON emqx TO writer`)
	admin := testenv.InfluxConfig{HTTPURL: strings.Replace(base, "http://", "http://admin:adminpw@", 1)}

	for _, tc := range []struct {
		password string
		stored   int
	}{{"wrong", 0}, {"w p'w", 2}} {
		b := openSpec(t, map[string]string{"server": base, "database": "emqx", "username": "writer", "password": tc.password,
			"template": "example.tmpl"})
		publishAll(t, publisher(t, b, "#"), msg("sample", specPayload))
		flush(t, b)
		st := b.(backend.StatsReporter).Stats()
		if tc.stored == 0 && (st.Success != 0 || st.Failed != 1 || st.Retried != 0) {
			t.Errorf("password %q: Stats %+v, want 1 failed, not retried", tc.password, st)
		}
		if tc.stored > 0 && (st.Success != 1 || st.Failed != 0) {
			t.Errorf("password %q: Stats %+v, want 1 stored", tc.password, st)
		}
		if got := rows(t, admin, "emqx", "sample", tc.stored); len(got) != tc.stored {
			t.Errorf("password %q: %d points stored, want %d: %v", tc.password, len(got), tc.stored, got)
		}
	}
}
