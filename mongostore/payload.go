package mongostore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/mqttstore/mqttstore/hook"
)

// OptPayloadFormat is the rule option "payload_format" (spec: "payload_format": "mongo_json"
// on on_message_store).
const OptPayloadFormat = "payload_format"

type payloadFormat uint8

const (
	// formatPlain: a payload that is valid UTF-8 is a BSON string, any other a BSON binary
	// (subtype 0): byte for byte either way.
	formatPlain payloadFormat = iota
	// formatMongoJSON: a payload that is a JSON object or array is stored as a document or
	// array (queryable: db.mqtt_msg.find({"payload.temp": {$gt: 20}})); anything else as
	// formatPlain. See jsonPayload for what is not converted.
	formatMongoJSON
)

func parsePayloadFormat(r *hook.Rule) (payloadFormat, error) {
	raw, ok := r.Options[OptPayloadFormat]
	if !ok {
		return formatPlain, nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, &hook.RuleError{Rule: r.Name, Field: OptPayloadFormat, Err: fmt.Errorf("%w: want a string, got %s", hook.ErrValue, raw)}
	}
	switch v {
	case "mongo_json":
		return formatMongoJSON, nil
	case "", "plain", "string":
		return formatPlain, nil
	}
	return 0, &hook.RuleError{Rule: r.Name, Field: OptPayloadFormat, Err: fmt.Errorf("%w: %q (want \"mongo_json\" or \"plain\")", hook.ErrValue, v)}
}

// payloadValue is the BSON value a payload is stored as.
func payloadValue(p []byte, f payloadFormat) any {
	if f == formatMongoJSON {
		if v, ok := jsonPayload(p); ok {
			return v
		}
	}
	if utf8.Valid(p) {
		return string(p)
	}
	return bson.Binary{Subtype: bson.TypeBinaryGeneric, Data: p}
}

// maxJSONDepth bounds the nesting of a payload converted to a document: MongoDB refuses
// documents nested deeper than 100 levels, and the conversion is recursive.
const maxJSONDepth = 64

var errNotConvertible = errors.New("not convertible")

// jsonPayload converts a JSON object or array to a bson.D or bson.A, and reports whether it
// did. It does not convert (the payload is then stored as text, unchanged): invalid JSON,
// scalars (a string, number, boolean or null payload), nesting deeper than maxJSONDepth, keys
// that start with '$', contain '.' or a NUL byte, or appear twice in one object (MongoDB
// refuses or misreads them), integers beyond int64 and numbers beyond float64 (they would
// lose digits), and trailing data after the value. Numbers are int64 when integral and in
// range, float64 otherwise; so a converted payload reads back as equal JSON, not byte for
// byte (spacing, key order kept; "1.0" reads back as 1, "1e2" as 100).
func jsonPayload(p []byte) (any, bool) {
	t := bytes.TrimSpace(p)
	if len(t) == 0 || t[0] != '{' && t[0] != '[' || !utf8.Valid(t) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.UseNumber()
	v, err := decodeJSON(dec, 0)
	if err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

func decodeJSON(dec *json.Decoder, depth int) (any, error) {
	if depth > maxJSONDepth {
		return nil, errNotConvertible
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		switch tok {
		case '{':
			d := bson.D{}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				if strings.HasPrefix(k, "$") || strings.ContainsAny(k, ".\x00") || seen[k] {
					return nil, errNotConvertible
				}
				seen[k] = true
				v, err := decodeJSON(dec, depth+1)
				if err != nil {
					return nil, err
				}
				d = append(d, bson.E{Key: k, Value: v})
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return d, nil
		case '[':
			a := bson.A{}
			for dec.More() {
				v, err := decodeJSON(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return a, nil
		}
		return nil, errNotConvertible
	case json.Number:
		if i, err := strconv.ParseInt(string(tok), 10, 64); err == nil {
			return i, nil
		}
		if !strings.ContainsAny(string(tok), ".eE") {
			return nil, errNotConvertible // an integer beyond int64
		}
		f, err := strconv.ParseFloat(string(tok), 64)
		if err != nil || math.IsInf(f, 0) {
			return nil, errNotConvertible
		}
		return f, nil
	case string, bool, nil:
		return tok, nil
	}
	return nil, errNotConvertible
}

// payloadBytes returns the payload a stored value holds: a string's bytes, a binary's data, a
// document or array (payload_format mongo_json, or written by someone else) as JSON.
func payloadBytes(v bson.RawValue) ([]byte, error) {
	switch v.Type {
	case bson.TypeString:
		return []byte(v.StringValue()), nil
	case bson.TypeBinary:
		_, data := v.Binary()
		return data, nil
	case bson.TypeNull, bson.TypeUndefined, 0:
		return nil, nil
	case bson.TypeEmbeddedDocument, bson.TypeArray:
		var b bytes.Buffer
		if err := writeJSON(&b, v); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	// any other scalar someone stored: its JSON form
	var b bytes.Buffer
	if err := writeJSON(&b, v); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// writeJSON writes v as plain JSON, keeping the order of document keys.
func writeJSON(b *bytes.Buffer, v bson.RawValue) error {
	switch v.Type {
	case bson.TypeEmbeddedDocument:
		elems, err := v.Document().Elements()
		if err != nil {
			return err
		}
		b.WriteByte('{')
		for i, e := range elems {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(e.Key())
			b.Write(k)
			b.WriteByte(':')
			if err := writeJSON(b, e.Value()); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	case bson.TypeArray:
		vals, err := v.Array().Values()
		if err != nil {
			return err
		}
		b.WriteByte('[')
		for i, e := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSON(b, e); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case bson.TypeString:
		s, _ := json.Marshal(v.StringValue())
		b.Write(s)
	case bson.TypeInt32:
		b.WriteString(strconv.FormatInt(int64(v.Int32()), 10))
	case bson.TypeInt64:
		b.WriteString(strconv.FormatInt(v.Int64(), 10))
	case bson.TypeDouble:
		f := v.Double()
		if math.IsNaN(f) || math.IsInf(f, 0) {
			b.WriteString("null")
			break
		}
		s, _ := json.Marshal(f)
		b.Write(s)
	case bson.TypeBoolean:
		b.WriteString(strconv.FormatBool(v.Boolean()))
	case bson.TypeNull, bson.TypeUndefined:
		b.WriteString("null")
	default: // dates, ObjectIds, decimals...: MongoDB's relaxed Extended JSON
		s, err := bson.MarshalExtJSON(bson.D{{Key: "v", Value: v}}, false, false)
		if err != nil {
			return err
		}
		// {"v":X}
		b.Write(s[5 : len(s)-1])
	}
	return nil
}
