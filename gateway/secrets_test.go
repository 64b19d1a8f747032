package gateway

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSecretSetApply(t *testing.T) {
	t.Parallel()
	s := secretSet{values: map[string]string{"key": "VALUE-123456", "key2": "OTHER-123456"}, query: map[string]bool{"key": true}}
	r, _ := http.NewRequest(http.MethodGet, "https://api.example.com/?a=gkexec-secret%3Akey&b=gkexec-secret:key2&c=gkexec-secret:nope", nil)
	r.Header.Set("Authorization", "Bearer gkexec-secret:key")
	r.Header.Set("X-Both", "gkexec-secret:key2,gkexec-secret:key;gkexec-secret:keyX gkexec-secret:")
	r.Header.Set("X-Unknown", "gkexec-secret:missing")
	used, _ := s.apply(r)
	for h, want := range map[string]string{
		"Authorization": "Bearer VALUE-123456",
		// Names end at the first byte a name cannot hold; keyX is another (unknown) name.
		"X-Both":    "OTHER-123456,VALUE-123456;gkexec-secret:keyX gkexec-secret:",
		"X-Unknown": "gkexec-secret:missing",
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("%s = %q; want %q", h, got, want)
		}
	}
	// Only key is bound with Query; key2's placeholder stays in the query.
	if want := "a=VALUE-123456&b=gkexec-secret:key2&c=gkexec-secret:nope"; r.URL.RawQuery != want {
		t.Errorf("query %q; want %q", r.URL.RawQuery, want)
	}
	if strings.Join(used, ",") != "key,key2" {
		t.Errorf("used %v", used)
	}
}

func TestScrubReaderFindsValuesAcrossReads(t *testing.T) {
	t.Parallel()
	set := secretSet{values: map[string]string{"k": "SECRET-VALUE", "u": "a b&c=d-long"}}
	pairs := scrubPairs(set)
	in := "x SECRET-VALUE y SECRET-VALUESECRET-VALUE a+b%26c%3Dd-long SECRET-VALU end SECRET-VALUE"
	want := "x gkexec-secret:k y gkexec-secret:kgkexec-secret:k gkexec-secret:u SECRET-VALU end gkexec-secret:k"
	for name, r := range map[string]io.Reader{
		"whole":        strings.NewReader(in),
		"byte by byte": iotest.OneByteReader(strings.NewReader(in)),
		"half":         iotest.HalfReader(strings.NewReader(in)),
	} {
		got, err := io.ReadAll(newScrubReader(io.NopCloser(r), pairs))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	h := http.Header{"Location": {"https://x/?k=" + url.QueryEscape("a b&c=d-long")}, "X": {"SECRET-VALUE"}}
	scrubHeader(h, pairs)
	if h.Get("X") != "gkexec-secret:k" || h.Get("Location") != "https://x/?k=gkexec-secret:u" {
		t.Errorf("headers: %v", h)
	}
	// The source's error comes through once the data is out.
	boom := errors.New("boom")
	got, err := io.ReadAll(newScrubReader(io.NopCloser(io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(boom))), pairs))
	if string(got) != "abc" || !errors.Is(err, boom) {
		t.Errorf("%q %v", got, err)
	}
}

