// Command broker is an MQTT broker (mochi-mqtt) that records client state, subscriptions,
// messages, retained messages and acknowledgements in SQLite, PostgreSQL, MySQL or Redis, as
// the EMQX 4.x backends do, and delivers offline and retained messages from there.
//
// With no flags it listens on :1883 and stores into the SQLite file data/mqttstore.db:
//
//	go run ./examples/broker
//
// Another database, with the same rules:
//
//	go run ./examples/broker -store postgres -dsn 'postgres://user:pw@localhost/mqtt'
//	go run ./examples/broker -store mysql -dsn 'user:pw@tcp(localhost:3306)/mqtt'
//
// Redis, with the rules of the EMQX Redis backend (one-to-one messages under queue/,
// one-to-many under pubsub/) and its SUB/UNSUB channel, mqtt_channel:
//
//	go run ./examples/broker -store redis -dsn localhost:6379
//
// Rules and connections from an EMQX 4.x backend configuration (backend.pgsql.pool1.server
// = ..., backend.pgsql.hook.message.publish.1 = {...}); -print-config prints the default one:
//
//	go run ./examples/broker -config emqx_backend_pgsql.conf
//
// SIGINT or SIGTERM disconnects the clients and writes out what is queued before exiting.
// Every client may connect, publish and subscribe: add an auth hook before production use.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	var cfg config
	var level slog.Level
	var shutdown time.Duration
	var printConfig bool
	hostname, _ := os.Hostname()
	flag.StringVar(&cfg.Listen, "listen", ":1883", "MQTT listener address")
	flag.StringVar(&cfg.Node, "node", "mqttstore@"+hostname, "node name recorded with client states and messages")
	flag.StringVar(&cfg.ConfigFile, "config", "", "EMQX 4.x backend configuration file (default: SQLite in data/, the EMQX MySQL/PostgreSQL rules)")
	flag.StringVar(&cfg.Store, "store", "", "replace the configuration's store: sqlite, postgres, mysql, redis or dynamo (each with the EMQX rules of its backend), or any store registered with backend.Register")
	flag.StringVar(&cfg.DSN, "dsn", "", "replace the configuration's connection: a SQLite file, a PostgreSQL URL, a MySQL DSN or Redis host:port")
	flag.BoolVar(&cfg.EnsureSchema, "ensure-schema", true, "create the tables that are missing")
	flag.DurationVar(&shutdown, "shutdown-timeout", 10*time.Second, "how long shutting down may take to write out queued writes")
	flag.TextVar(&level, "log-level", slog.LevelInfo, "log level: debug, info, warn or error")
	flag.BoolVar(&printConfig, "print-config", false, "print the default configuration (of the store -store names) and exit")
	flag.Parse()
	if printConfig {
		os.Stdout.Write(cfg.defaultText())
		return
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg.Logger = log
	if err := run(cfg, shutdown); err != nil {
		log.Error("broker failed", "error", err)
		os.Exit(1)
	}
}

func run(cfg config, shutdown time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := start(ctx, cfg)
	if err != nil {
		return err
	}
	cfg.Logger.Info("broker listening", "addr", b.addr, "node", cfg.Node)
	<-ctx.Done()
	stop() // a second signal kills the process
	cfg.Logger.Info("shutting down", "timeout", shutdown)
	closeCtx, cancel := context.WithTimeout(context.Background(), shutdown)
	defer cancel()
	if err := b.Close(closeCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	cfg.Logger.Info("stopped; every queued write was written")
	return nil
}
