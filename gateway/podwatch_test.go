package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func sandboxPod(name, ip string, annotations map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "sbx", Annotations: annotations, ResourceVersion: "1",
			Labels: map[string]string{"app.kubernetes.io/managed-by": "gkexec", "app.kubernetes.io/component": "sandbox"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func TestPodDirectoryFollowsPods(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset(
		sandboxPod("inherits", "10.0.0.1", nil),
		sandboxPod("narrowed", "10.0.0.2", map[string]string{AnnotationEgressAllow: "pypi.org *.pythonhosted.org:443"}),
		sandboxPod("nothing", "10.0.0.3", map[string]string{AnnotationEgressAllow: EgressNone}),
		sandboxPod("garbled", "10.0.0.4", map[string]string{AnnotationEgressAllow: "pypi.org *.com"}),
		sandboxPod("tokened", "10.0.0.5", map[string]string{AnnotationEgressTokenSHA256: TokenHash("t0k3n")}),
	)
	d := NewPodDirectory(client, "sbx", "", nil)
	must(t, d.Start(ctx))

	for addr, want := range map[string]struct {
		id    string
		allow string // "-": inherits
	}{
		"10.0.0.1": {"inherits", "-"},
		"10.0.0.2": {"narrowed", "pypi.org *.pythonhosted.org:443"},
		"10.0.0.3": {"nothing", ""},
		"10.0.0.4": {"garbled", ""}, // fails closed
	} {
		sb, ok := d.ByAddr(netip.MustParseAddr(addr))
		allow := "-"
		if sb.Allow != nil {
			allow = sb.Allow.String()
		}
		if !ok || sb.ID != want.id || allow != want.allow {
			t.Errorf("%s: %+v %v (allow %q); want %s %q", addr, sb, ok, allow, want.id, want.allow)
		}
	}
	if sb, ok := d.ByTokenHash(TokenHash("t0k3n")); !ok || sb.ID != "tokened" {
		t.Errorf("by token: %+v %v", sb, ok)
	}

	// A warm Pod claimed: its narrowing changes; then it finishes and its address is reused.
	pods := client.CoreV1().Pods("sbx")
	p := sandboxPod("inherits", "10.0.0.1", map[string]string{AnnotationEgressAllow: "pypi.org"})
	p.ResourceVersion = "2"
	_, err := pods.Update(ctx, p, metav1.UpdateOptions{})
	must(t, err)
	eventually(t, func() bool { sb, _ := d.ByID("inherits"); return sb.Version == "2" && sb.Allow != nil })
	p.Status.Phase = corev1.PodSucceeded
	_, err = pods.Update(ctx, p, metav1.UpdateOptions{})
	must(t, err)
	eventually(t, func() bool { _, ok := d.ByAddr(netip.MustParseAddr("10.0.0.1")); return !ok })
	_, err = pods.Create(ctx, sandboxPod("reuser", "10.0.0.1", nil), metav1.CreateOptions{})
	must(t, err)
	eventually(t, func() bool { sb, _ := d.ByAddr(netip.MustParseAddr("10.0.0.1")); return sb.ID == "reuser" })
	must(t, pods.Delete(ctx, "tokened", metav1.DeleteOptions{}))
	eventually(t, func() bool { _, ok := d.ByTokenHash(TokenHash("t0k3n")); return !ok })

	// A Pod on the host network shares the node's address: never identified by it.
	hp := sandboxPod("hostnet", "192.168.0.9", nil)
	hp.Spec.HostNetwork = true
	_, err = pods.Create(ctx, hp, metav1.CreateOptions{})
	must(t, err)
	eventually(t, func() bool { _, ok := d.ByID("hostnet"); return ok })
	if _, ok := d.ByAddr(netip.MustParseAddr("192.168.0.9")); ok {
		t.Error("a host-network Pod was identified by the node's address")
	}
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A new Pod's code may ask before the watch has seen the Pod's IP: the request waits for it
// (IdentifyWait), and is refused only when no sandbox turns up there in time.
func TestARequestWaitsForItsNewPodToBeSeen(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := fake.NewClientset()
	d := NewPodDirectory(client, "sbx", "", nil)
	must(t, d.Start(ctx))
	gw, err := New(Options{Directory: d, Allow: []Rule{{Host: "pypi.org"}}, IdentifyWait: 10 * time.Second,
		Resolver: HostsResolver{}})
	must(t, err)
	ask := func(from string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, "http://elsewhere.test/", nil)
		req.RemoteAddr = from + ":40000"
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		return rec
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = client.CoreV1().Pods("sbx").Create(ctx, sandboxPod("late", "10.0.0.7", nil), metav1.CreateOptions{})
	}()
	start := time.Now()
	// Identified (the refusal is the allow-list's, not the identity's), once the Pod was seen.
	if rec := ask("10.0.0.7"); rec.Header().Get(HeaderDenied) != string(ReasonNotAllowed) {
		t.Errorf("a request from a Pod the watch sees late: %d %s, want it identified", rec.Code, rec.Header().Get(HeaderDenied))
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("answered after %s, before the Pod existed", waited)
	}

	gw2, err := New(Options{Directory: d, Allow: []Rule{{Host: "pypi.org"}}, IdentifyWait: 200 * time.Millisecond})
	must(t, err)
	req := httptest.NewRequest(http.MethodGet, "http://pypi.org/", nil)
	req.RemoteAddr = "10.0.0.99:40000"
	rec := httptest.NewRecorder()
	start = time.Now()
	gw2.ServeHTTP(rec, req)
	if rec.Header().Get(HeaderDenied) != string(ReasonUnknownSandbox) || time.Since(start) > 10*time.Second {
		t.Errorf("no Pod at the address: %s after %s, want unknown-sandbox after the wait", rec.Header().Get(HeaderDenied), time.Since(start))
	}
}

// An address is reused: a new Pod has it while the watch still holds the old Pod (whose end
// it has not seen yet). The newer Pod owns the address whatever order the events come in; a
// late update of the old Pod must not take it back, nor its removal leave the new Pod without
// it. Two Pods created in the same second cannot be told apart: the address is nobody's until
// one leaves.
func TestReusedAddressBelongsToTheNewerPod(t *testing.T) {
	t.Parallel()
	d := NewPodDirectory(fake.NewClientset(), "sbx", "", nil)
	addr := netip.MustParseAddr("10.0.0.1")
	at := func(name string, sec int64, rv string) *corev1.Pod {
		p := sandboxPod(name, addr.String(), nil)
		p.CreationTimestamp = metav1.Unix(1_700_000_000+sec, 0)
		p.ResourceVersion = rv
		return p
	}
	owner := func() string {
		sb, ok := d.ByAddr(addr)
		if !ok {
			return "(nobody)"
		}
		return sb.ID
	}
	check := func(step, want string) {
		t.Helper()
		if got := owner(); got != want {
			t.Errorf("%s: %s owns %s; want %s", step, got, addr, want)
		}
	}
	d.onPod(at("old", 0, "1"), false)
	d.onPod(at("new", 10, "2"), false)
	check("the new Pod seen", "new")
	d.onPod(at("old", 0, "3"), false) // a late update of the old Pod, still Running
	check("the old Pod updated", "new")
	d.onPod(at("old", 0, "3"), true)
	check("the old Pod deleted", "new")

	// The other order: the new Pod is seen first, then an update of the old one.
	d.onPod(at("new", 10, "4"), true)
	d.onPod(at("newer", 20, "5"), false)
	d.onPod(at("stale", 15, "6"), false)
	check("an older Pod seen after", "newer")
	d.onPod(at("newer", 20, "7"), true)
	check("the newer Pod deleted", "stale")

	d.onPod(at("twin", 15, "8"), false)
	check("two Pods of the same second", "(nobody)")
	d.onPod(at("stale", 15, "9"), true)
	check("one twin gone", "twin")
}

// Start returns once the directory knows every Pod the watch's first list held: a request from
// one of them right after Start is not refused as from an unknown address. (The informer counts
// as synced once it has queued the list for its handlers, before they have run.)
func TestPodDirectoryKnowsEveryListedPodWhenStartReturns(t *testing.T) {
	t.Parallel()
	const n = 2000
	addr := func(i int) string { return fmt.Sprintf("10.1.%d.%d", i/250, i%250+1) }
	var pods []runtime.Object
	for i := range n {
		pods = append(pods, sandboxPod(fmt.Sprintf("pod-%d", i), addr(i), nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := NewPodDirectory(fake.NewClientset(pods...), "sbx", "", nil)
	must(t, d.Start(ctx))
	missing := 0
	for i := range n {
		if _, ok := d.ByAddr(netip.MustParseAddr(addr(i))); !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of the %d listed Pods unknown when Start returned", missing, n)
	}
}
