package dynamostore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/dynamostore"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// TestRegistry opens the store as a broker does, from the registry's default configuration
// (the spec's DynamoDB rules) pointed at the test's dynalite, registers its rules through a
// Dispatcher and runs a message through them.
func TestRegistry(t *testing.T) {
	t.Parallel()
	env := testenv.DynamoDB(t)
	conf, ok := backend.DefaultConfig("dynamo")
	if !ok {
		t.Fatal("no default configuration registered for dynamo")
	}
	c, err := backend.LoadConfig(bytes.NewReader(conf))
	if err != nil {
		t.Fatal(err)
	}
	sc := c.Stores["dynamo"]
	if sc == nil || len(sc.Rules) != 10 {
		t.Fatalf("default configuration: %+v; want the spec's 10 DynamoDB rules", sc)
	}
	ctx := context.Background()
	pool := backend.NewPool("pool1", map[string]string{
		"server": env.Endpoint, "pool_size": "4", "table_prefix": env.TablePrefix,
		"aws_access_key_id": "mqttstore", "aws_secret_access_key": "mqttstore",
	})
	b, err := backend.Open(ctx, backend.PoolConfig{Store: "dynamo", Pool: pool, Settings: sc.Settings, EnsureSchema: true})
	if err != nil {
		t.Fatal(err)
	}
	s := b.(*dynamostore.Store)
	if got := s.Client().Options().Region; got != "us-east-1" {
		t.Errorf("region %q; want backend.dynamo.region's us-east-1", got)
	}
	d := hook.NewDispatcher(hook.DispatcherOptions{Node: "n1@127.0.0.1"})
	defer d.Close(ctx)
	if err := d.Register(ctx, "dynamo", b, sc.Rules...); err != nil {
		t.Fatal(err)
	}
	m := &hook.Message{Topic: "reg/a", QoS: 1, Payload: []byte("hello"), Timestamp: time.Now(), Retain: true}
	if err := d.MessagePublish(ctx, &hook.PublishEvent{Message: m}); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := d.SessionSubscribed(ctx, &hook.SubscribedEvent{ClientID: "c1", Topic: "reg/#", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Offline) != 1 || string(res.Offline[0].Payload) != "hello" {
		t.Errorf("subscribe to reg/#: %+v; want the stored message once (offline, the retained copy merged away)", res)
	}
}

// TestRegistryRefusesUnknownSettings: a misspelt pool or store setting stops the open.
func TestRegistryRefusesUnknownSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, pc := range []backend.PoolConfig{
		{Store: "dynamo", Pool: backend.NewPool("pool1", map[string]string{"sever": "http://127.0.0.1:8000"})},
		{Store: "dynamo", Pool: backend.NewPool("pool1", nil), Settings: backend.NewPool("dynamo", map[string]string{"regoin": "x"}).Settings},
		{Store: "dynamo", Pool: backend.NewPool("pool1", map[string]string{"aws_access_key_id": "only the id"})},
	} {
		if _, err := backend.Open(ctx, pc); !errors.Is(err, hook.ErrConfig) {
			t.Errorf("backend.Open(%v): %v; want an error wrapping hook.ErrConfig", pc.Pool.Keys(), err)
		}
	}
}

// TestEnsureSchema: the spec's tables and keys, on-demand by default, provisioned when
// configured; a second EnsureSchema on existing tables is a no-op.
func TestEnsureSchema(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t)
	cfg.Provisioned = &dynamostore.Throughput{Read: 5, Write: 7}
	s := open(t, cfg)
	defer s.Close(context.Background())
	if err := s.EnsureSchema(context.Background()); err != nil {
		t.Fatalf("EnsureSchema again: %v", err)
	}
	want := map[string]string{
		dynamostore.TableClient: "clientid", dynamostore.TableSub: "clientid topic", dynamostore.TableMsg: "msgid",
		dynamostore.TableTopicMsg: "topic", dynamostore.TableRetain: "topic", dynamostore.TableAcked: "topic clientid",
		dynamostore.TableTopicIndex: "bucket topic",
	}
	for table, keys := range want {
		d, err := s.Client().DescribeTable(context.Background(), &dynamodb.DescribeTableInput{TableName: aws.String(s.TableName(table))})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range d.Table.KeySchema {
			got = append(got, *k.AttributeName)
		}
		if strings.Join(got, " ") != keys || d.Table.TableStatus != types.TableStatusActive {
			t.Errorf("%s: keys %v, status %s; want %s, ACTIVE", table, got, d.Table.TableStatus, keys)
		}
		if pt := d.Table.ProvisionedThroughput; pt == nil || *pt.ReadCapacityUnits != 5 || *pt.WriteCapacityUnits != 7 {
			t.Errorf("%s: throughput %+v; want 5 read, 7 write", table, pt)
		}
	}
}
