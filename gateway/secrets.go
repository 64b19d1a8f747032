package gateway

import (
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// PlaceholderPrefix starts every placeholder: the sandbox holds "gkexec-secret:NAME" where
// the real credential would be, and the gateway puts the value of the secret NAME in its place
// in requests to the hosts NAME is bound to.
const PlaceholderPrefix = "gkexec-secret:"

// MinSecretBytes is the shortest secret value accepted: responses from bound hosts are
// scrubbed of every secret value, and a short one would match ordinary text.
const MinSecretBytes = 8

// Placeholder is what a sandbox holds instead of the secret name's value.
func Placeholder(name string) string { return PlaceholderPrefix + name }

// SecretBinding binds one secret to the hosts that may receive it.
//
// In a request to a bound host the gateway replaces the placeholder in every header value
// (inside "Authorization: Basic" too, whose value is base64) and, when Query is set, in the URL
// query. A request to any other host keeps the placeholder as it is: the placeholder is no
// credential, so there is nothing to leak, and refusing would make the gateway say which hosts
// a secret is bound to. Bodies are never rewritten.
//
// Substitution needs the gateway to read the request, so HTTPS to a bound host is intercepted
// (see CA); and it happens only when the request leaves the gateway over TLS: over plain
// HTTP the placeholder stays, else code could send the credential in clear text by choosing
// http://. Responses from bound hosts are scrubbed: every secret value bound to the host is
// replaced by its placeholder in headers and body, so a host that echoes the request does not
// hand the credential to the sandbox.
type SecretBinding struct {
	// Name of the secret (the placeholder's NAME): letters, digits, '.', '_' and '-', as a
	// Kubernetes Secret's keys.
	Name string `json:"name"`
	// Hosts that receive the value: exact names or wildcards (*.example.com), as in a Rule.
	Hosts []string `json:"hosts"`
	// Query: substitute in the URL query too (for APIs that take keys as ?key=...).
	Query bool `json:"query,omitempty"`
}

// SecretSource gives a secret's current value.
type SecretSource interface {
	Secret(name string) (string, bool)
}

// StaticSecrets is a fixed SecretSource.
type StaticSecrets map[string]string

// Secret implements SecretSource.
func (s StaticSecrets) Secret(name string) (string, bool) {
	v, ok := s[name]
	return v, ok
}

// checkSecretName refuses names a placeholder cannot carry.
func checkSecretName(name string) error {
	if name == "" || len(name) > 253 {
		return fmt.Errorf("%w: secret name %q: must have 1 to 253 characters", ErrInvalidSecret, name)
	}
	for i := 0; i < len(name); i++ {
		if !isNameByte(name[i]) {
			return fmt.Errorf("%w: secret name %q: only letters, digits, '.', '_' and '-'", ErrInvalidSecret, name)
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// checkSecretValue refuses values that could not go in a header, or that scrubbing would find
// everywhere.
func checkSecretValue(name, value string) error {
	switch {
	case len(value) < MinSecretBytes:
		return fmt.Errorf("%w: secret %q: shorter than %d bytes", ErrInvalidSecret, name, MinSecretBytes)
	case strings.ContainsAny(value, "\r\n\x00"):
		return fmt.Errorf("%w: secret %q: holds a line break or NUL, which no header may carry", ErrInvalidSecret, name)
	}
	return nil
}

// binding is a SecretBinding compiled.
type binding struct {
	name  string
	hosts []rule
	query bool
}

// binder knows which secrets each host may receive, and where to get their values.
type binder struct {
	bindings []binding
	source   SecretSource
}

func newBinder(bs []SecretBinding, source SecretSource) (*binder, error) {
	b := &binder{source: source}
	seen := map[string]bool{}
	for _, sb := range bs {
		if err := checkSecretName(sb.Name); err != nil {
			return nil, err
		}
		if seen[sb.Name] {
			return nil, fmt.Errorf("%w: secret %q bound twice: list all its hosts in one binding", ErrInvalidSecret, sb.Name)
		}
		seen[sb.Name] = true
		if len(sb.Hosts) == 0 {
			return nil, fmt.Errorf("%w: secret %q is bound to no host", ErrInvalidSecret, sb.Name)
		}
		c := binding{name: sb.Name, query: sb.Query}
		for _, h := range sb.Hosts {
			r, err := compileRule(Rule{Host: h})
			if err != nil {
				return nil, fmt.Errorf("secret %q: %w", sb.Name, err)
			}
			if r.ip.IsValid() {
				return nil, fmt.Errorf("%w: secret %q: bind secrets to host names, not addresses (%s)", ErrInvalidSecret, sb.Name, h)
			}
			c.hosts = append(c.hosts, r)
		}
		b.bindings = append(b.bindings, c)
	}
	return b, nil
}

// boundTo returns the bindings whose hosts include t; none means t is never intercepted.
func (b *binder) boundTo(t target) []binding {
	if b == nil || t.isIP() {
		return nil
	}
	var out []binding
	for _, bd := range b.bindings {
		for _, h := range bd.hosts {
			if h.matchesHost(t) {
				out = append(out, bd)
				break
			}
		}
	}
	return out
}

// secretSet is the secrets one request may receive: name -> value, and whether the query
// takes them.
type secretSet struct {
	values map[string]string
	query  map[string]bool
}

// valuesFor reads the current values of the bound secrets; a secret gone from the source is
// left out (its placeholder stays).
func (b *binder) valuesFor(bs []binding) secretSet {
	s := secretSet{values: map[string]string{}, query: map[string]bool{}}
	for _, bd := range bs {
		if v, ok := b.source.Secret(bd.name); ok {
			s.values[bd.name] = v
			if bd.query {
				s.query[bd.name] = true
			}
		}
	}
	return s
}

// substitute replaces the placeholders (written with prefix) of the set's secrets in text;
// other placeholders stay. escape encodes the value for where it goes (nil: as is); only, if
// not nil, limits the names replaced. used collects the names replaced.
func (s secretSet) substitute(text, prefix string, escape func(string) string, only, used map[string]bool) string {
	if !strings.Contains(text, prefix) {
		return text
	}
	var out strings.Builder
	for {
		i := strings.Index(text, prefix)
		if i < 0 {
			out.WriteString(text)
			return out.String()
		}
		j := i + len(prefix)
		for j < len(text) && isNameByte(text[j]) {
			j++
		}
		name := text[i+len(prefix) : j]
		value, ok := s.values[name]
		if ok && (only == nil || only[name]) {
			out.WriteString(text[:i])
			if escape != nil {
				value = escape(value)
			}
			out.WriteString(value)
			used[name] = true
		} else {
			out.WriteString(text[:j])
		}
		text = text[j:]
	}
}

// queryPrefixes are the placeholder's prefix as it appears in a query: as is, or with ':'
// percent-encoded, as most encoders write it.
var queryPrefixes = []string{PlaceholderPrefix, "gkexec-secret%3A", "gkexec-secret%3a"}

// apply substitutes the set's secrets in a request's headers (and query where bound so) and
// returns the names used, and the encodings of values it made (a Basic credential) paired
// with what the sandbox sent in their place, for the response's scrubbing.
func (s secretSet) apply(r *http.Request) (names []string, made []scrubPair) {
	used := map[string]bool{}
	for key, vals := range r.Header {
		for i, v := range vals {
			if basic, ok := strings.CutPrefix(v, "Basic "); ok && key == "Authorization" {
				sent := strings.TrimSpace(basic)
				if raw, err := base64.StdEncoding.DecodeString(sent); err == nil {
					if sub := s.substitute(string(raw), PlaceholderPrefix, nil, nil, used); sub != string(raw) {
						encoded := base64.StdEncoding.EncodeToString([]byte(sub))
						vals[i] = "Basic " + encoded
						made = append(made, scrubPair{value: []byte(encoded), placeholder: []byte(sent)})
						continue
					}
				}
			}
			vals[i] = s.substitute(v, PlaceholderPrefix, nil, nil, used)
		}
	}
	if r.URL.RawQuery != "" && len(s.query) > 0 {
		for _, prefix := range queryPrefixes {
			r.URL.RawQuery = s.substitute(r.URL.RawQuery, prefix, url.QueryEscape, s.query, used)
		}
	}
	return slices.Sorted(maps.Keys(used)), made
}
