package dynamostore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// The spec's table names (EMQX 4.x "DynamoDB 消息存储"), and the topic index this store adds.
const (
	TableClient     = "mqtt_client"
	TableSub        = "mqtt_sub"
	TableMsg        = "mqtt_msg"
	TableTopicMsg   = "mqtt_topic_msg_map"
	TableRetain     = "mqtt_retain"
	TableAcked      = "mqtt_acked"
	TableTopicIndex = "mqtt_topic_index" // not EMQX's: wildcard lookups without Scans
)

// MaxItemSize is DynamoDB's limit on one item (names and values): 400 KB.
const MaxItemSize = 400 * 1024

// Throughput is a provisioned capacity; Config.Provisioned nil means on-demand billing.
type Throughput struct {
	Read, Write int64
}

// Config configures a Store. The zero value of each field means its default.
type Config struct {
	// Client, when set, is used as is (Region, Endpoint, credentials and HTTPClient are
	// ignored).
	Client *dynamodb.Client
	// Region is the AWS region (EMQX's backend.dynamo.region). Default: the SDK's chain,
	// else us-east-1.
	Region string
	// Endpoint is the service URL (EMQX's pool server, e.g. http://localhost:8000); "" means
	// AWS's endpoint for Region.
	Endpoint string
	// AccessKeyID and SecretAccessKey are static credentials; both empty means the SDK's
	// default chain (environment, shared files, instance roles). The secret never appears in
	// errors or logs.
	AccessKeyID, SecretAccessKey string
	// HTTPClient replaces the SDK's HTTP client (a proxy, fault injection in tests).
	HTTPClient aws.HTTPClient
	// TablePrefix is put before every table name ("" in production: the spec's names).
	TablePrefix string
	// EnsureSchema creates the tables that are missing and waits until they are ACTIVE.
	EnsureSchema bool
	// Provisioned, when set, gives the created tables this capacity; nil: on-demand billing.
	Provisioned *Throughput
	// UpdateConcurrency bounds the UpdateItem calls (mqtt_topic_msg_map string sets, client
	// state) one flush runs at a time; default 16.
	UpdateConcurrency int
	// Options are the shared options (batching, queue, retry, timeouts, logger).
	Options backend.Options
}

// Store is the DynamoDB store. It is safe for concurrent use.
type Store struct {
	cfg    Config
	opts   backend.Options
	db     *dynamodb.Client
	t      tables
	w      *backend.Writer[op]
	closed atomic.Bool

	indexed sync.Map // index keys already written (they are never deleted)

	ttlOnce sync.Once
	ttlErr  error
	ttlMode atomic.Int32 // 0 unknown, 1 native TTL, 2 filtered on read only
}

type tables struct {
	client, sub, msg, topicMsg, retain, acked, index string
}

func newTables(prefix string) tables {
	return tables{
		client: prefix + TableClient, sub: prefix + TableSub, msg: prefix + TableMsg,
		topicMsg: prefix + TableTopicMsg, retain: prefix + TableRetain, acked: prefix + TableAcked,
		index: prefix + TableTopicIndex,
	}
}

// String implements fmt.Stringer so that a Config printed with %v or %+v hides the secret.
func (c Config) String() string {
	secret := ""
	if c.SecretAccessKey != "" {
		secret = "REDACTED"
	}
	return fmt.Sprintf("dynamostore.Config{Region:%q Endpoint:%q AccessKeyID:%q SecretAccessKey:%s TablePrefix:%q EnsureSchema:%v}",
		c.Region, c.Endpoint, c.AccessKeyID, secret, c.TablePrefix, c.EnsureSchema)
}

// GoString hides the secret from %#v too.
func (c Config) GoString() string { return c.String() }

