package mongostore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/mqttstore/mqttstore/hook"
)

// roundTrip stores v as the payload field of a document, as the store does, and reads the
// payload back.
func roundTrip(t testing.TB, v any) []byte {
	t.Helper()
	raw, err := bson.Marshal(bson.D{{Key: "payload", Value: v}})
	if err != nil {
		t.Fatalf("marshal %#v: %v", v, err)
	}
	p, err := payloadBytes(bson.Raw(raw).Lookup("payload"))
	if err != nil {
		t.Fatalf("payloadBytes: %v", err)
	}
	return p
}

// sameJSON reports whether a and b are equal JSON values.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestPayloadFormat(t *testing.T) {
	deep := strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2)
	ok := strings.Repeat(`{"a":`, maxJSONDepth) + "1" + strings.Repeat("}", maxJSONDepth)
	for _, c := range []struct {
		name    string
		payload string
		doc     bool // stored as a document or array
	}{
		{"object", `{"temp": 21.5, "unit": "C", "ok": true, "n": null, "list": [1, 2, {"x": "y"}]}`, true},
		{"array", `[1, "two", 3.5]`, true},
		{"spaces around", " \n{\"a\": 1}\t", true},
		{"nested at the limit", ok, true},
		{"invalid JSON", `{"a": }`, false},
		{"truncated", `{"a": 1`, false},
		{"trailing data", `{"a": 1} x`, false},
		{"two values", `{"a": 1}{"b": 2}`, false},
		{"too deep", deep, false},
		{"dollar key", `{"$set": {"a": 1}}`, false},
		{"nested dollar key", `{"a": {"$gt": 1}}`, false},
		{"dot key", `{"a.b": 1}`, false},
		{"NUL in key", "{\"a\\u0000b\": 1}", false},
		{"NUL in value", "{\"a\": \"x\\u0000y\"}", true},
		{"raw NUL byte", "{\"a\": 1}\x00", false},
		{"duplicate key", `{"a": 1, "a": 2}`, false},
		{"huge integer", `{"a": 123456789012345678901234567890}`, false},
		{"huge float", `{"a": 1e999}`, false},
		{"scalar number", `42`, false},
		{"scalar string", `"x"`, false},
		{"empty", ``, false},
		{"not UTF-8", "{\"a\": \"\xff\"}", false},
		{"dollar in value", `{"a": "$x.y"}`, true},
		{"unicode", `{"é": "日本"}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := payloadValue([]byte(c.payload), formatMongoJSON)
			switch v.(type) {
			case bson.D, bson.A:
				if !c.doc {
					t.Fatalf("%q stored as a document: %#v", c.payload, v)
				}
				got := roundTrip(t, v)
				if !sameJSON(got, []byte(c.payload)) {
					t.Errorf("%q reads back as %q", c.payload, got)
				}
			default:
				if c.doc {
					t.Fatalf("%q not stored as a document: %#v", c.payload, v)
				}
				if got := roundTrip(t, v); !bytes.Equal(got, []byte(c.payload)) {
					t.Errorf("%q reads back as %q", c.payload, got)
				}
			}
		})
	}
}

func TestPayloadPlainKeepsBytes(t *testing.T) {
	for _, p := range [][]byte{nil, {}, []byte("text"), {0}, {0xff, 0xfe, 0}, []byte(`{"a":1}`), []byte("a\x00b")} {
		if got := roundTrip(t, payloadValue(p, formatPlain)); !bytes.Equal(got, p) {
			t.Errorf("payload %q reads back as %q", p, got)
		}
	}
}

// FuzzPayloadFormat: whatever the payload, the mongo_json conversion never panics, gives a
// value MongoDB accepts, and reads back as the payload: byte for byte when it was not
// converted, as equal JSON when it was.
func FuzzPayloadFormat(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1,2]`, `{"$a":1}`, `{"a.b":1}`, "\x00", `{"a":{"b":[{"c":null}]}}`, `1e5`, `{"a":1.5e300}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		v := payloadValue(p, formatMongoJSON)
		got := roundTrip(t, v)
		switch v.(type) {
		case bson.D, bson.A:
			if !json.Valid(p) || !sameJSON(got, p) {
				t.Fatalf("%q converted, reads back as %q", p, got)
			}
		default:
			if !bytes.Equal(got, p) {
				t.Fatalf("%q reads back as %q", p, got)
			}
		}
	})
}

func TestPayloadFormatOption(t *testing.T) {
	s := newStore(t)
	rule := func(fn string, opt string) *hook.Rule {
		r := &hook.Rule{Name: "r", Point: hook.MessagePublish, Topic: "#", Action: hook.RuleAction{Function: fn}}
		if opt != "" {
			r.Options = map[string]json.RawMessage{OptPayloadFormat: json.RawMessage(opt)}
		}
		return r
	}
	for _, bad := range []string{`"bson"`, `1`} {
		if _, err := s.Prepare(rule(hook.OnMessageStore, bad)); !errors.Is(err, hook.ErrValue) {
			t.Errorf("payload_format %s: %v, want ErrValue", bad, err)
		}
	}
	if _, err := s.Prepare(rule(hook.OnRetainDelete, `"mongo_json"`)); !errors.Is(err, hook.ErrUnsupported) {
		t.Errorf("payload_format on on_retain_delete: %v, want ErrUnsupported", err)
	}
	a, err := s.Prepare(rule(hook.OnMessageStore, `"mongo_json"`))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ids := hook.NewIDGenerator("n")
	payloads := []string{`{"temp": 21.5, "tags": ["a", "b"]}`, `{"$bad": 1}`, "\xff\x00", `not json`}
	for _, p := range payloads {
		m := &hook.Message{ID: ids.Next(), Topic: "sensors/1", QoS: 0, Payload: []byte(p), Timestamp: time.Now()}
		if err := a.(hook.WriteAction).Write(ctx, &hook.PublishEvent{Message: m}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// The JSON payload is a document the database can query.
	n, err := s.msg.CountDocuments(ctx, bson.D{{Key: "payload.temp", Value: bson.D{{Key: "$gt", Value: 20}}}})
	if err != nil || n != 1 {
		t.Fatalf("query on payload.temp: %d, %v; want 1", n, err)
	}
	got, err := s.Fetch(ctx, "c", "sensors/#", hook.OfflineOpts{})
	if err != nil || len(got) != len(payloads) {
		t.Fatalf("fetch: %d messages, %v", len(got), err)
	}
	if !sameJSON(got[0].Payload, []byte(payloads[0])) {
		t.Errorf("JSON payload reads back as %q", got[0].Payload)
	}
	for i, p := range payloads[1:] {
		if string(got[i+1].Payload) != p {
			t.Errorf("payload %q reads back as %q", p, got[i+1].Payload)
		}
	}
}
