package bench

import (
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// apiCounter counts the requests a client sends to the API server, by verb and resource, and the
// watches open at once. It sits in the client's transport, so it sees exactly what the server sees
// (after client-side rate limiting, before any server-side caching).
type apiCounter struct {
	mu        sync.Mutex
	byKind    map[string]int
	total     atomic.Int64
	open      atomic.Int64
	maxOpen   atomic.Int64
	watchesEv atomic.Int64
}

func newAPICounter() *apiCounter { return &apiCounter{byKind: map[string]int{}} }

func (c *apiCounter) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		watch := req.URL.Query().Get("watch") == "true" || req.URL.Query().Get("watch") == "1"
		follow := req.URL.Query().Get("follow") == "true"
		kind := describe(req.Method, req.URL.Path, watch, follow)
		c.total.Add(1)
		c.mu.Lock()
		c.byKind[kind]++
		c.mu.Unlock()
		resp, err := rt.RoundTrip(req)
		if err != nil || !watch {
			return resp, err
		}
		c.watchesEv.Add(1)
		n := c.open.Add(1)
		for {
			m := c.maxOpen.Load()
			if n <= m || c.maxOpen.CompareAndSwap(m, n) {
				break
			}
		}
		resp.Body = &closeHook{ReadCloser: resp.Body, done: func() { c.open.Add(-1) }}
		return resp, nil
	})
}

// snapshot returns the counts, most frequent first.
func (c *apiCounter) snapshot() (total int64, kinds []KindCount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, n := range c.byKind {
		kinds = append(kinds, KindCount{k, n})
	}
	sort.Slice(kinds, func(i, j int) bool {
		if kinds[i].Count != kinds[j].Count {
			return kinds[i].Count > kinds[j].Count
		}
		return kinds[i].Request < kinds[j].Request
	})
	return c.total.Load(), kinds
}

// KindCount is how many requests of one kind were sent.
type KindCount struct {
	Request string `json:"request"`
	Count   int    `json:"count"`
}

// describe names a request like "POST configmaps" or "GET pods/log (follow)", without object names.
// Paths are /api/v1/[namespaces/NS/]RES[/NAME[/SUB]] or /apis/GROUP/VERSION/[namespaces/NS/]RES[/NAME[/SUB]].
func describe(method, path string, watch, follow bool) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	}
	if len(parts) >= 2 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	resource := strings.Join(parts, "/")
	if len(parts) >= 1 {
		resource = parts[0]
		if len(parts) == 3 {
			resource += "/" + parts[2]
		}
	}
	switch {
	case watch:
		return "WATCH " + resource
	case follow:
		return method + " " + resource + " (follow)"
	}
	return method + " " + resource
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type closeHook struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (c *closeHook) Close() error {
	err := c.ReadCloser.Close()
	c.once.Do(c.done)
	return err
}
