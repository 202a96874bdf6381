// Command roundtrip is the readiness check of scripts/services for Cassandra, DynamoDB and the
// MongoDB protocol: it writes a fresh value and reads it back, and exits non-zero unless it got
// the same value.
//
// Usage:
//
//	roundtrip cassandra 127.0.0.1:9042
//	roundtrip dynamodb http://127.0.0.1:8000
//	roundtrip mongo mongodb://127.0.0.1:27017/
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// timeout bounds one check: scripts/services polls, so a check must never hang.
const timeout = 10 * time.Second

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: roundtrip cassandra|dynamodb|mongo ADDRESS")
		os.Exit(2)
	}
	checks := map[string]func(context.Context, string, string) error{
		"cassandra": cassandra,
		"dynamodb":  dynamo,
		"mongo":     mongoDB,
	}
	check, ok := checks[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "roundtrip: unknown service %q\n", os.Args[1])
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := check(ctx, os.Args[2], token()); err != nil {
		fmt.Fprintf(os.Stderr, "roundtrip %s %s: %v\n", os.Args[1], os.Args[2], err)
		os.Exit(1)
	}
}

func token() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func compare(got, want string) error {
	if got != want {
		return fmt.Errorf("read back %q, wrote %q", got, want)
	}
	return nil
}

func cassandra(ctx context.Context, addr, value string) error {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return fmt.Errorf("port %q: %w", portText, err)
	}
	cluster := gocql.NewCluster(host)
	cluster.Port = port
	cluster.Timeout = 5 * time.Second
	cluster.ConnectTimeout = 5 * time.Second
	cluster.Consistency = gocql.One
	session, err := cluster.CreateSession()
	if err != nil {
		return err
	}
	defer session.Close()
	for _, stmt := range []string{
		`CREATE KEYSPACE IF NOT EXISTS mqttstore_ready WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}`,
		`CREATE TABLE IF NOT EXISTS mqttstore_ready.roundtrip (k text PRIMARY KEY, v text)`,
	} {
		if err := session.Query(stmt).ExecContext(ctx); err != nil {
			return err
		}
	}
	// The TTL keeps the table from growing with every check.
	if err := session.Query(`INSERT INTO mqttstore_ready.roundtrip (k, v) VALUES (?, ?) USING TTL 300`, value, value).ExecContext(ctx); err != nil {
		return err
	}
	var got string
	if err := session.Query(`SELECT v FROM mqttstore_ready.roundtrip WHERE k = ?`, value).ScanContext(ctx, &got); err != nil {
		return err
	}
	return compare(got, value)
}

func dynamo(ctx context.Context, endpoint, value string) error {
	client := dynamodb.New(dynamodb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("mqttstore", "mqttstore", ""),
	})
	table := aws.String("mqttstore_ready")
	desc, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: table})
	var notFound *types.ResourceNotFoundException
	switch {
	case errors.As(err, &notFound):
		_, err = client.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            table,
			BillingMode:          types.BillingModePayPerRequest,
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return err
		}
		if err := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
			o.MinDelay = 100 * time.Millisecond
			o.MaxDelay = time.Second
		}).Wait(ctx, &dynamodb.DescribeTableInput{TableName: table}, timeout); err != nil {
			return err
		}
	case err != nil:
		return err
	case desc.Table.TableStatus != types.TableStatusActive:
		return fmt.Errorf("table %s is %s", *table, desc.Table.TableStatus)
	}
	key := map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: value}}
	item := map[string]types.AttributeValue{"k": key["k"], "v": &types.AttributeValueMemberS{Value: value}}
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: item}); err != nil {
		return err
	}
	out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return err
	}
	v, ok := out.Item["v"].(*types.AttributeValueMemberS)
	if !ok {
		return fmt.Errorf("read back item %v, wrote %q", out.Item, value)
	}
	if err := compare(v.Value, value); err != nil {
		return err
	}
	_, err = client.DeleteItem(ctx, &dynamodb.DeleteItemInput{TableName: table, Key: key})
	return err
}

func mongoDB(ctx context.Context, uri, value string) error {
	opts := options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second).SetConnectTimeout(5 * time.Second)
	// The driver retries a refused connection until its timeout: dial first to fail at once.
	for _, host := range opts.Hosts {
		conn, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			return err
		}
		conn.Close()
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.Background())
	coll := client.Database("mqttstore_ready").Collection("roundtrip")
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: value}, {Key: "v", Value: value}}); err != nil {
		return err
	}
	var doc struct {
		V string `bson:"v"`
	}
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: value}}).Decode(&doc); err != nil {
		return err
	}
	if err := compare(doc.V, value); err != nil {
		return err
	}
	_, err = coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: value}})
	return err
}
