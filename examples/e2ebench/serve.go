package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	pebbledb "github.com/cockroachdb/pebble"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/hooks/storage/badger"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/hooks/storage/pebble"
	"github.com/mochi-mqtt/server/v2/hooks/storage/redis"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// serve runs plain mochi, or mochi with one of its own storage hooks: what a mochi user picks
// instead of mqttstore. It is the child process of a "mochi" or "mochi-<hook>" target.
func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	hook := fs.String("hook", "none", "mochi's storage hook: none, pebble, badger, bolt or redis")
	listen := fs.String("listen", "127.0.0.1:1883", "MQTT listener address")
	dir := fs.String("dir", "", "data directory of the pebble, badger and bolt hooks")
	redisAddr := fs.String("redis", "127.0.0.1:6379", "Redis of the redis hook")
	prefix := fs.String("redis-prefix", "", "key prefix of the redis hook")
	fs.Parse(args)

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	s := mqtt.New(&mqtt.Options{Logger: log})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return err
	}
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
	}
	var err error
	switch *hook {
	case "none":
	case "pebble":
		// mochi's defaults, with pebble's replay lines kept out of the report.
		err = s.AddHook(new(pebble.Hook), &pebble.Options{Path: *dir, Mode: pebble.NoSync,
			Options: &pebbledb.Options{Logger: quiet{}}})
	case "badger":
		err = s.AddHook(new(badger.Hook), &badger.Options{Path: *dir})
	case "bolt":
		err = s.AddHook(new(bolt.Hook), &bolt.Options{Path: *dir + "/bolt.db"})
	case "redis":
		err = s.AddHook(new(redis.Hook), &redis.Options{Address: *redisAddr, HPrefix: *prefix})
	default:
		err = fmt.Errorf("unknown hook %q", *hook)
	}
	if err != nil {
		return err
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: *listen})); err != nil {
		return err
	}
	if err := s.Serve(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return s.Close()
}

// quiet is a pebble logger that keeps only fatal errors.
type quiet struct{}

func (quiet) Infof(string, ...any)              {}
func (quiet) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