func TestBinderValidation(t *testing.T) {
	t.Parallel()
	for name, bs := range map[string][]SecretBinding{
		"no hosts":     {{Name: "k"}},
		"twice":        {{Name: "k", Hosts: []string{"a.example"}}, {Name: "k", Hosts: []string{"b.example"}}},
		"bad name":     {{Name: "k/x", Hosts: []string{"a.example"}}},
		"address host": {{Name: "k", Hosts: []string{"203.0.113.7"}}},
		"bad host":     {{Name: "k", Hosts: []string{"*.com"}}},
	} {
		if _, err := newBinder(bs, StaticSecrets{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDirSecretsReadsAKubernetesMount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// What the kubelet writes: a timestamped directory, ..data pointing at it, and one link
	// per key.
	data := filepath.Join(dir, "..2026_01_01_00_00_00.000000001")
	must(t, os.Mkdir(data, 0o755))
	must(t, os.WriteFile(filepath.Join(data, "api-key"), []byte("sk-0123456789\n"), 0o600))
	must(t, os.WriteFile(filepath.Join(data, "token"), []byte("tok-abcdefgh"), 0o600))
	must(t, os.Symlink(filepath.Base(data), filepath.Join(dir, "..data")))
	for _, k := range []string{"api-key", "token"} {
		must(t, os.Symlink(filepath.Join("..data", k), filepath.Join(dir, k)))
	}
	d, err := LoadSecretsDir(dir)
	must(t, err)
	if v, _ := d.Secret("api-key"); v != "sk-0123456789" {
		t.Errorf("api-key = %q: one trailing newline is dropped", v)
	}
	if strings.Join(d.Names(), ",") != "api-key,token" {
		t.Errorf("names %v", d.Names())
	}
	// A bad file refuses the reload and keeps the values read before.
	must(t, os.WriteFile(filepath.Join(dir, "short"), []byte("x"), 0o600))
	if err := d.Reload(); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("reload with a short secret: %v", err)
	}
	if v, ok := d.Secret("token"); !ok || v != "tok-abcdefgh" {
		t.Error("a failed reload lost the values")
	}
	must(t, os.WriteFile(filepath.Join(dir, "multi"), []byte("line-one-x\nline-two-x\n"), 0o600))
	must(t, os.Remove(filepath.Join(dir, "short")))
	if err := d.Reload(); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("a secret with a line break: %v", err)
	}
	if _, err := LoadSecretsDir(filepath.Join(dir, "none")); !errors.Is(err, ErrInvalidSecret) {
		t.Errorf("missing directory: %v", err)
	}
}

// Two secrets of a host where one value begins the other: the longer is replaced whole, or
// its tail would reach the sandbox. (scrubPairs reads a map: the order varies run to run.)
func TestScrubReplacesTheLongerOfOverlappingValues(t *testing.T) {
	t.Parallel()
	set := secretSet{values: map[string]string{"short": "abcdefgh12", "long": "abcdefgh12-tail-34567"}}
	in := "<abcdefgh12-tail-34567|abcdefgh12>"
	want := "<gkexec-secret:long|gkexec-secret:short>"
	for range 32 {
		pairs := scrubPairs(set)
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
			got, err := io.ReadAll(newScrubReader(io.NopCloser(r), pairs))
			if err != nil || string(got) != want {
				t.Fatalf("body %q, %v; want %q", got, err, want)
			}
		}
		h := http.Header{"X": {in}}
		scrubHeader(h, pairs)
		if h.Get("X") != want {
			t.Fatalf("header %q; want %q", h.Get("X"), want)
		}
	}
}

// A header's name can carry the value too (a host that reflects what it was sent as names):
// such a header is dropped, as no placeholder can be a header name (':'), and the value must
// be found whatever the case, since names are canonicalised.
func TestScrubHeaderScrubsNames(t *testing.T) {
	t.Parallel()
	pairs := scrubPairs(secretSet{values: map[string]string{"k": "SecretValue1"}})
	h := http.Header{}
	h.Set("X-SecretValue1", "v SecretValue1")
	h.Set("X-Other", "ok")
	scrubHeader(h, pairs)
	for name, vals := range h {
		if strings.Contains(name, "SecretValue1") || strings.Contains(strings.ToLower(name), "secretvalue1") {
			t.Errorf("header name %q holds the value", name)
		}
		for _, v := range vals {
			if strings.Contains(v, "SecretValue1") {
				t.Errorf("header %s: %q holds the value", name, v)
			}
		}
	}
	if h.Get("X-Other") != "ok" || len(h) != 1 {
		t.Errorf("headers %v; want the header named with the value dropped, the other kept", h)
	}
}
