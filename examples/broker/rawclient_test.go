package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/mqttstore/mqttstore/examples/internal/mqtttest"
)

// rawClient is an MQTT client that sends and reads packets one by one (mochi's codec), for
// what paho does not let a test do: MQTT 5 properties such as Receive Maximum, holding
// acknowledgements back, choosing packet IDs.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	ver  byte
}

// dialRaw connects to addr and sends a CONNECT of protocol version ver (4 or 5) with props;
// it fails the test unless the CONNACK accepts it.
func dialRaw(t *testing.T, addr, id string, ver byte, clean bool, props packets.Properties) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, mqtttest.Timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawClient{t: t, conn: conn, r: bufio.NewReader(conn), ver: ver}
	name := "MQTT"
	c.write(packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: ver,
		Connect: packets.ConnectParams{
			ProtocolName: []byte(name), ClientIdentifier: id, Clean: clean, Keepalive: 60,
		},
		Properties: props,
	})
	if pk := c.read(); pk.FixedHeader.Type != packets.Connack || pk.ReasonCode != 0 {
		t.Fatalf("CONNACK: %+v", pk)
	}
	return c
}

// write encodes and sends pk.
func (c *rawClient) write(pk packets.Packet) {
	c.t.Helper()
	pk.ProtocolVersion = c.ver
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		c.t.Fatalf("rawClient cannot send %v", pk.FixedHeader.Type)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		c.t.Fatal(err)
	}
}

// read reads the next packet.
func (c *rawClient) read() packets.Packet {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	hb, err := c.r.ReadByte()
	if err != nil {
		c.t.Fatalf("reading: %v", err)
	}
	var pk packets.Packet
	pk.ProtocolVersion = c.ver
	if err := pk.FixedHeader.Decode(hb); err != nil {
		c.t.Fatal(err)
	}
	n, _, err := packets.DecodeLength(c.r)
	if err != nil {
		c.t.Fatal(err)
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(c.r, body); err != nil {
		c.t.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Pingresp:
		err = pk.PingrespDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	}
	if err != nil {
		c.t.Fatal(err)
	}
	return pk
}

// subscribe sends a SUBSCRIBE with packet ID id and returns the reason code of the SUBACK and
// the PUBLISH packets read before it.
func (c *rawClient) subscribe(id uint16, filter string, qos byte) (byte, []packets.Packet) {
	c.t.Helper()
	c.write(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1},
		PacketID:    id,
		Filters:     packets.Subscriptions{{Filter: filter, Qos: qos}},
	})
	pk, pubs := c.readUntil(packets.Suback)
	if pk.PacketID != id || len(pk.ReasonCodes) != 1 {
		c.t.Fatalf("SUBACK %+v for SUBSCRIBE %d", pk, id)
	}
	return pk.ReasonCodes[0], pubs
}

// sync sends a PINGREQ and returns the PUBLISH packets read before the PINGRESP: what the
// broker sent in answer to the packets sent before (the broker handles a client's packets in
// order, and writes what it sends in answer to one before reading the next).
func (c *rawClient) sync() []packets.Packet {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	_, pubs := c.readUntil(packets.Pingresp)
	return pubs
}

// readUntil reads up to a packet of type typ, and returns it and the PUBLISH packets before
// it; any other packet fails the test.
func (c *rawClient) readUntil(typ byte) (packets.Packet, []packets.Packet) {
	c.t.Helper()
	var pubs []packets.Packet
	for {
		pk := c.read()
		switch pk.FixedHeader.Type {
		case typ:
			return pk, pubs
		case packets.Publish:
			pubs = append(pubs, pk)
		default:
			c.t.Fatalf("unexpected %v", pk.FixedHeader.Type)
		}
	}
}

// readClosed reads until the broker closes the connection.
func (c *rawClient) readClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(mqtttest.Timeout))
	if _, err := io.Copy(io.Discard, c.r); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("the broker did not close the connection")
		}
	}
}

// ack acknowledges a QoS 1 PUBLISH.
func (c *rawClient) ack(pk packets.Packet) {
	c.t.Helper()
	c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID})
}
