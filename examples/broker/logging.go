package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/mochi-mqtt/server/v2/packets"
)

// maxLogValue bounds the text of one logged value (and of a message).
const maxLogValue = 1024

// maxLogPayload bounds the bytes of a logged packet's payloads.
const maxLogPayload = 64

// hygiene is a slog.Handler that keeps secrets and bulk out of the logs before passing the
// records on: in the MQTT packets mochi logs whole (a second CONNECT, a PUBLISH it refuses)
// the password is redacted and the payloads cut to maxLogPayload bytes, and any value whose
// text is longer than maxLogValue is cut.
type hygiene struct{ h slog.Handler }

func (x hygiene) Enabled(ctx context.Context, l slog.Level) bool { return x.h.Enabled(ctx, l) }

func (x hygiene) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, cut(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(clean(a))
		return true
	})
	return x.h.Handle(ctx, out)
}

func (x hygiene) WithAttrs(as []slog.Attr) slog.Handler {
	cleaned := make([]slog.Attr, len(as))
	for i, a := range as {
		cleaned[i] = clean(a)
	}
	return hygiene{x.h.WithAttrs(cleaned)}
}

func (x hygiene) WithGroup(name string) slog.Handler { return hygiene{x.h.WithGroup(name)} }

// clean returns a with its packets redacted and its long values cut.
func clean(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if s := v.String(); len(s) > maxLogValue {
			return slog.String(a.Key, cut(s))
		}
	case slog.KindGroup:
		as := v.Group()
		cleaned := make([]any, len(as))
		for i, g := range as {
			cleaned[i] = clean(g)
		}
		return slog.Group(a.Key, cleaned...)
	case slog.KindAny:
		x := v.Any()
		switch pk := x.(type) {
		case packets.Packet:
			x = redact(pk)
		case *packets.Packet:
			if pk != nil {
				x = redact(*pk)
			}
		}
		if s := fmt.Sprintf("%+v", x); len(s) > maxLogValue {
			return slog.String(a.Key, cut(s))
		}
		return slog.Any(a.Key, x)
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// redact returns a copy of pk without its password and with its payloads cut.
func redact(pk packets.Packet) packets.Packet {
	if len(pk.Connect.Password) > 0 {
		pk.Connect.Password = []byte("REDACTED")
	}
	pk.Payload = cutBytes(pk.Payload)
	pk.Connect.WillPayload = cutBytes(pk.Connect.WillPayload)
	pk.Properties.AuthenticationData = nil
	pk.Connect.WillProperties.AuthenticationData = nil
	return pk
}

func cutBytes(b []byte) []byte {
	if len(b) <= maxLogPayload {
		return b
	}
	return b[:maxLogPayload:maxLogPayload]
}

// cut cuts s to maxLogValue bytes, saying how long it was.
func cut(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	return fmt.Sprintf("%s... (%d bytes)", s[:maxLogValue], len(s))
}
