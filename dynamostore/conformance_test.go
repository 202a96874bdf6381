package dynamostore_test

import (
	"context"
	"testing"

	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/dynamostore"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// testConfig is a store's configuration on a fresh table prefix of the test's dynalite.
func testConfig(t testing.TB) dynamostore.Config {
	t.Helper()
	env := testenv.DynamoDB(t)
	return dynamostore.Config{
		Region:          env.Region,
		Endpoint:        env.Endpoint,
		AccessKeyID:     "mqttstore",
		SecretAccessKey: "mqttstore",
		TablePrefix:     env.TablePrefix,
		EnsureSchema:    true,
	}
}

func open(t testing.TB, cfg dynamostore.Config) *dynamostore.Store {
	t.Helper()
	s, err := dynamostore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) hook.Backend { return open(t, testConfig(t)) },
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend {
			return open(t, old.(*dynamostore.Store).Config())
		},
		Twin: func(t *testing.T, b hook.Backend) hook.Backend {
			return open(t, b.(*dynamostore.Store).Config())
		},
		Features: backendtest.Features{
			Functions:        dynamostore.Functions,
			ExpiredTime:      true,
			MaxReturnedCount: true,
			TimeRange:        true,
			BinaryPayload:    true,
			WildcardFetch:    true,
			WildcardRetained: true,
		},
	})
}
