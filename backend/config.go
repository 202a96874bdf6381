package backend

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mqttstore/mqttstore/hook"
)

// Config is EMQX 4.x backend configuration, as in the emqx_backend_*.conf files, read by
// LoadConfig:
//
//	backend.pgsql.pool1.server = 127.0.0.1:5432
//	backend.pgsql.hook.message.publish.1 = {"topic": "#", "action": {"function": "on_message_publish"}, "pool": "pool1"}
type Config struct {
	// Stores holds each store's section by the name its keys use: "redis", "mysql", "pgsql",
	// "mongo", "cassa", "dynamo", "influxdb", "opentsdb", "timescale", or any other.
	Stores map[string]*StoreConfig
	// Ignored lists, in file order, the keys that do not start with "backend.": they belong to
	// other EMQX plugins and are skipped, so that a whole emqx.conf can be read. A caller may
	// log them, in case one is a misspelt backend key.
	Ignored []string
}

// StoreConfig is one store's section of a Config.
type StoreConfig struct {
	Name string
	// Settings holds the keys directly under the store, "backend.<name>.<key>", such as
	// DynamoDB's region.
	Settings Settings
	// Pools holds "backend.<name>.<pool>.<key>" by pool name. The Cassandra pools, which EMQX
	// configures as "backend.ecql.<pool>.<key>", are those of the "cassa" store. Every other
	// middle name but "hook" is a pool (MongoDB's driver settings, "backend.mongo.topology.*",
	// appear as the pool "topology").
	Pools map[string]*Pool
	// Rules holds "backend.<name>.hook.<point>.<n>" in the order of the file, each named by
	// its key (so numbered as in the key), parsed and validated by hook.ParseRule.
	Rules []hook.Rule
}

// Pool is a named connection pool's settings.
type Pool struct {
	Name string
	Settings
}

// Settings are the key = value settings of a pool or a store, read with typed accessors.
// A key whose value is empty ("backend.redis.pool1.password =") counts as absent, except for
// Lookup. Accessor errors are *ConfigError naming the key and its line.
type Settings struct {
	prefix string // "backend.pgsql.pool1.", for errors
	values map[string]setting
}

type setting struct {
	value string
	line  int
}

// ConfigError is what is wrong with one line of configuration. It is a hook.ErrConfig
// (errors.Is), whatever its Err: every accessor of Settings and LoadConfig report through it.
type ConfigError struct {
	Line int    // 1-based; 0 for a setting given in code (NewPool)
	Key  string // "" if the line has no key
	Err  error  // for a bad rule, a *hook.RuleError
}

