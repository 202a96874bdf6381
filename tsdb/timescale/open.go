package timescale

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/url"

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
	backend.Register(backend.Driver{Open: openPool, Config: defaultConfig}, "timescale")
}

// DefaultTemplateFile is where EMQX keeps the template file; the pool setting "template"
// names another.
const DefaultTemplateFile = "data/templates/emqx_backend_timescale.tmpl"

// PoolKeys are the pool settings openPool reads: the spec's server, pool_size, username,
// password, database, ssl, keyfile, certfile and cacertfile, and template (the template
// file; default DefaultTemplateFile, or the spec's example when that does not exist).
var PoolKeys = append([]string{"server", "pool_size", "username", "password", "database", "template"}, backend.TLSKeys...)

// openPool opens the sink of an EMQX pool (backend.Open). pc.DSN, when set, replaces the
// connection settings.
func openPool(ctx context.Context, pc backend.PoolConfig) (hook.Backend, error) {
	p := pc.Pool
	if err := p.CheckKeys(PoolKeys...); err != nil {
		return nil, err
	}
	cfg := Config{DSN: pc.DSN, Options: pc.Options}
	if cfg.DSN == "" {
		host, port, serr := net.SplitHostPort(p.String("server", "127.0.0.1:5432"))
		if serr != nil {
			host, port = p.String("server", "127.0.0.1"), "5432"
		}
		u := url.URL{Scheme: "postgres", Host: net.JoinHostPort(host, port), Path: "/" + p.String("database", "")}
		if user := p.String("username", ""); user != "" {
			if pw, ok := p.Lookup("password"); ok {
				u.User = url.UserPassword(user, pw)
			} else {
				u.User = url.User(user)
			}
		}
		var err error
		if cfg.Options.TLS == nil {
			if cfg.Options.TLS, err = p.TLS(); err != nil {
				return nil, err
			}
		}
		if cfg.Options.TLS == nil {
			u.RawQuery = "sslmode=disable"
		} else {
			u.RawQuery = "sslmode=require"
		}
		cfg.DSN = u.String()
	}
	var err error
	tmplPath, tmplSet := p.Lookup("template")
	tmplSet = tmplSet && tmplPath != ""
	cfg.Templates, err = tsdb.LoadTemplates(tmplPath, tmplSet, DefaultTemplateFile, exampleTemplates, template.ParseTimescale, pc.Options.WithDefaults().Logger.Info)
	if err != nil {
		return nil, err
	}
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w", err)
	}
	return s, nil
}
