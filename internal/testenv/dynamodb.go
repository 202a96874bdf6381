package testenv

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
)

// DynamoConfig locates a DynamoDB endpoint and a table prefix that belongs to one test.
type DynamoConfig struct {
	Endpoint    string // e.g. http://127.0.0.1:8000
	Region      string
	TablePrefix string // fresh; the tables whose names start with it are deleted when the test ends
}

// Client returns a client of the endpoint with static credentials (the local server accepts any).
func (c DynamoConfig) Client() *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       c.Region,
		BaseEndpoint: aws.String(c.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("mqttstore", "mqttstore", ""),
	})
}

// DynamoDB returns the endpoint named by MQTTSTORE_DYNAMODB_ENDPOINT (default
// http://127.0.0.1:8000) and MQTTSTORE_DYNAMODB_REGION (default us-east-1), with a table prefix
// for t. The tables t creates under the prefix are deleted when t ends.
func DynamoDB(t testing.TB) DynamoConfig {
	t.Helper()
	cfg := DynamoConfig{
		Endpoint:    Getenv("MQTTSTORE_DYNAMODB_ENDPOINT", "http://127.0.0.1:8000"),
		Region:      Getenv("MQTTSTORE_DYNAMODB_REGION", "us-east-1"),
		TablePrefix: Name(t, 64) + "_",
	}
	client := cfg.Client()
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	// One attempt: a server that is not there should not be retried for seconds.
	if _, err := client.ListTables(ctx, &dynamodb.ListTablesInput{Limit: aws.Int32(1)},
		func(o *dynamodb.Options) { o.RetryMaxAttempts = 1 }); err != nil {
		Unavailable(t, "dynamodb", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		pages := dynamodb.NewListTablesPaginator(client, &dynamodb.ListTablesInput{})
		for pages.HasMorePages() {
			page, err := pages.NextPage(ctx)
			if err != nil {
				t.Errorf("testenv: dynamodb: list tables: %v", err)
				return
			}
			for _, name := range page.TableNames {
				if !strings.HasPrefix(name, cfg.TablePrefix) {
					continue
				}
				if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
					t.Errorf("testenv: dynamodb: delete table %s: %v", name, err)
				}
			}
		}
	})
	return cfg
}
