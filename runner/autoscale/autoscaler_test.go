package autoscale

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/runner"
)

const ns = "sandbox"

// scalableCluster is the fake clientset with the Deployment's scale subresource, which the fake
// object tracker does not serve: reads and writes of it go to the Deployment's replicas, and
// every write is recorded.
type scalableCluster struct {
	*fake.Clientset
	mu     sync.Mutex
	writes []int32
}

func newScalableCluster(t *testing.T, policy *Policy, replicas int32) *scalableCluster {
	t.Helper()
	d, err := runner.WarmPoolDeployment(runner.Options{Namespace: ns}, replicas)
	if err != nil {
		t.Fatal(err)
	}
	if policy != nil {
		d = Deployment(d, *policy)
		d.Spec.Replicas = &replicas // what the API server would have defaulted, or the last scale
	}
	c := &scalableCluster{Clientset: fake.NewClientset(d)}
	gvr := schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	c.PrependReactor("get", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		obj, err := c.Tracker().Get(gvr, ns, a.(k8stesting.GetAction).GetName())
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment)
		return true, &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: d.Name, Namespace: ns, ResourceVersion: d.ResourceVersion},
			Spec: autoscalingv1.ScaleSpec{Replicas: *d.Spec.Replicas}}, nil
	})
	c.PrependReactor("update", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "scale" {
			return false, nil, nil
		}
		scale := a.(k8stesting.UpdateAction).GetObject().(*autoscalingv1.Scale)
		obj, err := c.Tracker().Get(gvr, ns, scale.Name)
		if err != nil {
			return true, nil, err
		}
		d := obj.(*appsv1.Deployment).DeepCopy()
		d.Spec.Replicas = &scale.Spec.Replicas
		if err := c.Tracker().Update(gvr, d, ns); err != nil {
			return true, nil, err
		}
		c.mu.Lock()
		c.writes = append(c.writes, scale.Spec.Replicas)
		c.mu.Unlock()
		return true, scale, nil
	})
	return c
}

func (c *scalableCluster) replicas(t *testing.T) int32 {
	t.Helper()
	d, err := c.AppsV1().Deployments(ns).Get(context.Background(), runner.WarmPoolName("default"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return *d.Spec.Replicas
}

func (c *scalableCluster) written() []int32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int32(nil), c.writes...)
}

