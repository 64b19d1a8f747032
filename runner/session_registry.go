package runner

import (
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/gkexec/gkexec/runner/internal/track"
)

// sessionRegistry is the sessions this process holds: those it opened or resumed, by ID, and
// those it ended whose Pods may not be gone yet (so that a resume in between says the session
// ended instead of finding its terminating Pod).
type sessionRegistry struct {
	mu     sync.Mutex
	open   map[string]*Session
	closed map[string]endedSessionPod
}

// endedSessionPod is a session this runner ended, and its Pod's UID.
type endedSessionPod struct {
	uid types.UID
	why string
}

func newSessionRegistry() *sessionRegistry {
	return &sessionRegistry{open: map[string]*Session{}, closed: map[string]endedSessionPod{}}
}

func (g *sessionRegistry) get(id string) *Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.open[id]
}

// add holds s, unless the registry holds a session of that ID already: then it returns that one.
func (g *sessionRegistry) add(s *Session) *Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	if existing := g.open[s.id]; existing != nil {
		return existing
	}
	g.open[s.id] = s
	return s
}

// forget lets s go (its ID may be resumed anew).
func (g *sessionRegistry) forget(s *Session) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[s.id] == s {
		delete(g.open, s.id)
	}
}

// all are the sessions held now.
func (g *sessionRegistry) all() []*Session {
	g.mu.Lock()
	defer g.mu.Unlock()
	all := make([]*Session, 0, len(g.open))
	for _, s := range g.open {
		all = append(all, s)
	}
	return all
}

// ended forgets s and remembers that it ended, and why, while pod goes; it forgets those whose
// Pods are gone, so that the list stays as short as the Pods still terminating.
func (g *sessionRegistry) ended(h *track.Hub, s *Session, pod *corev1.Pod, why string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open[s.id] == s {
		delete(g.open, s.id)
	}
	for other := range g.closed {
		if h.SessionPod(other) == nil {
			delete(g.closed, other)
		}
	}
	if pod != nil {
		g.closed[s.id] = endedSessionPod{uid: pod.UID, why: why}
	}
}

// endedWhy says why session id ended, if this runner ended it and pod is still its sandbox
// (deleted, but not gone yet).
func (g *sessionRegistry) endedWhy(id string, pod *corev1.Pod) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.closed[id]
	switch {
	case !ok:
		return ""
	case pod == nil || pod.UID != e.uid:
		delete(g.closed, id)
		return ""
	}
	return e.why
}