// Open connects to DynamoDB, creates the tables when cfg.EnsureSchema is set, and starts the
// writer. Errors never include the secret key.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	opts := cfg.Options.WithDefaults()
	if cfg.UpdateConcurrency <= 0 {
		cfg.UpdateConcurrency = 16
	}
	if (cfg.AccessKeyID == "") != (cfg.SecretAccessKey == "") {
		return nil, fmt.Errorf("dynamostore: %w: aws_access_key_id and aws_secret_access_key go together", hook.ErrConfig)
	}
	db := cfg.Client
	if db == nil {
		var err error
		if db, err = newClient(ctx, cfg, opts); err != nil {
			return nil, err
		}
	}
	s := &Store{cfg: cfg, opts: opts, db: db, t: newTables(cfg.TablePrefix)}
	if cfg.EnsureSchema {
		if err := s.EnsureSchema(ctx); err != nil {
			return nil, s.redact(err)
		}
	} else if err := s.Ping(ctx); err != nil {
		return nil, err
	}
	s.w = backend.NewWriter(backend.WriterConfig[op]{
		Store:    "dynamostore",
		Options:  opts,
		Flush:    s.flush,
		Key:      func(o op) string { return o.key },
		Ping:     s.Ping,
		Size:     func(o op) int { return o.size() },
		MaxBatch: 25,
		// A BatchWriteItem request is at most 16 MB; a batch's items are 400 KB at most each.
		MaxBatchBytes: 16 << 20,
		Classify:      classify,
	})
	return s, nil
}

func newClient(ctx context.Context, cfg Config, opts backend.Options) (*dynamodb.Client, error) {
	var lo []func(*awsconfig.LoadOptions) error
	if cfg.Region != "" {
		lo = append(lo, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		lo = append(lo, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, "")))
	}
	// The HTTP client has no timeout of its own but the dial's (Options.ConnectTimeout, not
	// the SDK's 30 s): every call is bounded by its context, which for writes carries
	// Options.QueryTimeout, so a partition (connections accepted, nothing answered) costs a
	// flush QueryTimeout and the writer retries. Writes make one SDK attempt (noSDKRetry):
	// the writer owns their retries, without limit by default, so an outage of any length
	// fails nothing for good.
	lo = append(lo, awsconfig.WithHTTPClient(awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = opts.ConnectTimeout
	}).WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConnsPerHost = max(opts.PoolSize, 2) * 4
	})))
	ac, err := awsconfig.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("dynamostore: %w: AWS configuration: %v", hook.ErrConfig, redactString(err.Error(), cfg.SecretAccessKey))
	}
	if ac.Region == "" {
		ac.Region = "us-east-1"
	}
	return dynamodb.NewFromConfig(ac, func(o *dynamodb.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		if cfg.HTTPClient != nil {
			o.HTTPClient = cfg.HTTPClient
		}
	}), nil
}

// redact removes the secret key from an error's text.
func (s *Store) redact(err error) error {
	if err == nil || s.cfg.SecretAccessKey == "" || !strings.Contains(err.Error(), s.cfg.SecretAccessKey) {
		return err
	}
	return errors.New(redactString(err.Error(), s.cfg.SecretAccessKey))
}

func redactString(msg, secret string) string {
	if secret == "" {
		return msg
	}
	return strings.ReplaceAll(msg, secret, "REDACTED")
}

// Client returns the DynamoDB client the store uses.
func (s *Store) Client() *dynamodb.Client { return s.db }

// TableName returns the name of one of the spec's tables (or TableTopicIndex) with the prefix.
func (s *Store) TableName(table string) string { return s.cfg.TablePrefix + table }

// Config returns the store's configuration.
func (s *Store) Config() Config { return s.cfg }

// Ping implements backend.Pinger: it describes the mqtt_msg table.
func (s *Store) Ping(ctx context.Context) error {
	if _, err := s.db.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(s.t.msg)}); err != nil {
		return fmt.Errorf("dynamostore: ping: %w", s.redact(err))
	}
	return nil
}

// Flush implements hook.Flusher.
func (s *Store) Flush(ctx context.Context) error {
	if err := s.w.Flush(ctx); err != nil {
		return fmt.Errorf("dynamostore: flush: %w", err)
	}
	return nil
}

