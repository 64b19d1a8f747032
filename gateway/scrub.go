package gateway

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// scrubPair is one secret value (as sent, or URL-encoded) and the placeholder that replaces it.
type scrubPair struct {
	value, placeholder []byte
}

// scrubPairs lists what to replace in a bound host's response: each secret's value, and its
// URL-encoded form when that differs. Transformations beyond that (base64, JSON escapes) are
// not recognised; see README. made are encodings the gateway itself made of a value (a Basic
// credential), each paired with what the sandbox sent. The longest values come first: where one value begins another,
// the longer one is replaced whole, else its tail would be left.
func scrubPairs(s secretSet, made ...scrubPair) []scrubPair {
	pairs := slices.Clone(made)
	for name, v := range s.values {
		ph := []byte(Placeholder(name))
		pairs = append(pairs, scrubPair{[]byte(v), ph})
		if e := url.QueryEscape(v); e != v {
			pairs = append(pairs, scrubPair{[]byte(e), ph})
		}
	}
	slices.SortStableFunc(pairs, func(a, b scrubPair) int { return len(b.value) - len(a.value) })
	return pairs
}

// scrubPairs is what a forwarded request's response is scrubbed of.
func (info *forwardInfo) scrubPairs() []scrubPair { return scrubPairs(*info.secrets, info.made...) }

// scrubHeader replaces secret values in every header value, and drops a header whose name
// holds one (in any case: names are canonicalised; a placeholder, with its ':', cannot be a name).
func scrubHeader(h http.Header, pairs []scrubPair) {
	for name, vals := range h {
		for _, p := range pairs {
			if strings.Contains(strings.ToLower(name), strings.ToLower(string(p.value))) {
				delete(h, name)
			}
		}
		for i, v := range vals {
			for _, p := range pairs {
				v = strings.ReplaceAll(v, string(p.value), string(p.placeholder))
			}
			vals[i] = v
		}
	}
}

// scrubReader replaces secret values with their placeholders in a stream. It holds back the
// last (longest value - 1) bytes of what it has read until it knows they start no value.
type scrubReader struct {
	src     io.ReadCloser
	pairs   []scrubPair
	keep    int
	buf     []byte
	pending []byte // read, not yet judged
	out     []byte // judged, not yet returned
	err     error  // the source's error, once it has one
	// atEnd runs once, when the source ends or the reader is closed: the trailers, which
	// arrive after the body, are scrubbed then.
	atEnd func()
	once  sync.Once
}

func newScrubReader(src io.ReadCloser, pairs []scrubPair) *scrubReader {
	r := &scrubReader{src: src, pairs: pairs, buf: make([]byte, 32<<10)}
	for _, p := range pairs {
		r.keep = max(r.keep, len(p.value)-1)
	}
	return r
}

func (r *scrubReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		n, err := r.src.Read(r.buf)
		r.pending = append(r.pending, r.buf[:n]...)
		if err != nil {
			r.err = err
			r.end()
		}
		r.judge()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// judge moves what is known free of secrets from pending to out, replacing every value found.
func (r *scrubReader) judge() {
	for {
		at, which := -1, -1
		for i, p := range r.pairs {
			if j := bytes.Index(r.pending, p.value); j >= 0 && (at < 0 || j < at) {
				at, which = j, i
			}
		}
		// A match too near the end of what was read may be the start of a longer value that
		// the next read completes: it waits for more, unless the source has ended.
		if at < 0 || (r.err == nil && len(r.pending)-at <= r.keep) {
			break
		}
		r.out = append(r.out, r.pending[:at]...)
		r.out = append(r.out, r.pairs[which].placeholder...)
		r.pending = r.pending[at+len(r.pairs[which].value):]
	}
	release := len(r.pending) - r.keep
	if r.err != nil {
		release = len(r.pending)
	}
	if release > 0 {
		r.out = append(r.out, r.pending[:release]...)
		r.pending = append(r.pending[:0:0], r.pending[release:]...)
	}
}

func (r *scrubReader) Close() error {
	err := r.src.Close()
	r.end()
	return err
}

func (r *scrubReader) end() {
	if r.atEnd != nil {
		r.once.Do(r.atEnd)
	}
}

// scrubInformational is the forwarding transport with the informational answers (1xx, such
// as 103 Early Hints) of a bound host scrubbed: httputil.ReverseProxy copies their headers to
// the client itself, before ModifyResponse sees anything. The trace added here runs before the
// reverse proxy's (httptrace calls the newest hook first) and scrubs the headers in place.
type scrubInformational struct{ http.RoundTripper }

func (t scrubInformational) RoundTrip(r *http.Request) (*http.Response, error) {
	if info := infoOf(r.Context()); info != nil && info.secrets != nil && len(info.secrets.values) > 0 {
		pairs := info.scrubPairs()
		r = r.WithContext(httptrace.WithClientTrace(r.Context(), &httptrace.ClientTrace{
			Got1xxResponse: func(_ int, h textproto.MIMEHeader) error {
				scrubHeader(http.Header(h), pairs)
				return nil
			},
		}))
	}
	return t.RoundTripper.RoundTrip(r)
}