func (e *ConfigError) Error() string {
	where := "backend config: "
	if e.Line > 0 { // 0: a setting given in code (NewPool), not read from a line
		where += "line " + strconv.Itoa(e.Line) + ": "
	}
	var re *hook.RuleError
	if e.Key == "" || errors.As(e.Err, &re) && re.Rule == e.Key {
		return fmt.Sprintf("%s%v", where, e.Err)
	}
	return fmt.Sprintf("%s%s: %v", where, e.Key, e.Err)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// Is reports whether target is hook.ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == hook.ErrConfig }

// maxLine bounds a configuration line (a rule with long SQL statements fits easily).
const maxLine = 1 << 20

// LoadConfig reads EMQX 4.x configuration in its "key = value" format (cuttlefish): one
// setting a line, no continuation lines, and comment lines starting with "#" (which is how
// EMQX ships its optional examples, "## backend.redis.hook..."). A value runs to the end of
// its line, "#" included (topic filters hold it). Keys not under "backend." are skipped (see
// Config.Ignored). A key given twice is an error, not an override: in one file it is almost
// always a mistake.
//
// The error joins a *ConfigError for every bad line, naming its number and key.
func LoadConfig(r io.Reader) (*Config, error) {
	c := &Config{Stores: make(map[string]*StoreConfig)}
	seen := make(map[string]int) // key → line
	var errs []error
	fail := func(line int, key string, err error) {
		errs = append(errs, &ConfigError{Line: line, Key: key, Err: err})
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if line == 1 {
			text = strings.TrimPrefix(text, "\uFEFF")
		}
		text = strings.TrimSpace(text)
		if text == "" || text[0] == '#' {
			continue
		}
		key, value, ok := strings.Cut(text, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if !ok {
			fail(line, "", fmt.Errorf("want key = value, got %q", clip(text)))
			continue
		}
		if err := checkKey(key); err != nil {
			fail(line, "", fmt.Errorf("key %q: %w", clip(key), err))
			continue
		}
		if first, dup := seen[key]; dup {
			fail(line, key, fmt.Errorf("set again (first at line %d)", first))
			continue
		}
		seen[key] = line
		if err := c.add(key, value, line); err != nil {
			fail(line, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxLine)
		}
		fail(line+1, "", err)
	}
	if errs != nil {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// LoadConfigFile is LoadConfig on the named file; errors name the file.
func LoadConfigFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := LoadConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// add files one backend key's value.
func (c *Config) add(key, value string, line int) error {
	parts := strings.Split(key, ".")
	if parts[0] != "backend" {
		c.Ignored = append(c.Ignored, key)
		return nil
	}
	if len(parts) < 3 {
		return errors.New("want backend.<store>.<setting>, backend.<store>.<pool>.<setting> or backend.<store>.hook.<point>.<n>")
	}
	name := parts[1]
	if name == "ecql" { // EMQX's Cassandra plugin names its pools after its driver
		name = "cassa"
	}
	s := c.Stores[name]
	if s == nil {
		s = &StoreConfig{Name: name, Settings: newSettings("backend." + parts[1] + "."), Pools: make(map[string]*Pool)}
		c.Stores[name] = s
	}
	switch {
	case parts[2] == "hook":
		_, point, err := hook.ParseRuleKey(key)
		if err != nil {
			return err
		}
		r, err := hook.ParseRule(key, point, []byte(value))
		if err != nil {
			return err
		}
		s.Rules = append(s.Rules, r)
	case len(parts) == 3:
		s.Settings.values[parts[2]] = setting{value, line}
	case name == "mongo" && parts[2] == "topology":
		// EMQX's MongoDB backend writes its driver's topology options under the store,
		// backend.mongo.topology.<key>: a store setting "topology.<key>", not a pool.
		s.Settings.values[strings.Join(parts[2:], ".")] = setting{value, line}
	default:
		p := s.Pools[parts[2]]
		if p == nil {
			p = &Pool{Name: parts[2], Settings: newSettings(strings.Join(parts[:3], ".") + ".")}
			s.Pools[p.Name] = p
		}
		p.values[strings.Join(parts[3:], ".")] = setting{value, line}
	}
	return nil
}

func newSettings(prefix string) Settings {
	return Settings{prefix: prefix, values: make(map[string]setting)}
}

// checkKey accepts dot-separated names of letters, digits, '_' and '-'.
func checkKey(key string) error {
	if key == "" {
		return errors.New("empty")
	}
	for seg := range strings.SplitSeq(key, ".") {
		if seg == "" {
			return errors.New("empty segment")
		}
		for _, c := range []byte(seg) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("invalid character %q", c)
			}
		}
	}
	return nil
}

// clip shortens text quoted in errors.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// Lookup returns the value of key as written, and whether the key is set.
func (s Settings) Lookup(key string) (string, bool) {
	v, ok := s.values[key]
	return v.value, ok
}

// Keys returns the keys that are set, sorted.
func (s Settings) Keys() []string {
	keys := make([]string, 0, len(s.values))
	for k := range s.values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// get returns key's setting if it is set and not empty.
func (s Settings) get(key string) (setting, bool) {
	v, ok := s.values[key]
	return v, ok && v.value != ""
}

func (s Settings) errorf(key string, v setting, format string, args ...any) error {
	return &ConfigError{Line: v.line, Key: s.prefix + key, Err: fmt.Errorf(format, args...)}
}

// String returns the value of key, or def if it is absent or empty.
func (s Settings) String(key, def string) string {
	if v, ok := s.get(key); ok {
		return v.value
	}
	return def
}

// List returns the comma-separated values of key ("127.0.0.1:7000, 127.0.0.1:7001"), trimmed,
// without empty ones; nil if it is absent.
func (s Settings) List(key string) []string {
	v, _ := s.get(key)
	var list []string
	for item := range strings.SplitSeq(v.value, ",") {
		if item = strings.TrimSpace(item); item != "" {
			list = append(list, item)
		}
	}
	return list
}

// Int returns the decimal integer value of key, or def if it is absent or empty.
func (s Settings) Int(key string, def int) (int, error) {
	v, ok := s.get(key)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(v.value)
	if err != nil {
		return def, s.errorf(key, v, "want an integer, got %q", clip(v.value))
	}
	return n, nil
}

// Bool returns the value of key, one of true, false, on, off; def if it is absent or empty.
func (s Settings) Bool(key string, def bool) (bool, error) {
	v, ok := s.get(key)
	if !ok {
		return def, nil
	}
	switch v.value {
	case "true", "on":
		return true, nil
	case "false", "off":
		return false, nil
	}
	return def, s.errorf(key, v, "want true or false, got %q", clip(v.value))
}

// Duration returns the value of key as a duration: with a unit ("500ms", "5s", "2h", "1d",
// "1h30m"), or a bare number of unit (EMQX writes some durations in seconds, others in
// milliseconds: the caller knows which); def if it is absent or empty. Negative values are
// errors.
func (s Settings) Duration(key string, def, unit time.Duration) (time.Duration, error) {
	v, ok := s.get(key)
	if !ok {
		return def, nil
	}
	if n, err := strconv.ParseInt(v.value, 10, 64); err == nil {
		d := time.Duration(n) * unit
		if n < 0 || unit != 0 && d/unit != time.Duration(n) {
			return def, s.errorf(key, v, "duration %q out of range", clip(v.value))
		}
		return d, nil
	}
	d, err := hook.ParseDuration(v.value)
	if err != nil {
		return def, s.errorf(key, v, "%w", err)
	}
	return d, nil
}

// NewPool returns a pool with the given settings, for a program that configures a store in
// code rather than with a configuration file.
func NewPool(name string, settings map[string]string) *Pool {
	p := &Pool{Name: name, Settings: newSettings("pool " + name + ": ")}
	for k, v := range settings {
		p.values[k] = setting{value: v}
	}
	return p
}

// CheckKeys returns a *ConfigError wrapping hook.ErrConfig for the first key (in sorted order)
// that is set but not in known: a misspelt setting ("sever", "pool_szie") must not silently
// mean its default.
func (s Settings) CheckKeys(known ...string) error {
	for _, k := range s.Keys() {
		if !slices.Contains(known, k) {
			return s.errorf(k, s.values[k], "unknown setting (known here: %s)", strings.Join(known, ", "))
		}
	}
	return nil
}

// TLSKeys are the settings TLS reads, as EMQX names them.
var TLSKeys = []string{"ssl", "keyfile", "certfile", "cacertfile"}

// TLS returns the TLS configuration of the settings ssl, keyfile and certfile (a client
// certificate) and cacertfile (the CAs that verify the server; default: the system's), or nil
// when ssl is false (the default) and none of the files is set.
func (s Settings) TLS() (*tls.Config, error) {
	ssl, err := s.Bool("ssl", false)
	if err != nil {
		return nil, err
	}
	key, cert, ca := s.String("keyfile", ""), s.String("certfile", ""), s.String("cacertfile", "")
	if !ssl && key == "" && cert == "" && ca == "" {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if key != "" || cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			v, _ := s.get("certfile")
			return nil, s.errorf("certfile", v, "%w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			v, _ := s.get("cacertfile")
			return nil, s.errorf("cacertfile", v, "%w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			v, _ := s.get("cacertfile")
			return nil, s.errorf("cacertfile", v, "no PEM certificate in %s", ca)
		}
	}
	return c, nil
}
