package gateway

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Destination counts the decisions on one destination.
type Destination struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// Reason is why it was refused; empty for allowed destinations.
	Reason Reason `json:"reason,omitempty"`
	// Count of decisions: one per plain HTTP request, one per CONNECT tunnel, one per refused
	// request inside an intercepted tunnel.
	Count uint64 `json:"count"`
}

// Stats are one sandbox's allowed and denied destinations since the gateway started (or since
// the stats were forgotten). A runner reads them before and after an execution and keeps the
// difference (Since).
type Stats struct {
	Sandbox      string        `json:"sandbox"`
	Allowed      []Destination `json:"allowed"`
	Denied       []Destination `json:"denied"`
	AllowedTotal uint64        `json:"allowed_total"`
	DeniedTotal  uint64        `json:"denied_total"`
}

// Since is what happened between prev (an earlier read of the same sandbox's stats) and s.
func (s Stats) Since(prev Stats) Stats {
	sub := func(now, before []Destination) []Destination {
		was := map[destKey]uint64{}
		for _, d := range before {
			was[keyOf(d)] = d.Count
		}
		out := []Destination{}
		for _, d := range now {
			if n := d.Count - min(d.Count, was[keyOf(d)]); n > 0 {
				d.Count = n
				out = append(out, d)
			}
		}
		return out
	}
	return Stats{
		Sandbox: s.Sandbox, Allowed: sub(s.Allowed, prev.Allowed), Denied: sub(s.Denied, prev.Denied),
		AllowedTotal: s.AllowedTotal - min(s.AllowedTotal, prev.AllowedTotal),
		DeniedTotal:  s.DeniedTotal - min(s.DeniedTotal, prev.DeniedTotal),
	}
}

type destKey struct {
	host   string
	port   int
	reason Reason
}

func keyOf(d Destination) destKey { return destKey{d.Host, d.Port, d.Reason} }

// otherHost is where destinations past MaxStatsDestinations are counted.
const otherHost = "(other)"

// statsStore keeps Stats per sandbox ID, bounded in sandboxes and destinations.
type statsStore struct {
	maxSandboxes, maxDests int
	mu                     sync.Mutex
	bySandbox              map[string]*sandboxStats
}

type sandboxStats struct {
	counts         map[destKey]uint64
	allowed, total uint64
	last           time.Time
}

func newStatsStore(maxSandboxes, maxDests int) *statsStore {
	return &statsStore{maxSandboxes: maxSandboxes, maxDests: maxDests, bySandbox: map[string]*sandboxStats{}}
}

// record counts one decision for a sandbox (id) on t; reason is empty when allowed.
func (s *statsStore) record(id string, host string, port int, reason Reason, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.bySandbox[id]
	if !ok {
		if len(s.bySandbox) >= s.maxSandboxes {
			s.evictOldest()
		}
		st = &sandboxStats{counts: map[destKey]uint64{}}
		s.bySandbox[id] = st
	}
	k := destKey{host, port, reason}
	if _, seen := st.counts[k]; !seen && len(st.counts) >= s.maxDests {
		k = destKey{otherHost, 0, reason}
	}
	st.counts[k]++
	st.total++
	if reason == "" {
		st.allowed++
	}
	st.last = now
}

func (s *statsStore) evictOldest() {
	var oldest string
	var at time.Time
	for id, st := range s.bySandbox {
		if oldest == "" || st.last.Before(at) {
			oldest, at = id, st.last
		}
	}
	delete(s.bySandbox, oldest)
}

// get returns a sandbox's stats; ok is false when none were recorded.
func (s *statsStore) get(id string) (Stats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.bySandbox[id]
	out := Stats{Sandbox: id, Allowed: []Destination{}, Denied: []Destination{}}
	if !ok {
		return out, false
	}
	for k, n := range st.counts {
		d := Destination{Host: k.host, Port: k.port, Reason: k.reason, Count: n}
		if k.reason == "" {
			out.Allowed = append(out.Allowed, d)
		} else {
			out.Denied = append(out.Denied, d)
		}
	}
	slices.SortFunc(out.Allowed, destinationOrder)
	slices.SortFunc(out.Denied, destinationOrder)
	out.AllowedTotal, out.DeniedTotal = st.allowed, st.total-st.allowed
	return out, true
}

// forget drops a sandbox's stats; it reports whether there were any.
func (s *statsStore) forget(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.bySandbox[id]
	delete(s.bySandbox, id)
	return ok
}

func (s *statsStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bySandbox)
}

// Plus is s and o together: the counts of one sandbox as two gateway replicas saw them (a
// Service spreads a sandbox's connections over every replica).
func (s Stats) Plus(o Stats) Stats {
	add := func(a, b []Destination) []Destination {
		counts := map[destKey]uint64{}
		for _, d := range slices.Concat(a, b) {
			counts[keyOf(d)] += d.Count
		}
		out := make([]Destination, 0, len(counts))
		for k, n := range counts {
			out = append(out, Destination{Host: k.host, Port: k.port, Reason: k.reason, Count: n})
		}
		slices.SortFunc(out, destinationOrder)
		return out
	}
	sandbox := s.Sandbox
	if sandbox == "" {
		sandbox = o.Sandbox
	}
	return Stats{Sandbox: sandbox, Allowed: add(s.Allowed, o.Allowed), Denied: add(s.Denied, o.Denied),
		AllowedTotal: s.AllowedTotal + o.AllowedTotal, DeniedTotal: s.DeniedTotal + o.DeniedTotal}
}

// destinationOrder sorts destinations by host, port and reason.
func destinationOrder(a, b Destination) int {
	return cmp.Or(cmp.Compare(a.Host, b.Host), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Reason, b.Reason))
}
