// Command e2ebench measures MQTT brokers with persistence from the outside, as a user feels
// them: each broker runs as a child process on loopback, real MQTT clients (paho) drive it
// over TCP, and what it stored is read back from its database afterwards, so a fast run that
// stored nothing cannot count.
//
// Targets: the example broker (examples/broker) on each store (sqlite, postgres, mysql,
// redis); plain mochi; mochi with its own storage hooks (mochi-pebble, mochi-badger,
// mochi-bolt, mochi-redis), which is what a mochi user picks instead; and mosquitto with
// persistence. Workloads (issue 16):
//
//	publish    QoS 1 publishers, each waiting for its PUBACK before the next message
//	subscribe  the same with one QoS 1 subscriber on the whole tree, acking
//	retained   retained messages on distinct topics, then many subscribers on the whole tree
//	backlog    messages for an offline persistent session; the broker restarts; it drains
//
// For each it reports msg/s (deliveries/s for retained and backlog), the PUBACK latency p50
// and p99, the broker's CPU seconds per 100k messages, its peak RSS and the count stored.
//
//	scripts/services up
//	eval "$(scripts/services env)"
//	cd examples/e2ebench && go run . -targets mochi,sqlite,postgres -messages 200000
//
// It is a module of its own so that mochi's storage hooks (pebble, badger, bolt, go-redis v8)
// stay out of the library's dependencies.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		if err := serve(os.Args[2:]); err != nil {
			log.Fatal(err)
		}
		return
	}
	var c config
	targets := flag.String("targets", "mochi,sqlite,postgres,mysql,redis,mochi-pebble,mochi-badger,mochi-redis,mosquitto", "brokers to measure, comma-separated")
	names := flag.String("workloads", "publish,subscribe,retained,backlog", "workloads, comma-separated")
	runs := flag.Int("runs", 1, "runs of each workload on each target (alternating the targets' order); the table shows medians")
	repo := flag.String("repo", "../..", "the mqttstore repository, to build examples/broker from")
	flag.IntVar(&c.messages, "messages", 200000, "messages published in publish and subscribe")
	flag.IntVar(&c.publishers, "publishers", 8, "publishing clients")
	flag.IntVar(&c.payload, "payload", 200, "payload bytes")
	flag.IntVar(&c.retained, "retained", 10000, "retained topics in retained")
	flag.IntVar(&c.subscribers, "subscribers", 100, "subscribers in retained")
	flag.IntVar(&c.backlog, "backlog", 100000, "messages waiting for the client in backlog")
	flag.DurationVar(&c.timeout, "timeout", 5*time.Minute, "how long a workload may take")
	flag.Parse()
	if err := run(&c, strings.Split(*targets, ","), strings.Split(*names, ","), *runs, *repo); err != nil {
		log.Fatal(err)
	}
}

func run(c *config, targets, names []string, runs int, repo string) error {
	dir, err := os.MkdirTemp("", "e2ebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// Mosquitto started as root runs as user mosquitto, which must reach its directory.
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	e := &env{
		dir:      dir,
		broker:   filepath.Join(dir, "broker"),
		postgres: getenv("MQTTSTORE_POSTGRES_URL", "postgres://mqttstore:public@127.0.0.1:5432/mqttstore?sslmode=disable"),
		mysql:    getenv("MQTTSTORE_MYSQL_DSN", "mqttstore:public@tcp(127.0.0.1:3306)/"),
		redis:    getenv("MQTTSTORE_REDIS_ADDR", "127.0.0.1:6379"),
	}
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	build := exec.Command("go", "build", "-o", e.broker, "./examples/broker")
	build.Dir, build.Stderr = repo, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building examples/broker in %s: %w", repo, err)
	}
	var chosen []workload
	for _, n := range names {
		i := slices.IndexFunc(workloads, func(w workload) bool { return w.name == n })
		if i < 0 {
			return fmt.Errorf("unknown workload %q", n)
		}
		chosen = append(chosen, workloads[i])
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("e2ebench: %d CPUs, %s, load %s", runtime.NumCPU(), runtime.GOOS+"/"+runtime.GOARCH, load)
	fmt.Printf("%d publishers, %d-byte payloads, QoS 1; publish/subscribe %d messages, retained %d topics x %d subscribers, backlog %d\n\n",
		c.publishers, c.payload, c.messages, c.retained, c.subscribers, c.backlog)

	ctx := context.Background()
	results := map[[2]string][]result{}
	for _, w := range chosen {
		for r := range runs {
			order := slices.Clone(targets)
			if r%2 == 1 {
				slices.Reverse(order)
			}
			for _, name := range order {
				res, err := e.once(ctx, c, w, name)
				if err != nil {
					fmt.Fprintf(os.Stderr, "%s on %s: %v\n", w.name, name, err)
					res.err = err
				}
				results[[2]string{w.name, name}] = append(results[[2]string{w.name, name}], res)
			}
		}
	}
	fmt.Println("| workload | broker | msg/s | PUBACK p50 | p99 | broker CPU-s per 100k | peak RSS MB | stored / expected | duplicates | failed runs |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, w := range chosen {
		for _, name := range targets {
			fmt.Println(row(w.name, name, results[[2]string{w.name, name}]))
		}
	}
	return nil
}

// once measures one workload on a fresh broker of the target, then counts what it stored.
func (e *env) once(ctx context.Context, c *config, w workload, name string) (result, error) {
	t, err := e.newTarget(ctx, name)
	if err != nil {
		return result{}, err
	}
	defer t.drop(ctx)
	b, err := t.start("")
	if err != nil {
		return result{}, err
	}
	restart := func() (*proc, error) {
		if err := b.stop(); err != nil {
			return nil, err
		}
		nb, err := t.start(b.addr)
		if err == nil {
			b = nb
		}
		return nb, err
	}
	res, err := w.run(c, b, restart)
	if serr := b.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return res, err
	}
	res.stored, err = t.stored(ctx, w.prefix, w.retained)
	return res, err
}

// row is the table line of a workload on a target: the median of each figure over the runs
// that completed.
func row(workload, name string, rs []result) string {
	var failed []string
	for _, r := range rs {
		if r.err != nil {
			failed = append(failed, r.err.Error())
		}
	}
	notes := strings.Join(failed, "; ")
	rs = slices.DeleteFunc(slices.Clone(rs), func(r result) bool { return r.err != nil })
	if len(rs) == 0 {
		return fmt.Sprintf("| %s | %s | | | | | | | | %s |", workload, name, notes)
	}
	rate := median(rs, func(r result) float64 { return float64(r.ops) / r.elapsed.Seconds() })
	cpu := median(rs, func(r result) float64 { return r.cpu / float64(r.ops) * 100000 })
	rss := median(rs, func(r result) float64 { return r.peakMB })
	p50, p99 := "", ""
	if len(rs[0].lat) > 0 {
		p50 = fmt.Sprintf("%.2f ms", median(rs, func(r result) float64 { return pct(r.lat, 0.50) }))
		p99 = fmt.Sprintf("%.2f ms", median(rs, func(r result) float64 { return pct(r.lat, 0.99) }))
	}
	stored := "n/a"
	if rs[0].stored >= 0 {
		stored = fmt.Sprintf("%d / %d", rs[0].stored, rs[0].expected)
	}
	return fmt.Sprintf("| %s | %s | %.0f | %s | %s | %.2f | %.0f | %s | %d | %s |", workload, name, rate, p50, p99, cpu, rss, stored, rs[0].dups, notes)
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// pct is the q-quantile of lat, in milliseconds.
func pct(lat []time.Duration, q float64) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1))]) / float64(time.Millisecond)
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