// start runs an Autoscaler named id on c until the test ends, with short timings.
func start(t *testing.T, c *scalableCluster, id string, policy *Policy) (*Autoscaler, context.CancelFunc) {
	t.Helper()
	a, err := New(Config{Client: c, Namespace: ns, Pool: "default", Identity: id, Policy: policy,
		Tick: 20 * time.Millisecond, PolicyEvery: 50 * time.Millisecond,
		// Leases long enough that a loaded machine's stalls do not make the two processes
		// alternate; a stopped process gives its Lease up at once, so a takeover still takes one
		// retry.
		LeaseDuration: 3 * time.Second, LeaseRenewDeadline: 2 * time.Second, LeaseRetry: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("autoscaler %s did not stop within 30 s of its context's end", id)
		}
	})
	return a, cancel
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 30 s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// claim creates a pool Pod claimed by an execution now, as a runner leaves it.
func claim(t *testing.T, c *scalableCluster, name string) {
	t.Helper()
	pod := poolPod(name, "default", runner.PoolStateIdle, true).claimedFor(runner.ClaimedForExecution, time.Now())
	pod.Namespace, pod.CreationTimestamp = ns, metav1.Now()
	if _, err := c.CoreV1().Pods(ns).Create(context.Background(), pod.Pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestABurstScalesThePoolUpAtOnceAndTheCooldownDown(t *testing.T) {
	t.Parallel()
	policy := &Policy{Min: 1, Max: 6, Spare: 1, Cooldown: 2 * time.Second}
	c := newScalableCluster(t, policy, 1)
	a, _ := start(t, c, "runner-a", nil) // the policy comes from the Deployment
	eventually(t, "the autoscaler leads", func() bool { return a.Stats().Leader })
	if got := a.Stats().Policy; got != policy.WithDefaults() {
		t.Errorf("policy read from the Deployment %+v, want %+v", got, policy.WithDefaults())
	}
	if w := c.written(); len(w) != 0 {
		t.Errorf("with no demand the pool at its minimum was resized: %v", w)
	}
	burst := time.Now()
	for i := range 4 {
		claim(t, c, fmt.Sprintf("burst-%d", i))
	}
	eventually(t, "the pool grows to the burst and a spare", func() bool { return c.replicas(t) == 5 })
	t.Logf("grown to 5 %s after the burst", time.Since(burst).Round(time.Millisecond))
	eventually(t, "the pool shrinks back to its minimum after the cooldown", func() bool { return c.replicas(t) == 1 })
	if took := time.Since(burst); took < policy.Cooldown {
		t.Errorf("shrank %s after the burst, before the cooldown (%s)", took, policy.Cooldown)
	}
	// Up, then down, each once: no step back and forth.
	w := c.written()
	if len(w) < 2 || w[len(w)-1] != 1 {
		t.Fatalf("writes %v, want up to 5 and then down to 1", w)
	}
	for i := 1; i < len(w)-1; i++ {
		if w[i] < w[i-1] {
			t.Errorf("writes %v: shrank before the last write", w)
		}
	}
	eventually(t, "the stats count the shrink", func() bool { return a.Stats().ScaledDown == 1 })
	s := a.Stats()
	if s.Claims != 4 || s.ScaledDown != 1 || s.ScaledUp < 1 || s.Recommended != 1 || s.Replicas != 1 {
		t.Errorf("stats %+v: want 4 claims, scaled up at least once and down once, 1 recommended and written", s)
	}
}

func TestOneWriterAmongSeveralProcessesAndATakeover(t *testing.T) {
	t.Parallel()
	policy := &Policy{Min: 0, Max: 6, Spare: 1, Cooldown: time.Minute}
	c := newScalableCluster(t, policy, 0)
	a, stopA := start(t, c, "runner-a", nil)
	eventually(t, "the first process leads", func() bool { return a.Stats().Leader })
	b, _ := start(t, c, "runner-b", nil)
	leaders := func() int {
		n := 0
		for _, x := range []*Autoscaler{a, b} {
			if x.Stats().Leader {
				n++
			}
		}
		return n
	}
	eventually(t, "one of the two leads", func() bool { return leaders() == 1 })
	// A miss of an empty pool is demand too: from 0 to 1 + the spare.
	miss := coldPod("cold-1", "default/"+runner.PoolMissEmpty)
	miss.Namespace, miss.CreationTimestamp = ns, metav1.Now()
	if _, err := c.CoreV1().Pods(ns).Create(context.Background(), miss.Pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the pool grows from 0 on a miss", func() bool { return c.replicas(t) == 2 })
	for range 20 {
		if leaders() > 1 {
			t.Fatal("two processes lead at once")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Both followed the demand (the second perhaps in its watch's first list); the leader alone
	// wrote.
	eventually(t, "the second process sees the miss", func() bool { d, _, _ := b.t.snapshot(); return len(d) == 1 })
	if sa, sb := a.Stats(), b.Stats(); sa.ScaledUp != 1 || sb.ScaledUp != 0 {
		t.Errorf("scaled up %d and %d times; want one write, by the leader", sa.ScaledUp, sb.ScaledUp)
	}
	// The leader's process ends: the other takes over, and still sizes the pool, with the demand
	// it saw itself.
	if !a.Stats().Leader {
		t.Fatal("the first process lost the lead while it ran")
	}
	stopA()
	eventually(t, "the other process takes over", func() bool { return b.Stats().Leader })
	for i := range 3 {
		claim(t, c, fmt.Sprintf("after-%d", i))
	}
	// 3 claims within a refill time (and the miss, if it was within one of them) and a spare.
	eventually(t, "the new leader sizes the pool", func() bool { return c.replicas(t) >= 4 })
	eventually(t, "the new leader counts its writes", func() bool { return b.Stats().ScaledUp >= 1 })
}

func TestANotAutoscaledPoolIsLeftAlone(t *testing.T) {
	t.Parallel()
	c := newScalableCluster(t, nil, 2)
	a, err := New(Config{Client: c, Namespace: ns, Pool: "default", Identity: "runner-a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Run(context.Background()); !errors.Is(err, ErrNotAutoscaled) {
		t.Errorf("Run on a pool without the policy: %v, want ErrNotAutoscaled", err)
	}
	if _, err := New(Config{Client: c, Namespace: ns, Pool: "default", Identity: "x", Policy: &Policy{Min: 3, Max: 2}}); !errors.Is(err, runner.ErrInvalidOptions) {
		t.Errorf("New with max below min: %v, want ErrInvalidOptions", err)
	}
	if _, err := New(Config{Client: c, Namespace: ns, Pool: "default"}); !errors.Is(err, runner.ErrInvalidOptions) {
		t.Errorf("New without an identity: %v, want ErrInvalidOptions", err)
	}
	for _, a := range c.Actions() {
		if a.GetVerb() == "update" || a.GetVerb() == "patch" {
			t.Errorf("a pool that is not autoscaled was written: %v", a)
		}
	}
}
