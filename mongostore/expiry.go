package mongostore

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/mqttstore/mqttstore/hook"
)

// ttlIndex is the index on mqtt_msg.expire_at: a TTL index (expireAfterSeconds 0: each
// document expires at its own expire_at) where the server has them, a plain one otherwise
// (for the sweeper).
const ttlIndex = "expire_at_ttl"

// Activate applies the store state of the actions of one registration, which Prepare does
// not touch: a storing rule with an expired_time starts giving its messages an expire_at, and
// the first such rule sets up expiry (see the package doc, "Expiry"): a TTL index on
// expire_at, or, where the server refuses TTL indexes (FerretDB, code 238 NotImplemented), a
// plain index and a sweeper, chosen by trying and logged once. Fetch filters expired messages
// out either way. Activating the same rule twice changes nothing. It fails (changing nothing)
// when the store is closed or an action is not one this store prepared.
func (s *Store) Activate(ctx context.Context, actions []hook.Action) error {
	var expiring []*writeAction
	for _, a := range actions {
		var mine bool
		switch a := a.(type) {
		case *writeAction:
			mine = a.s == s
			if mine && a.ttl > 0 {
				expiring = append(expiring, a)
			}
		case *subLookup:
			mine = a.s == s
		case *retainLookup:
			mine = a.s == s
		case *fetchLookup:
			mine = a.s == s
		}
		if !mine {
			return fmt.Errorf("mongostore: %w: action %T was not prepared by this store", hook.ErrConfig, a)
		}
	}
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return fmt.Errorf("mongostore: %w", hook.ErrClosed)
	}
	if len(expiring) == 0 {
		return nil
	}
	s.expOnce.Do(func() { s.expErr = s.setupExpiry(ctx) })
	if s.expErr != nil {
		return s.expErr
	}
	s.expiring.Store(true)
	for _, a := range expiring {
		a.active.Store(true)
	}
	return nil
}

// setupExpiry creates the TTL index, or the plain index and the sweeper.
func (s *Store) setupExpiry(ctx context.Context) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	keys := bson.D{{Key: "expire_at", Value: 1}}
	_, err := s.msg.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: options.Index().SetName(ttlIndex).SetExpireAfterSeconds(0)})
	if err == nil {
		s.ttlNative.Store(true)
		s.opts.Logger.Info("expired_time: TTL index on mqtt_msg.expire_at", "store", "mongostore")
		return nil
	}
	if !isCode(err, 238, 115, 197) { // NotImplemented, CommandNotSupported, InvalidIndexSpecificationOption
		return fmt.Errorf("mongostore: create the TTL index of mqtt_msg: %w", err)
	}
	s.opts.Logger.Info("expired_time: the server has no TTL indexes; expired messages are filtered out of fetches and deleted by a sweeper",
		"store", "mongostore", "server_error", err.Error(), "sweep_interval", s.sweepInterval())
	if _, err := s.msg.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: keys, Options: options.Index().SetName(ttlIndex + "_plain")}); err != nil && !isCode(err, 85, 86) {
		return fmt.Errorf("mongostore: create the expire_at index of mqtt_msg: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sweepStop == nil && !s.closed {
		s.sweepStop, s.sweepDone = make(chan struct{}), make(chan struct{})
		go s.sweepLoop(s.sweepStop, s.sweepDone)
	}
	return nil
}

// NativeTTL reports whether expiry uses a TTL index (false: the sweeper, or no rule with an
// expired_time activated yet).
func (s *Store) NativeTTL() bool { return s.ttlNative.Load() }

func (s *Store) sweepInterval() time.Duration {
	if s.cfg.SweepInterval > 0 {
		return s.cfg.SweepInterval
	}
	return time.Minute
}

func (s *Store) sweepLoop(stop, done chan struct{}) {
	defer close(done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	t := time.NewTicker(s.sweepInterval())
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		if _, err := s.SweepExpired(ctx); err != nil && ctx.Err() == nil {
			s.opts.Logger.Warn("sweep of expired messages failed", "store", "mongostore", "error", err)
		}
	}
}

// SweepExpired deletes the messages of mqtt_msg whose expire_at has passed and returns how
// many. The store runs it every Config.SweepInterval where the server has no TTL index.
func (s *Store) SweepExpired(ctx context.Context) (int64, error) {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	r, err := s.msg.DeleteMany(ctx, bson.D{{Key: "expire_at", Value: bson.D{{Key: "$lte", Value: bson.NewDateTimeFromTime(time.Now())}}}})
	if err != nil {
		return 0, fmt.Errorf("mongostore: sweep expired messages: %w", err)
	}
	return r.DeletedCount, nil
}
