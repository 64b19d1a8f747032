//go:build integration || gke

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/leftovers"
)

// leftoverDeadline is how long Pods may take to go after their Job was deleted (grace period 1 s,
// plus the garbage collector and the kubelet on a loaded machine). Generous on purpose: the
// assertion is that they go, not how fast; the timeout stage measures speed separately.
const leftoverDeadline = 2 * time.Minute

// assertNoLeftovers waits, up to leftoverDeadline, until no Job, ConfigMap or Pod with the runner's
// labels remains in the namespace (or of the given executions), and fails naming what stayed.
func (tg *target) assertNoLeftovers(t *testing.T, executionIDs ...string) {
	t.Helper()
	if _, err := leftovers.Wait(context.Background(), tg.admin, tg.namespace, leftoverDeadline, executionIDs...); err != nil {
		t.Errorf("leaked: %v", err)
	}
}

// creationRecorder records every runner object created in the namespace while it runs, from
// watches opened before the action: it sees objects even if they were deleted again at once.
type creationRecorder struct {
	t      *testing.T
	tg     *target
	labels map[string]string // what the markers carry to match the watches' selector
	mu     sync.Mutex
	added  []string
	marked map[string]bool // markers seen, by kind
	stop   context.CancelFunc
	done   sync.WaitGroup
}

// markerPrefix names the objects stopAfter creates to learn that the watches caught up; they are
// never reported as added.
const markerPrefix = "gkexec-e2e-marker-"

// markerDeadline is the least stopAfter waits for its markers: creating three objects and seeing
// them come back, on a loaded machine. Missing it fails the test; meeting it takes milliseconds.
const markerDeadline = 30 * time.Second

// recordCreations opens watches on Jobs, ConfigMaps and Pods with the runner's labels (of the
// given executions, or all); stopAfter closes them and returns what was added.
func (tg *target) recordCreations(t *testing.T, executionIDs ...string) *creationRecorder {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	markerLabels := map[string]string{runner.LabelManagedBy: runner.ManagedByValue}
	if len(executionIDs) > 0 {
		markerLabels[runner.LabelExecutionID] = executionIDs[0]
	}
	rec := &creationRecorder{t: t, tg: tg, labels: markerLabels, marked: map[string]bool{}, stop: cancel}
	// List first and watch from the list's resourceVersion: objects that exist already are not
	// reported as added.
	sel := leftovers.Selector(executionIDs...)
	from := func(list metav1.ListInterface, err error) (metav1.ListOptions, error) {
		if err != nil {
			return metav1.ListOptions{}, err
		}
		return metav1.ListOptions{LabelSelector: sel, ResourceVersion: list.GetResourceVersion()}, nil
	}
	list := metav1.ListOptions{LabelSelector: sel}
	watchers := map[string]func() (watch.Interface, error){
		"Job": func() (watch.Interface, error) {
			opts, err := from(tg.admin.BatchV1().Jobs(tg.namespace).List(ctx, list))
			if err != nil {
				return nil, err
			}
			return tg.admin.BatchV1().Jobs(tg.namespace).Watch(ctx, opts)
		},
		"ConfigMap": func() (watch.Interface, error) {
			opts, err := from(tg.admin.CoreV1().ConfigMaps(tg.namespace).List(ctx, list))
			if err != nil {
				return nil, err
			}
			return tg.admin.CoreV1().ConfigMaps(tg.namespace).Watch(ctx, opts)
		},
		"Pod": func() (watch.Interface, error) {
			opts, err := from(tg.admin.CoreV1().Pods(tg.namespace).List(ctx, list))
			if err != nil {
				return nil, err
			}
			return tg.admin.CoreV1().Pods(tg.namespace).Watch(ctx, opts)
		},
	}
	for kind, open := range watchers {
		w, err := open()
		if err != nil {
			cancel()
			t.Fatalf("watch %s: %v", kind, err)
		}
		rec.done.Add(1)
		go func() {
			defer rec.done.Done()
			defer w.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case ev, ok := <-w.ResultChan():
					if !ok {
						return
					}
					if ev.Type != watch.Added {
						continue
					}
					name := "?"
					if m, err := metaName(ev.Object); err == nil {
						name = m
					}
					rec.mu.Lock()
					if strings.HasPrefix(name, markerPrefix) {
						rec.marked[kind] = true
					} else {
						rec.added = append(rec.added, kind+"/"+name)
					}
					rec.mu.Unlock()
				}
			}
		}()
	}
	return rec
}

// stopAfter waits until the watches have delivered everything that happened before it was
// called, closes them and returns what was added. A watch delivers its events in order, so it
// creates one marker of each kind, matching the watches' selector, and waits for the three to
// arrive (at most deadline, never less than markerDeadline); then deletes them.
func (r *creationRecorder) stopAfter(deadline time.Duration) []string {
	r.t.Helper()
	defer func() {
		r.stop()
		r.done.Wait()
	}()
	name := markerPrefix + strconv.FormatInt(time.Now().UnixNano(), 36)
	defer r.tg.deleteMarkers(name)
	if err := r.tg.createMarkers(name, r.labels); err != nil {
		r.t.Errorf("creating the watches' markers: %v; what they saw may be incomplete", err)
	} else {
		err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, max(deadline, markerDeadline), true,
			func(context.Context) (bool, error) {
				r.mu.Lock()
				defer r.mu.Unlock()
				return len(r.marked) == 3, nil
			})
		if err != nil {
			r.mu.Lock()
			r.t.Errorf("the watches delivered markers %v of Job, ConfigMap and Pod: %v; what they saw may be incomplete", r.marked, err)
			r.mu.Unlock()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.added...)
}

// createMarkers creates a ConfigMap, a suspended Job (no Pod) and a scheduling-gated Pod (never
// scheduled, never pulled; valid under Pod Security restricted) named name.
func (tg *target) createMarkers(name string, lbls map[string]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), markerDeadline)
	defer cancel()
	meta := metav1.ObjectMeta{Name: name, Namespace: tg.namespace, Labels: lbls}
	if err := createInQuota(func() error {
		_, err := tg.admin.CoreV1().ConfigMaps(tg.namespace).Create(ctx, &corev1.ConfigMap{ObjectMeta: meta}, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	spec := corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		AutomountServiceAccountToken: ptr.To(false),
		SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65534),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		Containers: []corev1.Container{{Name: "marker", Image: "registry.k8s.io/pause:3.10",
			SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
				Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}},
	}
	job := &batchv1.Job{ObjectMeta: meta, Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: spec}}}
	if err := createInQuota(func() error {
		_, err := tg.admin.BatchV1().Jobs(tg.namespace).Create(ctx, job, metav1.CreateOptions{})
		return err
	}); err != nil {
		return err
	}
	spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "gkexec.dev/e2e-marker"}}
	return createInQuota(func() error {
		_, err := tg.admin.CoreV1().Pods(tg.namespace).Create(ctx, &corev1.Pod{ObjectMeta: meta, Spec: spec}, metav1.CreateOptions{})
		return err
	})
}

// deleteMarkers deletes what createMarkers made; what it cannot delete the leftover checks report.
func (tg *target) deleteMarkers(name string) {
	ctx, cancel := context.WithTimeout(context.Background(), markerDeadline)
	defer cancel()
	now := metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0), PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}
	_ = tg.admin.CoreV1().Pods(tg.namespace).Delete(ctx, name, now)
	_ = tg.admin.BatchV1().Jobs(tg.namespace).Delete(ctx, name, now)
	_ = tg.admin.CoreV1().ConfigMaps(tg.namespace).Delete(ctx, name, metav1.DeleteOptions{})
}

func metaName(obj any) (string, error) {
	m, ok := obj.(metav1.Object)
	if !ok {
		return "", fmt.Errorf("%T has no metadata", obj)
	}
	return m.GetName(), nil
}
