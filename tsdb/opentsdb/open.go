package opentsdb

import (
	"context"
	_ "embed"
	"time"

	"github.com/mqttstore/mqttstore/backend"
	"github.com/mqttstore/mqttstore/hook"
	"github.com/mqttstore/mqttstore/template"
	"github.com/mqttstore/mqttstore/tsdb"
)

//go:embed default.conf
var defaultConfig []byte

// exampleTemplates is the spec's example template file, used when a pool names none and
// DefaultTemplateFile does not exist.
//
//go:embed example.tmpl
var exampleTemplates []byte

func init() {
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig}, "opentsdb")
}

// DefaultTemplateFile is where EMQX keeps the template file; the pool setting "template"
// names another.
const DefaultTemplateFile = "data/templates/emqx_backend_opentsdb.tmpl"

// PoolKeys are the pool settings openPool reads: the spec's server, pool_size, summary,
// details, sync, sync_timeout (milliseconds, or a duration such as "2s") and max_batch_size,
// template (the template file; default DefaultTemplateFile, or the spec's example when that
// does not exist), and the TLS settings (for an https:// server).
var PoolKeys = append([]string{"server", "pool_size", "summary", "details", "sync", "sync_timeout", "max_batch_size", "template"}, backend.TLSKeys...)

// openPool opens the sink of an EMQX pool (backend.Open). pc.DSN, when set, replaces server.
func openPool(ctx context.Context, pc backend.PoolConfig) (hook.Backend, error) {
	p := pc.Pool
	if err := p.CheckKeys(PoolKeys...); err != nil {
		return nil, err
	}
	cfg := Config{Server: p.String("server", "127.0.0.1:4242"), Options: pc.Options}
	if pc.DSN != "" {
		cfg.Server = pc.DSN
	}
	var err error
	for _, b := range []struct {
		key string
		dst *bool
		def bool
	}{{"summary", &cfg.Summary, true}, {"details", &cfg.Details, false}, {"sync", &cfg.Sync, false}} {
		if *b.dst, err = p.Bool(b.key, b.def); err != nil {
			return nil, err
		}
	}
	if cfg.SyncTimeout, err = p.Duration("sync_timeout", 0, time.Millisecond); err != nil {
		return nil, err
	}
	if cfg.MaxBatch, err = p.Int("max_batch_size", DefaultMaxBatch); err != nil {
		return nil, err
	}
	if cfg.Options.TLS == nil {
		if cfg.Options.TLS, err = p.TLS(); err != nil {
			return nil, err
		}
	}
	tmplPath, tmplSet := p.Lookup("template")
	tmplSet = tmplSet && tmplPath != ""
	cfg.Templates, err = tsdb.LoadTemplates(tmplPath, tmplSet, DefaultTemplateFile, exampleTemplates, func(b []byte) (*template.Set[template.OpenTSDBTemplate], error) {
		return template.ParseOpenTSDB(b, template.OpenTSDBOptions{})
	}, pc.Options.WithDefaults().Logger.Info)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}
