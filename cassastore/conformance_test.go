package cassastore_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/backend/backendtest"
	"github.com/mqttstore/mqttstore/cassastore"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/internal/testenv"
)

// testOptions keep timeouts generous: the node is one JVM on a small shared machine, where
// a schema change or a GC pause takes seconds.
var testOptions = backend.Options{QueryTimeout: 20 * time.Second, ConnectTimeout: 10 * time.Second, PoolSize: 2}

// testConfig is a store's configuration on a fresh keyspace of the test's node.
func testConfig(t testing.TB) cassastore.Config {
	t.Helper()
	env := testenv.Cassandra(t)
	return cassastore.Config{
		Hosts:        env.Hosts,
		Port:         env.Port,
		Keyspace:     env.Keyspace,
		EnsureSchema: true,
		Options:      testOptions,
	}
}

func open(t testing.TB, cfg cassastore.Config) *cassastore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := cassastore.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func storeOf(b hook.Backend) *cassastore.Store { return b.(*cassastore.Store) }

func TestConformance(t *testing.T) {
	backendtest.Run(t, backendtest.Harness{
		New: func(t *testing.T) hook.Backend { return open(t, testConfig(t)) },
		Reopen: func(t *testing.T, old hook.Backend) hook.Backend {
			return open(t, storeOf(old).Config())
		},
		Twin: func(t *testing.T, b hook.Backend) hook.Backend {
			return open(t, storeOf(b).Config())
		},
		Features: backendtest.Features{
			Functions:        cassastore.Functions,
			ExpiredTime:      true,
			MaxReturnedCount: true,
			TimeRange:        true,
			BinaryPayload:    true,
			WildcardFetch:    true,
			WildcardRetained: true,
		},
		Custom: &backendtest.CustomActions{
			Setup:  createRecordTable,
			Record: recordAction,
			Read: func(ctx context.Context, b hook.Backend) ([]backendtest.Record, error) {
				return readRecords(ctx, storeOf(b))
			},
		},
	})
}

// The custom-action table: one column per placeholder, named after it; text for the strings
// (Cassandra refuses invalid UTF-8 there, which the suite accepts as a counted failure), blob
// for the payload, integers for qos and ts; a timeuuid key from now().
func createRecordTable(t *testing.T, b hook.Backend) {
	t.Helper()
	s := storeOf(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ddl := `CREATE TABLE ` + s.Keyspace() + `.rec (id timeuuid PRIMARY KEY, clientid text, username text, peerhost text, node text, topic text, qos int, msgid text, payload blob, ts bigint)`
	if err := s.Session().Query(ddl).ExecContext(ctx); err != nil {
		t.Fatalf("create rec: %v", err)
	}
	if err := s.Session().AwaitSchemaAgreement(ctx); err != nil {
		t.Fatalf("create rec: %v", err)
	}
}

var recordColumns = []string{"clientid", "username", "peerhost", "node", "topic", "qos", "msgid", "payload", "ts"}

func recordAction(vars []string) hook.RuleAction {
	vals := make([]string, len(vars))
	for i, v := range vars {
		vals[i] = "${" + v + "}"
	}
	return hook.RuleAction{CQL: []string{"INSERT INTO rec (id, " + strings.Join(vars, ", ") + ") VALUES (now(), " + strings.Join(vals, ", ") + ")"}}
}

func readRecords(ctx context.Context, s *cassastore.Store) ([]backendtest.Record, error) {
	iter := s.Session().Query("SELECT " + strings.Join(recordColumns, ", ") + " FROM " + s.Keyspace() + ".rec").IterContext(ctx)
	var out []backendtest.Record
	for {
		row := make(map[string]any)
		if !iter.MapScan(row) {
			break
		}
		r := backendtest.Record{}
		for _, c := range recordColumns {
			switch v := row[c].(type) {
			case nil:
			case []byte:
				if v != nil {
					r[c] = string(v)
				}
			case string:
				r[c] = v
			case *string:
				if v != nil {
					r[c] = *v
				}
			case int:
				r[c] = strconv.Itoa(v)
			case int64:
				r[c] = strconv.FormatInt(v, 10)
			case int32:
				r[c] = strconv.FormatInt(int64(v), 10)
			case *int:
				if v != nil {
					r[c] = strconv.Itoa(*v)
				}
			case *int64:
				if v != nil {
					r[c] = strconv.FormatInt(*v, 10)
				}
			default:
				return nil, fmt.Errorf("column %s: unexpected %T", c, v)
			}
		}
		out = append(out, r)
	}
	return out, iter.Close()
}
