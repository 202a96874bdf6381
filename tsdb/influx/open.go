package influx

import (
	"context"
	_ "embed"
	"fmt"
	"strings"

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
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig}, "influxdb")
}

// DefaultTemplateFile is where EMQX keeps the template file, relative to its working
// directory; the pool setting "template" names another.
const DefaultTemplateFile = "data/templates/emqx_backend_influxdb.tmpl"

// PoolKeys are the pool settings openPool reads: the spec's server, pool_size and
// set_timestamp; precision (n, u, ms, s, m, h; default ms); template (the template file;
// default DefaultTemplateFile, or the spec's example when that does not exist) and
// string_fields (write every field as a string, as EMQX did); for HTTP, database, rp,
// username and password (v1) or bucket, org and token (v2); and the TLS settings.
var PoolKeys = append([]string{"server", "pool_size", "set_timestamp", "precision", "template", "string_fields",
	"database", "rp", "username", "password", "bucket", "org", "token"}, backend.TLSKeys...)

// openPool opens the sink of an EMQX pool (backend.Open). pc.DSN, when set, replaces server.
func openPool(ctx context.Context, pc backend.PoolConfig) (hook.Backend, error) {
	p := pc.Pool
	if err := p.CheckKeys(PoolKeys...); err != nil {
		return nil, err
	}
	cfg := Config{
		Server:          p.String("server", "127.0.0.1:8089"),
		Database:        p.String("database", ""),
		RetentionPolicy: p.String("rp", ""),
		Username:        p.String("username", ""),
		Password:        p.String("password", ""),
		Bucket:          p.String("bucket", ""),
		Org:             p.String("org", ""),
		Token:           p.String("token", ""),
		Options:         pc.Options,
	}
	if pc.DSN != "" {
		cfg.Server = pc.DSN
	}
	var err error
	if cfg.Precision, err = ParsePrecision(p.String("precision", "ms")); err != nil {
		return nil, err
	}
	if cfg.SetTimestamp, err = p.Bool("set_timestamp", false); err != nil {
		return nil, err
	}
	stringFields, err := p.Bool("string_fields", false)
	if err != nil {
		return nil, err
	}
	if cfg.Options.TLS == nil && strings.HasPrefix(cfg.Server, "https://") {
		if cfg.Options.TLS, err = p.TLS(); err != nil {
			return nil, err
		}
	}
	opts := template.InfluxOptions{TimeUnit: cfg.Precision, StringFields: stringFields}
	tmplPath, tmplSet := p.Lookup("template")
	tmplSet = tmplSet && tmplPath != ""
	cfg.Templates, err = tsdb.LoadTemplates(tmplPath, tmplSet, DefaultTemplateFile, exampleTemplates, func(b []byte) (*template.Set[template.InfluxTemplate], error) {
		return template.ParseInflux(b, opts)
	}, pc.Options.WithDefaults().Logger.Info)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return s, nil
}
