package gateway

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	must(t, os.WriteFile(good, []byte(`
allow:
  - host: pypi.org
  - host: "*.pythonhosted.org"
  - host: api.example.com
    ports: [443, 8443]
  - host: mirror.test
    allow_private: true
secrets:
  - name: example-key
    hosts: [api.example.com]
    query: true
denied_prefixes: [34.118.224.0/20]
hosts:
  mirror.test: [127.0.0.1]
sandboxes:
  - id: one
    addr: 10.0.0.5
    allow: "pypi.org"
  - id: two
    token_sha256: abc
    allow: none
`), 0o600))
	c, err := LoadConfig(good)
	must(t, err)
	if len(c.Allow) != 4 || !c.Allow[3].AllowPrivate || len(c.Allow[2].Ports) != 2 || !c.Secrets[0].Query {
		t.Errorf("%+v", c)
	}
	r, err := c.Resolver()
	must(t, err)
	if addrs, err := r.Resolve(t.Context(), "MIRROR.test."); err != nil || addrs[0].String() != "127.0.0.1" {
		t.Errorf("hosts: %v %v", addrs, err)
	}
	if p, err := c.Prefixes(); err != nil || p[0].String() != "34.118.224.0/20" {
		t.Errorf("prefixes: %v %v", p, err)
	}
	d, err := c.Directory()
	must(t, err)
	if sb, ok := d.ByID("two"); !ok || sb.Allow == nil || sb.Allow.Len() != 0 {
		t.Errorf("two: %+v", sb)
	}

	for name, body := range map[string]string{
		"misspelt field": "alow:\n  - host: pypi.org\n",
		"wrong type":     "allow: pypi.org\n",
		"not yaml":       "allow: [\n",
	} {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, []byte(body), 0o600))
		if _, err := LoadConfig(p); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := LoadConfig(filepath.Join(dir, "missing")); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("missing: %v", err)
	}
}

func TestNewValidatesOptions(t *testing.T) {
	t.Parallel()
	dir, _ := NewStaticDirectory(nil)
	for name, o := range map[string]Options{
		"no directory":               {},
		"bad rule":                   {Directory: dir, Allow: []Rule{{Host: "*"}}},
		"secrets without a CA":       {Directory: dir, Allow: []Rule{{Host: "api.test"}}, Secrets: []SecretBinding{{Name: "k", Hosts: []string{"api.test"}}}, SecretValues: StaticSecrets{"k": "0123456789"}},
		"negative timeout":           {Directory: dir, DialTimeout: -1},
		"per source above the total": {Directory: dir, MaxConns: 2, MaxConnsPerSource: 3},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
	ca := testCA(t, "api.test")
	for name, o := range map[string]Options{
		"secret bound to a host no rule allows": {Secrets: []SecretBinding{{Name: "k", Hosts: []string{"other.test"}}}},
		"secret without a value":                {Secrets: []SecretBinding{{Name: "missing", Hosts: []string{"api.test"}}}},
		"secret too short":                      {Secrets: []SecretBinding{{Name: "short", Hosts: []string{"api.test"}}}},
		"host outside the CA's constraints":     {Allow: []Rule{{Host: "api.test"}, {Host: "*.other.test"}}, Secrets: []SecretBinding{{Name: "k", Hosts: []string{"*.other.test"}}}},
	} {
		o.Directory, o.CA, o.SecretValues = dir, ca, StaticSecrets{"k": "0123456789", "short": "1"}
		if o.Allow == nil {
			o.Allow = []Rule{{Host: "api.test"}}
		}
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New(Options{Directory: dir, CA: ca, Allow: []Rule{{Host: "*.api.test"}, {Host: "api.test"}},
		Secrets: []SecretBinding{{Name: "k", Hosts: []string{"api.test", "*.x.api.test"}}}, SecretValues: StaticSecrets{"k": "0123456789"}}); err != nil {
		t.Errorf("a valid binding: %v", err)
	}
}

func testCA(t *testing.T, domains ...string) *CA {
	t.Helper()
	c, k, err := GenerateCA(CAOptions{PermittedDomains: domains}, timeNow())
	must(t, err)
	ca, err := LoadCA(c, k, timeNow())
	must(t, err)
	return ca
}

var timeNow = time.Now
