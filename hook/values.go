package hook

import "github.com/mqttstore/mqttstore/template"

// TemplateValues returns the ${var} values of e, for a store's custom statements (package
// template). Each event gives the variables of the spec's parameter tables and leaves the
// others zero:
//
//	client.connected      clientid username peerhost node ts(ConnectedAt)
//	client.disconnected   clientid username node ts(DisconnectedAt)
//	session.created       clientid username node
//	session.subscribed    clientid username topic (the filter) qos
//	session.unsubscribed  clientid username topic (the filter)
//	message.publish       clientid(From) username peerhost node topic qos msgid payload ts
//	message.deliver       clientid username (the receiving client's) node topic qos msgid payload ts
//	message.acked         as message.deliver, for the client that acknowledged
//
// For deliver and acked, peerhost is left empty: the Message's Peerhost is the publisher's,
// not the client's the event is about. A nil event, or a message event without a Message,
// gives the values that are there.
func TemplateValues(e Event) template.Values {
	switch e := e.(type) {
	case *ConnectedEvent:
		if e != nil {
			return template.Values{ClientID: e.ClientID, Username: e.Username, Peerhost: e.Peerhost, Node: e.Node, TS: e.ConnectedAt}
		}
	case *DisconnectedEvent:
		if e != nil {
			return template.Values{ClientID: e.ClientID, Username: e.Username, Node: e.Node, TS: e.DisconnectedAt}
		}
	case *SessionCreatedEvent:
		if e != nil {
			return template.Values{ClientID: e.ClientID, Username: e.Username, Node: e.Node}
		}
	case *SubscribedEvent:
		if e != nil {
			return template.Values{ClientID: e.ClientID, Username: e.Username, Topic: e.Topic, QoS: e.QoS}
		}
	case *UnsubscribedEvent:
		if e != nil {
			return template.Values{ClientID: e.ClientID, Username: e.Username, Topic: e.Topic}
		}
	case *PublishEvent:
		if e != nil && e.Message != nil {
			v := messageValues(e.Message)
			v.ClientID, v.Username, v.Peerhost = e.Message.From, e.Message.Username, e.Message.Peerhost
			return v
		}
	case *DeliverEvent:
		if e != nil {
			v := messageValues(e.Message)
			v.ClientID, v.Username = e.ClientID, e.Username
			return v
		}
	case *AckedEvent:
		if e != nil {
			v := messageValues(e.Message)
			v.ClientID, v.Username = e.ClientID, e.Username
			return v
		}
	}
	return template.Values{}
}

func messageValues(m *Message) template.Values {
	if m == nil {
		return template.Values{}
	}
	return template.Values{Node: m.Node, Topic: m.Topic, QoS: m.QoS, MsgID: m.ID, Payload: m.Payload, TS: m.Timestamp}
}
