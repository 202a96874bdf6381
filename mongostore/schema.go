package mongostore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// index is one index EnsureSchema creates.
type index struct {
	col    string
	name   string
	keys   bson.D
	unique bool
}

// indexes are the spec's (mqtt_client {clientid, node}, mqtt_sub {clientid} through the
// unique one, mqtt_msg {sender, topic}, mqtt_retain {topic} made unique) and what the store
// needs: unique keys for idempotent writes and race-free upserts, and (topic, _id) for fetches.
var indexes = []index{
	{ColClient, "clientid_unique", bson.D{{Key: "clientid", Value: 1}}, true},
	{ColClient, "clientid_node", bson.D{{Key: "clientid", Value: 1}, {Key: "node", Value: 1}}, false},
	{ColSub, "clientid_topic_unique", bson.D{{Key: "clientid", Value: 1}, {Key: "topic", Value: 1}}, true},
	{ColMsg, "msgid_unique", bson.D{{Key: "msgid", Value: 1}}, true},
	{ColMsg, "topic_id", bson.D{{Key: "topic", Value: 1}, {Key: "_id", Value: 1}}, false},
	{ColMsg, "sender_topic", bson.D{{Key: "sender", Value: 1}, {Key: "topic", Value: 1}}, false},
	{ColRetain, "topic_unique", bson.D{{Key: "topic", Value: 1}}, true},
	// Not unique: the store's positions are keyed by _id (positionID), and a position EMQX
	// wrote (ObjectId) may sit beside one of the store's; a fetch takes the greater.
	{ColAcked, "clientid_topic", bson.D{{Key: "clientid", Value: 1}, {Key: "topic", Value: 1}}, false},
}

// EnsureSchema creates the collections and indexes that are missing (see the package doc,
// "Schema"). On an existing EMQX database it only adds: an index that conflicts with one
// already there (same keys, other options or name), or a unique index the data violates, is
// logged and left out.
func (s *Store) EnsureSchema(ctx context.Context) error {
	ctx, cancel := s.queryContext(ctx)
	defer cancel()
	existing, err := s.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("mongostore: ensure schema: list collections: %w", err)
	}
	for _, c := range []string{ColClient, ColSub, ColMsg, ColRetain, ColAcked, ColSeq, ColLock} {
		if contains(existing, c) {
			continue
		}
		if err := s.db.CreateCollection(ctx, c); err != nil && !isCode(err, 48) { // NamespaceExists
			return fmt.Errorf("mongostore: ensure schema: create %s: %w", c, err)
		}
	}
	for _, ix := range indexes {
		_, err := s.db.Collection(ix.col).Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys: ix.keys, Options: options.Index().SetName(ix.name).SetUnique(ix.unique),
		})
		switch {
		case err == nil:
		case isCode(err, 85, 86, 11000, 11001): // IndexOptionsConflict, IndexKeySpecsConflict, duplicate data
			s.opts.Logger.Warn("index not created; the existing one (or the data) is kept", "store", "mongostore",
				"collection", ix.col, "index", ix.name, "error", err)
		default:
			return fmt.Errorf("mongostore: ensure schema: index %s.%s: %w", ix.col, ix.name, err)
		}
	}
	return s.seedSeq(ctx)
}

// seedSeq creates the mqtt_msg counter if it is missing, starting after the greatest
// numeric _id of mqtt_msg (an EMQX database's messages).
func (s *Store) seedSeq(ctx context.Context) error {
	n, err := s.seq.CountDocuments(ctx, bson.D{{Key: "_id", Value: ColMsg}})
	if err != nil {
		return fmt.Errorf("mongostore: ensure schema: read %s: %w", ColSeq, err)
	}
	if n > 0 {
		return nil
	}
	var last struct {
		ID any `bson:"_id"`
	}
	var start int64
	err = s.msg.FindOne(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$type", Value: "number"}}}},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(bson.D{{Key: "_id", Value: 1}})).Decode(&last)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
	case err != nil:
		return fmt.Errorf("mongostore: ensure schema: last %s id: %w", ColMsg, err)
	default:
		start = toInt64(last.ID)
	}
	_, err = s.seq.InsertOne(ctx, bson.D{{Key: "_id", Value: ColMsg}, {Key: "seq", Value: start}})
	if err != nil && !mongo.IsDuplicateKeyError(err) {
		return fmt.Errorf("mongostore: ensure schema: create the %s counter: %w", ColMsg, err)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// isCode reports whether err is a server error with one of the codes.
func isCode(err error, codes ...int) bool {
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.HasErrorCode(c) {
			return true
		}
	}
	return false
}

func toInt64(v any) int64 {
	switch v := v.(type) {
	case int32:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
	case int:
		return int64(v)
	}
	return 0
}

func newToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// secretsOf returns the passwords cfg holds: in its URI, and in its ClientOptions.
func secretsOf(cfg Config) []string {
	var out []string
	if u, err := url.Parse(cfg.URI); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			out = append(out, pw, url.QueryEscape(pw), url.PathEscape(pw))
		}
	} else if err != nil {
		// unparsable: hide what could be credentials
		if _, rest, ok := strings.Cut(cfg.URI, "://"); ok {
			if cred, _, ok := strings.Cut(rest, "@"); ok && cred != "" {
				out = append(out, cred)
			}
		}
	}
	if co := cfg.ClientOptions; co != nil && co.Auth != nil && co.Auth.Password != "" {
		out = append(out, co.Auth.Password, url.QueryEscape(co.Auth.Password), url.PathEscape(co.Auth.Password))
	}
	return out
}

// redact removes the store's passwords from text.
func (s *Store) redact(text string) string {
	for _, pw := range s.secrets {
		if pw != "" {
			text = strings.ReplaceAll(text, pw, "xxxxx")
		}
	}
	return text
}

// redacted is an error whose text has the store's passwords removed; it unwraps to the
// original, so that errors.Is and errors.As still see the driver's error.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// wrapf is fmt.Errorf(format+": %w", args..., err) with the passwords removed from the text.
func (s *Store) wrapf(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return &redacted{msg: s.redact(fmt.Sprintf(format, args...) + ": " + err.Error()), err: err}
}
