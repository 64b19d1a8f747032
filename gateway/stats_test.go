package gateway

import (
	"reflect"
	"testing"
	"time"
)

func TestStatsSinceAndBounds(t *testing.T) {
	t.Parallel()
	s := newStatsStore(2, 3)
	now := time.Now()
	s.record("a", "pypi.org", 443, "", now)
	before, _ := s.get("a")
	s.record("a", "pypi.org", 443, "", now)
	s.record("a", "evil.example", 443, ReasonNotAllowed, now)
	after, _ := s.get("a")
	d := after.Since(before)
	if d.AllowedTotal != 1 || d.DeniedTotal != 1 || len(d.Allowed) != 1 || d.Allowed[0].Count != 1 || len(d.Denied) != 1 {
		t.Errorf("since: %+v", d)
	}
	// Past three destinations, the rest count under (other).
	s.record("a", "x.example", 443, ReasonNotAllowed, now)
	s.record("a", "y.example", 443, ReasonNotAllowed, now)
	st, _ := s.get("a")
	if last := st.Denied[0]; last.Host != otherHost || last.Count != 1 {
		t.Errorf("denied: %+v", st.Denied)
	}
	// Past two sandboxes, the least recently active goes.
	s.record("b", "pypi.org", 443, "", now.Add(time.Second))
	s.record("c", "pypi.org", 443, "", now.Add(2*time.Second))
	if _, ok := s.get("a"); ok {
		t.Error("a should have been forgotten first")
	}
	if _, ok := s.get("c"); !ok || s.len() != 2 {
		t.Error("c missing")
	}
}

func TestStatsPlusAddsReplicas(t *testing.T) {
	t.Parallel()
	a := Stats{Sandbox: "p", Allowed: []Destination{{Host: "pypi.org", Port: 443, Count: 2}}, AllowedTotal: 2,
		Denied: []Destination{{Host: "evil.test", Port: 443, Reason: ReasonNotAllowed, Count: 1}}, DeniedTotal: 1}
	b := Stats{Sandbox: "p", Allowed: []Destination{{Host: "pypi.org", Port: 443, Count: 3}, {Host: "a.test", Port: 80, Count: 1}}, AllowedTotal: 4,
		Denied: []Destination{}}
	got := a.Plus(b)
	want := Stats{Sandbox: "p", AllowedTotal: 6, DeniedTotal: 1,
		Allowed: []Destination{{Host: "a.test", Port: 80, Count: 1}, {Host: "pypi.org", Port: 443, Count: 5}},
		Denied:  []Destination{{Host: "evil.test", Port: 443, Reason: ReasonNotAllowed, Count: 1}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plus:\n got %+v\nwant %+v", got, want)
	}
	if empty := (Stats{}).Plus(Stats{}); empty.Allowed == nil || empty.Denied == nil {
		t.Error("Plus of nothing gives nil lists, which JSON writes as null")
	}
}
