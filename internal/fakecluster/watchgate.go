package fakecluster

import (
	"sync"

	"k8s.io/apimachinery/pkg/watch"
)

// HoldPodEvents stops the Pod watch's events from reaching the runner until release is called;
// they are delivered then, in order. It stands in for a watch that lags behind the API server —
// what a loaded API server, kubelet or runner process does in a real cluster — so that a test can
// prove the runner never takes the watch's view for the API server's.
func (c *Cluster) HoldPodEvents() (release func()) {
	c.podGate.hold()
	return c.podGate.release
}

// gate holds events while it is held.
type gate struct {
	mu     sync.Mutex
	held   bool
	opened chan struct{} // closed while not held
}

func newGate() *gate {
	g := &gate{opened: make(chan struct{})}
	close(g.opened)
	return g
}

func (g *gate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.held {
		g.held, g.opened = true, make(chan struct{})
	}
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held {
		g.held = false
		close(g.opened)
	}
}

func (g *gate) open() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.opened
}

// gatedWatch passes inner's events on while its gate is open.
type gatedWatch struct {
	inner    watch.Interface
	out      chan watch.Event
	stop     chan struct{}
	stopOnce sync.Once
}

func newGatedWatch(inner watch.Interface, g *gate) *gatedWatch {
	w := &gatedWatch{inner: inner, out: make(chan watch.Event), stop: make(chan struct{})}
	go func() {
		defer close(w.out)
		for ev := range inner.ResultChan() {
			select {
			case <-g.open():
			case <-w.stop:
				return
			}
			select {
			case w.out <- ev:
			case <-w.stop:
				return
			}
		}
	}()
	return w
}

func (w *gatedWatch) ResultChan() <-chan watch.Event { return w.out }

func (w *gatedWatch) Stop() {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.inner.Stop()
	})
}
