package template

import (
	"strconv"
	"strings"
	"time"
)

// Var is a ${var} placeholder variable.
type Var uint8

// The variables of custom actions, named as in the spec: ${clientid} is VarClientID, and so on.
const (
	VarClientID Var = iota + 1
	VarUsername
	VarPeerhost
	VarNode
	VarTopic
	VarQoS
	VarMsgID
	VarPayload
	VarTS
	numVars = iota
)

var varNames = [numVars + 1]string{"", "clientid", "username", "peerhost", "node", "topic", "qos", "msgid", "payload", "ts"}

// String returns the variable's name as written in templates, e.g. "clientid".
func (x Var) String() string {
	if x == 0 || x > numVars {
		return "Var(" + strconv.Itoa(int(x)) + ")"
	}
	return varNames[x]
}

// LookupVar returns the variable named name (without "${}"); names are lower case.
func LookupVar(name string) (Var, bool) {
	for i := Var(1); i <= numVars; i++ {
		if varNames[i] == name {
			return i, true
		}
	}
	return 0, false
}

// Values are what a compiled template renders: the fields of one event. The caller fills the
// fields the event has and leaves the rest zero; a zero field renders as the empty string (or
// 0). The renderers only read Values, and bound arguments alias Payload without copying it.
type Values struct {
	ClientID string
	Username string
	Peerhost string
	Node     string
	Topic    string
	MsgID    string
	QoS      byte
	Payload  []byte
	// TS is when the message was received (or the event happened). ${ts} and a payload
	// template's $timestamp outside its timestamp slot render it as integer milliseconds since
	// the Unix epoch (what EMQX uses); the zero time renders as 0.
	TS time.Time
}

// millis is ${ts}: milliseconds since the Unix epoch, 0 for the zero time.
func (v *Values) millis() int64 {
	if v.TS.IsZero() {
		return 0
	}
	return v.TS.UnixMilli()
}

func (v *Values) str(x Var) string {
	switch x {
	case VarClientID:
		return v.ClientID
	case VarUsername:
		return v.Username
	case VarPeerhost:
		return v.Peerhost
	case VarNode:
		return v.Node
	case VarTopic:
		return v.Topic
	case VarMsgID:
		return v.MsgID
	}
	return ""
}

// arg is x as a bound argument: string, []byte (payload, never nil) or int64 (qos, ts).
func (v *Values) arg(x Var) any {
	switch x {
	case VarQoS:
		return int64(v.QoS)
	case VarTS:
		return v.millis()
	case VarPayload:
		if v.Payload == nil {
			return []byte{}
		}
		return v.Payload
	}
	return v.str(x)
}

// appendText appends x as text: strings and payload byte for byte, numbers in decimal.
func (v *Values) appendText(dst []byte, x Var) []byte {
	switch x {
	case VarQoS:
		return strconv.AppendInt(dst, int64(v.QoS), 10)
	case VarTS:
		return strconv.AppendInt(dst, v.millis(), 10)
	case VarPayload:
		return append(dst, v.Payload...)
	}
	return append(dst, v.str(x)...)
}

// writeText writes x as appendText does.
func (v *Values) writeText(b *strings.Builder, x Var) {
	switch x {
	case VarQoS, VarTS:
		var num [20]byte
		b.Write(v.appendText(num[:0], x))
	case VarPayload:
		b.Write(v.Payload)
	default:
		b.WriteString(v.str(x))
	}
}

// textLen is len(v.appendText(nil, x)) without rendering numbers.
func (v *Values) textLen(x Var) int {
	switch x {
	case VarQoS:
		return 3
	case VarTS:
		return 20
	case VarPayload:
		return len(v.Payload)
	}
	return len(v.str(x))
}

// unknownVarReason explains why name is not a variable.
func unknownVarReason(name string) string {
	if name == "" {
		return "empty variable name ${}"
	}
	r := "unknown variable ${" + name + "}"
	if x, ok := LookupVar(strings.ToLower(name)); ok {
		return r + " (names are lower case: ${" + x.String() + "})"
	}
	if name == "message" {
		return r + " (the message body is ${payload})"
	}
	return r + "; the variables are " + varList()
}

func varList() string {
	return "${" + strings.Join(varNames[1:], "}, ${") + "}"
}
