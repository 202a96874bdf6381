package dynamostore

import (
	"context"
	_ "embed"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
)

// defaultConfig is the registry's default configuration: a local dynalite and the spec's
// DynamoDB rule list.
//
//go:embed default.conf
var defaultConfig []byte

func init() {
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig}, "dynamo")
}

// poolKeys are the pool settings openPool reads, as EMQX names them, plus table_prefix (not
// EMQX's).
var poolKeys = []string{"server", "pool_size", "aws_access_key_id", "aws_secret_access_key", "table_prefix"}

// openPool opens a DynamoDB store from an EMQX pool (backend.Open): region is the store
// section's setting (backend.dynamo.region), server the pool's endpoint (pc.DSN overrides
// it), and the static credentials, when both are set, replace the SDK's default chain.
func openPool(ctx context.Context, pc backend.PoolConfig) (hook.Backend, error) {
	if err := pc.Settings.CheckKeys("region"); err != nil {
		return nil, err
	}
	p := pc.Pool
	if err := p.CheckKeys(poolKeys...); err != nil {
		return nil, err
	}
	cfg := Config{
		Region:          pc.Settings.String("region", ""),
		Endpoint:        p.String("server", ""),
		AccessKeyID:     p.String("aws_access_key_id", ""),
		SecretAccessKey: p.String("aws_secret_access_key", ""),
		TablePrefix:     p.String("table_prefix", ""),
		EnsureSchema:    pc.EnsureSchema,
		Options:         pc.Options,
	}
	if pc.DSN != "" {
		cfg.Endpoint = pc.DSN
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, err // not a nil *Store in a non-nil hook.Backend
	}
	return s, nil
}