// Stats implements backend.StatsReporter: the writer's counters; writes refused before
// reaching DynamoDB (items over 400 KB) are in Failed.
func (s *Store) Stats() backend.Stats { return s.w.Stats() }

// Close drains the write queue within ctx.
func (s *Store) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := s.w.Close(ctx); err != nil {
		return fmt.Errorf("dynamostore: close: %w", err)
	}
	return nil
}

// schema is the key schema of each table: HASH and optional RANGE, all strings.
func (s *Store) schema() []struct{ name, hash, rng string } {
	return []struct{ name, hash, rng string }{
		{s.t.client, "clientid", ""},
		{s.t.sub, "clientid", "topic"},
		{s.t.msg, "msgid", ""},
		{s.t.topicMsg, "topic", ""},
		{s.t.retain, "topic", ""},
		{s.t.acked, "topic", "clientid"},
		{s.t.index, "bucket", "topic"},
	}
}

// EnsureSchema creates the tables that are missing (on-demand billing unless
// Config.Provisioned) and waits until every table is ACTIVE.
func (s *Store) EnsureSchema(ctx context.Context) error {
	for _, tb := range s.schema() {
		in := &dynamodb.CreateTableInput{
			TableName:            aws.String(tb.name),
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(tb.hash), KeyType: types.KeyTypeHash}},
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(tb.hash), AttributeType: types.ScalarAttributeTypeS}},
			BillingMode:          types.BillingModePayPerRequest,
		}
		if tb.rng != "" {
			in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(tb.rng), KeyType: types.KeyTypeRange})
			in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(tb.rng), AttributeType: types.ScalarAttributeTypeS})
		}
		if p := s.cfg.Provisioned; p != nil {
			in.BillingMode = types.BillingModeProvisioned
			in.ProvisionedThroughput = &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(p.Read), WriteCapacityUnits: aws.Int64(p.Write)}
		}
		if _, err := s.db.CreateTable(ctx, in); err != nil {
			var inUse *types.ResourceInUseException
			if !errors.As(err, &inUse) {
				return fmt.Errorf("dynamostore: create table %s: %w", tb.name, err)
			}
		}
	}
	waiter := dynamodb.NewTableExistsWaiter(s.db, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, time.Second
	})
	for _, tb := range s.schema() {
		if err := waiter.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(tb.name)}, 2*time.Minute); err != nil {
			return fmt.Errorf("dynamostore: wait for table %s to be ACTIVE: %w", tb.name, err)
		}
	}
	return nil
}

// enableTTL turns on DynamoDB's TTL on expire_at for mqtt_msg and mqtt_retain, once. A server
// without TTL (dynalite) answers with an error: the store then relies on the fetch filter
// alone, which it applies in every case (DynamoDB deletes expired items only within hours),
// and says so once in the log.
func (s *Store) enableTTL(ctx context.Context) {
	s.ttlOnce.Do(func() {
		mode := int32(1)
		for _, tb := range []string{s.t.msg, s.t.retain} {
			d, err := s.db.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(tb)})
			if err == nil && d.TimeToLiveDescription != nil && d.TimeToLiveDescription.TimeToLiveStatus != types.TimeToLiveStatusDisabled {
				continue // enabled or enabling already
			}
			if err == nil {
				_, err = s.db.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
					TableName:               aws.String(tb),
					TimeToLiveSpecification: &types.TimeToLiveSpecification{AttributeName: aws.String(attrExpire), Enabled: aws.Bool(true)},
				})
			}
			if err != nil {
				mode = 2
				s.ttlErr = s.redact(err)
				s.opts.Logger.Warn("dynamostore: the server has no TTL (UpdateTimeToLive failed): expired messages are filtered on read and stay in the tables",
					"table", tb, "err", s.ttlErr)
				break
			}
		}
		s.ttlMode.Store(mode)
	})
}

// NativeTTL reports whether DynamoDB's TTL is on for the store's tables (false before a rule
// with expired_time was activated, and on servers without TTL).
func (s *Store) NativeTTL() bool { return s.ttlMode.Load() == 1 }
