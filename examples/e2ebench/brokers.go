package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib"
	goredis "github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite"
)

// A target is a broker to measure, started as a child process on a namespace of its own (a
// SQLite file, a PostgreSQL schema, a MySQL database, a Redis key prefix, a data directory),
// so that what it stored can be counted and nothing else is touched.
type target struct {
	name string
	// args returns the command line of the broker listening on addr.
	args func(addr string) []string
	// stored counts the messages (retained: the retained messages) stored under the topic
	// prefix; -1 when the broker stores no published message.
	stored func(ctx context.Context, prefix string, retained bool) (int64, error)
	// drop removes the namespace.
	drop func(ctx context.Context) error
}

// env holds what targets need: the binaries and the services' addresses.
type env struct {
	self, broker string // this program (for "serve"), the example broker
	dir          string // scratch directory
	postgres     string // URL
	mysql        string // DSN without a database
	redis        string // host:port
}

func randName() string {
	var b [4]byte
	rand.Read(b[:])
	return "bench_" + hex.EncodeToString(b[:])
}

// newTarget prepares a fresh namespace for the named target.
func (e *env) newTarget(ctx context.Context, name string) (*target, error) {
	ns := randName()
	t := &target{name: name, drop: func(context.Context) error { return nil },
		stored: func(context.Context, string, bool) (int64, error) { return -1, nil }}
	switch name {
	case "mochi":
		t.args = func(addr string) []string { return []string{e.self, "serve", "-listen", addr} }
	case "mochi-pebble", "mochi-badger", "mochi-bolt":
		dir := filepath.Join(e.dir, ns)
		t.args = func(addr string) []string {
			return []string{e.self, "serve", "-listen", addr, "-hook", strings.TrimPrefix(name, "mochi-"), "-dir", dir}
		}
		t.drop = func(context.Context) error { return os.RemoveAll(dir) }
	case "mochi-redis":
		t.args = func(addr string) []string {
			return []string{e.self, "serve", "-listen", addr, "-hook", "redis", "-redis", e.redis, "-redis-prefix", ns + ":"}
		}
		t.drop = func(ctx context.Context) error { return dropRedis(ctx, e.redis, ns+":") }
	case "mosquitto":
		dir := filepath.Join(e.dir, ns)
		// Mosquitto started as root runs as user mosquitto, which must write its
		// persistence file here.
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return nil, err
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			return nil, err
		}
		t.args = func(addr string) []string {
			_, port, _ := net.SplitHostPort(addr)
			conf := filepath.Join(dir, "mosquitto.conf")
			os.WriteFile(conf, []byte("listener "+port+" 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location "+dir+"/\nmax_queued_messages 0\nmax_inflight_messages 0\nlog_type error\n"), 0o644)
			return []string{"mosquitto", "-c", conf}
		}
		t.drop = func(context.Context) error { return os.RemoveAll(dir) }
	case "sqlite":
		dir := filepath.Join(e.dir, ns)
		file := filepath.Join(dir, "mqttstore.db")
		t.args = func(addr string) []string { return e.brokerArgs(addr, "sqlite", file) }
		t.stored = sqlCount("sqlite", file)
		t.drop = func(context.Context) error { return os.RemoveAll(dir) }
	case "postgres":
		db, err := sql.Open("pgx", e.postgres)
		if err != nil {
			return nil, err
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, "CREATE SCHEMA "+ns); err != nil {
			return nil, fmt.Errorf("postgres: %w", err)
		}
		u, err := url.Parse(e.postgres)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", ns)
		u.RawQuery = q.Encode()
		dsn := u.String()
		t.args = func(addr string) []string { return e.brokerArgs(addr, "postgres", dsn) }
		t.stored = sqlCount("pgx", dsn)
		t.drop = func(ctx context.Context) error { return sqlExec(ctx, "pgx", e.postgres, "DROP SCHEMA "+ns+" CASCADE") }
	case "mysql":
		if err := sqlExec(ctx, "mysql", e.mysql, "CREATE DATABASE "+ns); err != nil {
			return nil, fmt.Errorf("mysql: %w", err)
		}
		dsn := e.mysql + ns
		t.args = func(addr string) []string { return e.brokerArgs(addr, "mysql", dsn) }
		t.stored = sqlCount("mysql", dsn)
		t.drop = func(ctx context.Context) error { return sqlExec(ctx, "mysql", e.mysql, "DROP DATABASE "+ns) }
	case "redis":
		conf, err := e.redisConfig(ctx, ns+":")
		if err != nil {
			return nil, err
		}
		t.args = func(addr string) []string {
			return []string{e.broker, "-listen", addr, "-config", conf, "-node", "bench", "-log-level", "error"}
		}
		t.stored = redisCount(e.redis, ns+":")
		t.drop = func(ctx context.Context) error { return dropRedis(ctx, e.redis, ns+":") }
	default:
		return nil, fmt.Errorf("unknown target %q", name)
	}
	return t, nil
}

