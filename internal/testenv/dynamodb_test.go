package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

func createDynamoTable(t *testing.T, client *dynamodb.Client, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	waiter := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, time.Second // the defaults start at 20s
	})
	if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, 30*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestDynamoDBWritesReadBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cfg := DynamoDB(t)
	client := cfg.Client()
	table := aws.String(cfg.TablePrefix + "kv")
	createDynamoTable(t, client, *table)
	want := []byte("hello \x00 dynamodb")
	key := map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "a/b"}}
	_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: map[string]types.AttributeValue{
		"k": key["k"], "v": &types.AttributeValueMemberB{Value: want},
	}})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := out.Item["v"].(*types.AttributeValueMemberB)
	if !ok || string(got.Value) != string(want) {
		t.Errorf("read back item %v, wrote v=%q", out.Item, want)
	}
}

func TestDynamoDBTablesAreDeleted(t *testing.T) {
	t.Parallel()
	var inner DynamoConfig
	t.Run("inner", func(t *testing.T) {
		inner = DynamoDB(t)
		createDynamoTable(t, inner.Client(), inner.TablePrefix+"kv")
	})
	outer := DynamoDB(t)
	if strings.HasPrefix(inner.TablePrefix, outer.TablePrefix) || strings.HasPrefix(outer.TablePrefix, inner.TablePrefix) {
		t.Fatalf("prefixes overlap: %q and %q", inner.TablePrefix, outer.TablePrefix)
	}
	pages := dynamodb.NewListTablesPaginator(outer.Client(), &dynamodb.ListTablesInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range page.TableNames {
			if strings.HasPrefix(name, inner.TablePrefix) {
				t.Errorf("table %s outlived its test", name)
			}
		}
	}
}
