package gateway

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"sigs.k8s.io/yaml"
)

// Config is the gateway's policy file (YAML or JSON), what `gkexec gateway --config` reads and
// a ConfigMap holds. Where the gateway listens, where its CA and secrets are mounted, are
// flags: they belong to the Deployment, the policy to the namespace.
//
//	allow:
//	  - host: pypi.org
//	  - host: "*.pythonhosted.org"
//	  - host: api.example.com
//	    ports: [443, 8443]
//	  - host: mirror.internal.svc.cluster.local
//	    allow_private: true
//	secrets:
//	  - name: example-api-key           # a file in --secrets-dir
//	    hosts: [api.example.com]
//	denied_prefixes: [34.118.224.0/20]  # the cluster's Services, when not private
//	hosts:                              # only for tests: resolve these names only
//	  example.test: [127.0.0.1]
type Config struct {
	Allow          []Rule          `json:"allow"`
	Secrets        []SecretBinding `json:"secrets,omitempty"`
	DeniedPrefixes []string        `json:"denied_prefixes,omitempty"`
	// Hosts, if set, replace DNS: the gateway resolves these names, and no other. For tests
	// and the local cluster's stand-in internet.
	Hosts map[string][]string `json:"hosts,omitempty"`
	// Sandboxes, if set, is a fixed directory instead of the Pod watch. For tests and setups
	// without Kubernetes.
	Sandboxes []ConfigSandbox `json:"sandboxes,omitempty"`
}

// ConfigSandbox is one sandbox of a fixed directory.
type ConfigSandbox struct {
	ID          string `json:"id"`
	Addr        string `json:"addr,omitempty"`
	TokenSHA256 string `json:"token_sha256,omitempty"`
	// Allow narrows, in ParseRules syntax; absent keeps the namespace's list, "none" allows nothing.
	Allow *string `json:"allow,omitempty"`
}

// LoadConfig reads a policy file; unknown fields are errors (a misspelt "alow" must not
// silently allow nothing).
func LoadConfig(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	var c Config
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %w", ErrInvalidConfig, path, err)
	}
	return c, nil
}

// Resolver is the HostsResolver of Hosts, or nil when Hosts is empty.
func (c Config) Resolver() (Resolver, error) {
	if len(c.Hosts) == 0 {
		return nil, nil
	}
	var entries []string
	for name, addrs := range c.Hosts {
		for _, a := range addrs {
			entries = append(entries, name+"="+a)
		}
	}
	return ParseHosts(entries)
}

// Prefixes parses DeniedPrefixes.
func (c Config) Prefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range c.DeniedPrefixes {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: denied_prefixes: %w", ErrInvalidConfig, err))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}

// Directory is the StaticDirectory of Sandboxes, or nil when there are none.
func (c Config) Directory() (Directory, error) {
	if len(c.Sandboxes) == 0 {
		return nil, nil
	}
	var sbs []Sandbox
	for _, cs := range c.Sandboxes {
		sb := Sandbox{ID: cs.ID, TokenSHA256: cs.TokenSHA256}
		if cs.Addr != "" {
			a, err := netip.ParseAddr(cs.Addr)
			if err != nil {
				return nil, fmt.Errorf("%w: sandbox %q: addr: %w", ErrInvalidConfig, cs.ID, err)
			}
			sb.Addr = a
		}
		if cs.Allow != nil {
			sb.Allow = &AllowList{}
			if *cs.Allow != EgressNone {
				rules, err := ParseRules(*cs.Allow)
				if err == nil {
					sb.Allow, err = NewAllowList(rules)
				}
				if err != nil {
					return nil, fmt.Errorf("%w: sandbox %q: allow: %w", ErrInvalidConfig, cs.ID, err)
				}
			}
		}
		sbs = append(sbs, sb)
	}
	d, err := NewStaticDirectory(sbs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return d, nil
}

// Options are the Options the policy file sets: Allow, Secrets, DeniedPrefixes, and the
// Resolver and Directory of its test-only fields. The caller adds what is not policy: the
// Directory (a Pod watch), the CA, the secrets' values, the logger.
func (c Config) Options() (Options, error) {
	o := Options{Allow: c.Allow, Secrets: c.Secrets}
	var errs []error
	_, err := NewAllowList(c.Allow)
	if err != nil {
		errs = append(errs, fmt.Errorf("%w: allow: %w", ErrInvalidConfig, err))
	}
	if o.DeniedPrefixes, err = c.Prefixes(); err != nil {
		errs = append(errs, err)
	}
	if o.Resolver, err = c.Resolver(); err != nil {
		errs = append(errs, err)
	}
	if o.Directory, err = c.Directory(); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}
