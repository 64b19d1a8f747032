package bench

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
)

// floor runs the workload the way the cluster allows at its fastest: one bare Pod with the same
// image, RuntimeClass, node placement and command, created, watched until it succeeds, deleted.
// No ConfigMap, no Job controller, no log read: what is left is scheduling, sandbox start, the
// code itself and the kubelet's status reporting.
type floor struct {
	client kubernetes.Interface
	opts   runner.Options
	code   string
	// firstOutput also follows the Pod's log from when its container is seen running, and times
	// its first byte: the earliest a client of the API sees the code's output.
	firstOutput bool
}

// floorRun is what one bare Pod measured.
type floorRun struct {
	// latency runs from the create to the deletion being accepted after the Pod succeeded.
	latency time.Duration
	// firstOutput runs from the create to the first byte of its log (0 when not measured).
	firstOutput time.Duration
}

func (f *floor) pod() *corev1.Pod {
	o := f.opts
	sel := map[string]string{}
	var tol []corev1.Toleration
	if !o.DisableSandboxNodeSelector {
		sel[runner.GKESandboxLabel] = runner.GKESandboxValue
		tol = append(tol, corev1.Toleration{Key: runner.GKESandboxLabel, Operator: corev1.TolerationOpEqual,
			Value: runner.GKESandboxValue, Effect: corev1.TaintEffectNoSchedule})
	}
	var rc *string
	if !o.NoRuntimeClass {
		rc = ptr.To(o.RuntimeClassName)
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: "gkexec-floor-",
			Namespace:    o.Namespace,
			Labels:       map[string]string{"app.kubernetes.io/name": "gkexec-bench-floor"},
		},
		Spec: corev1.PodSpec{
			RuntimeClassName:              rc,
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  ptr.To(false),
			EnableServiceLinks:            ptr.To(false),
			TerminationGracePeriodSeconds: ptr.To[int64](1),
			NodeSelector:                  sel,
			Tolerations:                   tol,
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(o.RunAsUser),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "floor", Image: o.Image, ImagePullPolicy: o.ImagePullPolicy,
				Command: []string{"python3", "-c", f.code},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: mustQ(o.CPURequest), corev1.ResourceMemory: mustQ(o.MemoryRequest)},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: mustQ(o.CPULimit), corev1.ResourceMemory: mustQ(o.MemoryLimit)},
				},
			}},
		},
	}
}

// run creates one bare Pod, watches it until it succeeds and deletes it.
func (f *floor) run(ctx context.Context) (floorRun, error) {
	ns := f.opts.Namespace
	t0 := time.Now()
	pod, err := f.client.CoreV1().Pods(ns).Create(ctx, f.pod(), metav1.CreateOptions{})
	if err != nil {
		return floorRun{}, fmt.Errorf("create floor pod (the benchmark's own identity needs pods create/delete): %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = f.client.CoreV1().Pods(ns).Delete(dctx, pod.Name, metav1.DeleteOptions{})
	}()
	w, err := f.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{
		FieldSelector:   fields.OneTermEqualSelector("metadata.name", pod.Name).String(),
		ResourceVersion: pod.ResourceVersion,
	})
	if err != nil {
		return floorRun{}, err
	}
	defer w.Stop()
	var first *firstByte
	deadline := time.After(f.opts.StartTimeout + f.opts.Timeout)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return floorRun{}, fmt.Errorf("watch on floor pod %s closed", pod.Name)
			}
			p, isPod := ev.Object.(*corev1.Pod)
			if !isPod || ev.Type == watch.Error || p.Name != pod.Name {
				continue // the name: a fake clientset's watch ignores the field selector
			}
			if f.firstOutput && first == nil && started(p) {
				first = f.followLog(ctx, pod.Name, t0)
			}
			switch p.Status.Phase {
			case corev1.PodSucceeded:
				m := floorRun{latency: time.Since(t0)}
				if first != nil {
					m.firstOutput = first.wait()
				}
				d0 := time.Now()
				err := f.client.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{})
				m.latency += time.Since(d0)
				return m, err
			case corev1.PodFailed:
				return floorRun{}, fmt.Errorf("floor pod %s failed: %s", pod.Name, p.Status.Message)
			}
		case <-deadline:
			return floorRun{}, fmt.Errorf("floor pod %s did not finish in time", pod.Name)
		case <-ctx.Done():
			return floorRun{}, ctx.Err()
		}
	}
}

// started: the Pod's container runs, or ran: its log can be read.
func started(p *corev1.Pod) bool {
	for _, cs := range p.Status.ContainerStatuses {
		if cs.State.Running != nil || cs.State.Terminated != nil {
			return true
		}
	}
	return false
}

// firstByte is a log being followed until its first byte.
type firstByte struct {
	done   chan struct{}
	at     time.Duration
	cancel context.CancelFunc
}

// followLog opens the Pod's log and notes when its first byte arrives, measured from t0.
func (f *floor) followLog(ctx context.Context, name string, t0 time.Time) *firstByte {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	fb := &firstByte{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(fb.done)
		rc, err := f.client.CoreV1().Pods(f.opts.Namespace).GetLogs(name, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
		if err != nil {
			return
		}
		defer rc.Close()
		var b [1]byte
		if n, _ := rc.Read(b[:]); n > 0 {
			fb.at = time.Since(t0)
		}
	}()
	return fb
}

// wait returns the time to the first byte once the Pod succeeded: by then its whole log can be
// read, so the follow ends at once unless the log stayed empty.
func (fb *firstByte) wait() time.Duration {
	select {
	case <-fb.done:
	case <-time.After(10 * time.Second):
	}
	fb.cancel()
	<-fb.done // a cancelled stream returns at once
	return fb.at
}

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }
