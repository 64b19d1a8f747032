// Package testns looks after the namespaces the end-to-end suites make on the shared local
// cluster. Each suite records on its namespaces which process owns them (Own), and each suite
// starts by sweeping the namespaces a killed run left behind (SweepStale): their warm-pool Pods
// would otherwise keep taking the node's capacity from every later run.
//
// The suites name their namespaces with these prefixes; Own refuses any other, so that no suite
// makes a namespace the sweep would never find:
//
//	gkexec-e2e-             test/e2e (gkexec-e2e-tf-*, gkexec-e2e-mf-*, gkexec-e2e-tfw-*)
//	gkexec-agent-           test/agent
//	gkexec-chaos-           test/chaos
//	gkexec-bench-session-   test/e2e BenchmarkSession
//
// Two suites may run at once (test/run.sh runs the packages in parallel), so the sweep deletes a
// namespace only when both guards hold: it is older than StaleAfter, and the process that owns it
// no longer runs.
package testns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// OwnerAnnotation is "<host>/<pid>" of the test process that deletes the namespace when it ends.
	OwnerAnnotation = "gkexec.dev/test-owner"
	// KeptAnnotation says why a run left the namespace standing on purpose for a later run
	// (terratest's SKIP_teardown); the sweep never deletes such a namespace.
	KeptAnnotation = "gkexec.dev/test-kept"

	// StaleAfter is the age under which the sweep deletes nothing. It must exceed the time from a
	// namespace's creation to its Own (a terraform apply, a minute or two): until then, age is
	// the only sign that a run still uses it.
	StaleAfter = 30 * time.Minute
)

var prefixes = []string{"gkexec-e2e-", "gkexec-agent-", "gkexec-chaos-", "gkexec-bench-session-"}

// Own records this test process as the owner of the namespace, which it deletes when it ends, and
// clears any earlier Keep. Call it as soon as the namespace exists, and again when a run takes
// over a namespace an earlier run kept.
func Own(t testing.TB, client kubernetes.Interface, namespace string) {
	t.Helper()
	if !suitesNamespace(namespace) {
		t.Fatalf("namespace %s: name it with one of the prefixes %v, or SweepStale will never find it if this run is killed", namespace, prefixes)
	}
	annotate(t, client, namespace, map[string]*string{OwnerAnnotation: ptr.To(owner()), KeptAnnotation: nil})
}

// Keep marks the namespace as left standing on purpose after this run, for the reason given; the
// sweep leaves it alone until a later run Owns it again or it is deleted by hand.
func Keep(t testing.TB, client kubernetes.Interface, namespace, why string) {
	t.Helper()
	annotate(t, client, namespace, map[string]*string{KeptAnnotation: &why})
}

func annotate(t testing.TB, client kubernetes.Interface, namespace string, annotations map[string]*string) {
	t.Helper()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := client.CoreV1().Namespaces().Patch(ctx, namespace, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("annotating namespace %s with its owner: %v", namespace, err)
	}
}

// SweepStale deletes the suites' namespaces that a killed run left behind: older than StaleAfter,
// not kept on purpose, and owned by no process still running on this host (or by nothing recorded).
// It logs each namespace it deletes and each old one it leaves, and does not wait for them to go.
func SweepStale(t testing.TB, client kubernetes.Interface) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing namespaces to sweep stale test namespaces: %v", err)
	}
	for _, ns := range list.Items {
		age := time.Since(ns.CreationTimestamp.Time)
		if !suitesNamespace(ns.Name) || ns.DeletionTimestamp != nil || age < StaleAfter {
			continue
		}
		age = age.Round(time.Minute)
		if why, kept := ns.Annotations[KeptAnnotation]; kept {
			t.Logf("stale namespace %s (%s old) left alone: kept on purpose (%s); `kubectl delete namespace %s` when done with it", ns.Name, age, why, ns.Name)
			continue
		}
		gone := "no owner recorded"
		if o, ok := ns.Annotations[OwnerAnnotation]; ok {
			running, why := ownerRuns(o)
			if running {
				t.Logf("namespace %s (%s old) left alone: %s", ns.Name, age, why)
				continue
			}
			gone = why
		}
		err := client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		switch {
		case err == nil:
			t.Logf("swept stale namespace %s: %s old, %s", ns.Name, age, gone)
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Another suite's sweep got there first.
		default:
			t.Errorf("sweeping stale namespace %s (%s old, %s): %v", ns.Name, age, gone, err)
		}
	}
}

// WaitGone waits until the namespace no longer exists (deletion finishes asynchronously) and fails
// the test, naming its last phase and conditions, if it still does after timeout.
func WaitGone(t testing.TB, client kubernetes.Interface, namespace string, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		ns, err := client.CoreV1().Namespaces().Get(ctx, namespace, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		if err == nil {
			last = fmt.Sprintf("phase %s, conditions %v", ns.Status.Phase, ns.Status.Conditions)
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("namespace %s still exists %s after its deletion: %s", namespace, timeout, last)
	}
}

func suitesNamespace(name string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// owner is this process, as OwnerAnnotation records it.
func owner() string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(os.Getpid())
}

// ownerRuns reports whether the process an OwnerAnnotation names may still run, and why. A process
// on another host cannot be asked, so it counts as running: the sweep errs on keeping.
func ownerRuns(annotation string) (bool, string) {
	host, pidText, _ := strings.Cut(annotation, "/")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false, fmt.Sprintf("its owner %q is not a host/pid", annotation)
	}
	if self, _ := os.Hostname(); host != self {
		return true, fmt.Sprintf("its owner %s runs on another host, which this one cannot ask", annotation)
	}
	// Signal 0 checks that the process exists; EPERM means it does, as another user's.
	if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
		return true, fmt.Sprintf("its owner %s still runs", annotation)
	}
	return false, fmt.Sprintf("its owner %s no longer runs", annotation)
}
