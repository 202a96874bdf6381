package hook

import (
	"errors"
	"fmt"
)

// ErrUnknownPoint is wrapped by the errors of ParsePoint and Point.UnmarshalText.
var ErrUnknownPoint = errors.New("unknown hook point")

var pointNames = [...]string{
	ClientConnected:     "client.connected",
	ClientDisconnected:  "client.disconnected",
	SessionCreated:      "session.created",
	SessionSubscribed:   "session.subscribed",
	SessionUnsubscribed: "session.unsubscribed",
	MessagePublish:      "message.publish",
	MessageDeliver:      "message.deliver",
	MessageAcked:        "message.acked",
}

// numPoints bounds the Point values, for tables indexed by Point.
const numPoints = len(pointNames)

// String returns the EMQX name of the point, e.g. "client.connected", or "Point(N)" for a
// value that is not one of the constants.
func (p Point) String() string {
	if p.valid() {
		return pointNames[p]
	}
	return fmt.Sprintf("Point(%d)", uint8(p))
}

func (p Point) valid() bool { return p > 0 && int(p) < numPoints }

// ParsePoint returns the point named s, as written in EMQX configuration keys
// ("client.connected", "message.publish", ...). Names are case-sensitive.
func ParsePoint(s string) (Point, error) {
	for p := ClientConnected; int(p) < numPoints; p++ {
		if pointNames[p] == s {
			return p, nil
		}
	}
	return 0, fmt.Errorf("hook: %w %q", ErrUnknownPoint, s)
}

// MarshalText implements encoding.TextMarshaler with the EMQX name of the point.
func (p Point) MarshalText() ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("hook: marshal %v: %w", p, ErrUnknownPoint)
	}
	return []byte(pointNames[p]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, as ParsePoint.
func (p *Point) UnmarshalText(b []byte) error {
	v, err := ParsePoint(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}
