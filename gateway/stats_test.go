package gateway

import (
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
