package testenv

import (
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Mosquitto returns the host:port of an MQTT broker (Mosquitto, anonymous access, no
// persistence): MQTTSTORE_MQTT_ADDR, default 127.0.0.1:1883; scripts/services' mosquitto. The
// broker is shared: a test keeps to topics of its own, e.g. under Name(t, n)+"/".
func Mosquitto(t testing.TB) string {
	t.Helper()
	addr := Getenv("MQTTSTORE_MQTT_ADDR", "127.0.0.1:1883")
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID(Name(t, 23)).SetConnectTimeout(2 * time.Second).SetConnectRetry(false).
		SetAutoReconnect(false))
	tok := c.Connect()
	if !tok.WaitTimeout(3 * time.Second) {
		Unavailable(t, "mosquitto", fmt.Errorf("connect to %s: no CONNACK in 3s", addr))
	}
	if err := tok.Error(); err != nil {
		Unavailable(t, "mosquitto", fmt.Errorf("connect to %s: %w", addr, err))
	}
	c.Disconnect(0)
	return addr
}