func (e *env) brokerArgs(addr, store, dsn string) []string {
	return []string{e.broker, "-listen", addr, "-store", store, "-dsn", dsn, "-node", "bench", "-log-level", "error"}
}

// redisConfig writes the broker's Redis rules with the benchmark's server and key prefix.
func (e *env) redisConfig(ctx context.Context, prefix string) (string, error) {
	out, err := exec.CommandContext(ctx, e.broker, "-print-config", "-store", "redis").Output()
	if err != nil {
		return "", fmt.Errorf("redis rules: %w", err)
	}
	conf := strings.Replace(string(out), "pool1.server = 127.0.0.1:6379", "pool1.server = "+e.redis, 1)
	conf += "\nbackend.redis.pool1.prefix = " + prefix + "\n"
	file := filepath.Join(e.dir, strings.TrimSuffix(prefix, ":")+".conf")
	return file, os.WriteFile(file, []byte(conf), 0o644)
}

func sqlExec(ctx context.Context, driver, dsn, q string) error {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, q)
	return err
}

// sqlCount counts the rows of the EMQX tables mqtt_msg or mqtt_retain under a topic prefix.
func sqlCount(driver, dsn string) func(context.Context, string, bool) (int64, error) {
	return func(ctx context.Context, prefix string, retained bool) (int64, error) {
		db, err := sql.Open(driver, dsn)
		if err != nil {
			return 0, err
		}
		defer db.Close()
		table := "mqtt_msg"
		if retained {
			table = "mqtt_retain"
		}
		q := "SELECT count(*) FROM " + table + " WHERE topic LIKE ?"
		if driver == "pgx" {
			q = strings.Replace(q, "?", "$1", 1)
		}
		var n int64
		err = db.QueryRowContext(ctx, q, prefix+"%").Scan(&n)
		return n, err
	}
}

// redisCount counts the messages in the topic sets mqtt:msg:<topic> (or the retained hashes
// mqtt:retain:<topic>) under a topic prefix.
func redisCount(addr, keyPrefix string) func(context.Context, string, bool) (int64, error) {
	return func(ctx context.Context, prefix string, retained bool) (int64, error) {
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		defer c.Close()
		match := keyPrefix + "mqtt:msg:" + prefix + "*"
		if retained {
			match = keyPrefix + "mqtt:retain:" + prefix + "*"
		}
		var n int64
		iter := c.Scan(ctx, 0, match, 1000).Iterator()
		for iter.Next(ctx) {
			if retained {
				n++
				continue
			}
			k, err := c.ZCard(ctx, iter.Val()).Result()
			if err != nil {
				return 0, err
			}
			n += k
		}
		return n, iter.Err()
	}
}

func dropRedis(ctx context.Context, addr, keyPrefix string) error {
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	defer c.Close()
	iter := c.Scan(ctx, 0, keyPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		if err := c.Del(ctx, iter.Val()).Err(); err != nil {
			return err
		}
	}
	return iter.Err()
}

// proc is a running broker.
type proc struct {
	cmd  *exec.Cmd
	addr string
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// start starts the target's broker on addr ("" for a free port) and waits until it accepts
// connections.
func (t *target) start(addr string) (*proc, error) {
	if addr == "" {
		var err error
		if addr, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	args := t.args(addr)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", t.name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			p := &proc{cmd: cmd, addr: addr}
			go func() { <-exited }()
			return p, nil
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("%s exited at start: %v", t.name, err)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			return nil, fmt.Errorf("%s: not listening on %s after 30s", t.name, addr)
		}
	}
}

// stop asks the broker to shut down (SIGTERM: the example broker writes out its queue) and
// waits for it to exit.
func (p *proc) stop() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := p.cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return nil
		}
	}
	p.cmd.Process.Kill()
	return errors.New("broker did not exit within 60s of SIGTERM; killed")
}

// usage is what the broker process has used so far: CPU seconds and peak RSS.
type usage struct {
	cpu    float64 // user + system seconds
	peakMB float64
}

func (p *proc) usage() (usage, error) {
	pid := strconv.Itoa(p.cmd.Process.Pid)
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return usage{}, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	u := usage{cpu: (ut + st) / clockTicks}
	status, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return usage{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			u.peakMB = kb / 1024
		}
	}
	return u, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux on every
// architecture Go supports.
const clockTicks = 100
