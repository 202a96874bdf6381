package hook

import (
	"reflect"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/template"
)

func TestTemplateValues(t *testing.T) {
	at := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	m := &Message{ID: "id1", From: "pub", Username: "pubuser", Peerhost: "10.0.0.9", Node: "n1", Topic: "a/b",
		QoS: 1, Payload: []byte("hi"), Timestamp: at}
	tests := []struct {
		e    Event
		want template.Values
	}{
		{&ConnectedEvent{ClientID: "c", Username: "u", Peerhost: "10.0.0.1", Node: "n1", ProtoVer: 5, ConnectedAt: at},
			template.Values{ClientID: "c", Username: "u", Peerhost: "10.0.0.1", Node: "n1", TS: at}},
		{&DisconnectedEvent{ClientID: "c", Username: "u", Node: "n1", Reason: "normal", DisconnectedAt: at},
			template.Values{ClientID: "c", Username: "u", Node: "n1", TS: at}},
		{&SessionCreatedEvent{ClientID: "c", Username: "u", Node: "n1"},
			template.Values{ClientID: "c", Username: "u", Node: "n1"}},
		{&SubscribedEvent{ClientID: "c", Username: "u", Topic: "a/#", QoS: 2},
			template.Values{ClientID: "c", Username: "u", Topic: "a/#", QoS: 2}},
		{&UnsubscribedEvent{ClientID: "c", Username: "u", Topic: "a/#"},
			template.Values{ClientID: "c", Username: "u", Topic: "a/#"}},
		{&PublishEvent{Message: m},
			template.Values{ClientID: "pub", Username: "pubuser", Peerhost: "10.0.0.9", Node: "n1", Topic: "a/b", QoS: 1, MsgID: "id1", Payload: []byte("hi"), TS: at}},
		{&DeliverEvent{ClientID: "sub", Username: "subuser", Message: m},
			template.Values{ClientID: "sub", Username: "subuser", Node: "n1", Topic: "a/b", QoS: 1, MsgID: "id1", Payload: []byte("hi"), TS: at}},
		{&AckedEvent{ClientID: "sub", Username: "subuser", Message: m},
			template.Values{ClientID: "sub", Username: "subuser", Node: "n1", Topic: "a/b", QoS: 1, MsgID: "id1", Payload: []byte("hi"), TS: at}},
		{&AckedEvent{ClientID: "sub"}, template.Values{ClientID: "sub"}},
		{&PublishEvent{}, template.Values{}},
		{(*ConnectedEvent)(nil), template.Values{}},
		{nil, template.Values{}},
	}
	for _, tt := range tests {
		if got := TemplateValues(tt.e); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("TemplateValues(%#v) =\n%+v\nwant\n%+v", tt.e, got, tt.want)
		}
	}
}

// The spec's custom-action examples render the event's values as bound arguments.
func TestTemplateValuesRender(t *testing.T) {
	m := &Message{ID: "id1", From: "pub", Topic: "a/b", QoS: 1, Payload: []byte("x y")}
	stmt, err := template.CompileStatement(template.MySQL, "insert into msg(msgid, topic) values(${msgid}, ${topic})")
	if err != nil {
		t.Fatal(err)
	}
	v := TemplateValues(&PublishEvent{Message: m})
	if got, want := stmt.Args(nil, &v), []any{"id1", "a/b"}; !reflect.DeepEqual(got, want) {
		t.Errorf("publish SQL args %#v, want %#v", got, want)
	}
	cmd, err := template.CompileRedis("HSET ack:${clientid} ${topic} ${msgid}")
	if err != nil {
		t.Fatal(err)
	}
	v = TemplateValues(&AckedEvent{ClientID: "sub", Message: m})
	if got, want := cmd.Args(nil, &v), []any{"HSET", "ack:sub", "a/b", "id1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("acked Redis args %#v, want %#v", got, want)
	}
}
