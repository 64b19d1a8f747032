package sandbox

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Deletion is one object to delete: its "kind/name" and the call that deletes it.
type Deletion struct {
	what string
	del  func(ctx context.Context) error
}

// DeleteAll deletes every object at once, each retried with capped backoff on a context of its own
// (so that a cancelled caller still cleans up) until it is gone or timeout passes. An API server
// that restarts answers "connection refused" for a few seconds: one try is not enough. It returns
// what is still there.
func DeleteAll(log *slog.Logger, timeout time.Duration, objects ...Deletion) []string {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var (
		mu   sync.Mutex
		left []string
		wg   sync.WaitGroup
	)
	for _, o := range objects {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := deleteUntilGone(ctx, o.del); err != nil {
				log.Warn("cleanup failed; run `gkexec gc` to remove what is left", "object", o.what, "error", err)
				mu.Lock()
				left = append(left, o.what)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return left
}

func deleteUntilGone(ctx context.Context, del func(ctx context.Context) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := del(ctx)
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) {
			return err // retrying cannot help
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(backoff):
			backoff = min(backoff*2, 2*time.Second)
		}
	}
}

// PodDeletion deletes exactly pod, not a later Pod of the same name, at once: with a grace period
// of 0 the API server removes the object without waiting for the kubelet. Every Pod the runner
// deletes this way has served (or can never serve: held past its time, its attach broken, a
// session's) and nothing is to be read from it any more. A graceful delete would keep the Pod,
// and its requests, on the scheduler's books through the kubelet's kill and gVisor's teardown
// (seconds on a loaded node), while an execution's own sandbox waits for that room; the
// kubelet still kills the container as it would (the Pod's own grace period of 1 s), it just no
// longer holds anyone up. The kubelet does not count a force-deleted Pod when it admits the next
// one either (kubernetes#104824): for the moment of the teardown the node's CPU, which is
// compressible, is shared beyond the requests.
func (e *Env) PodDeletion(pod *corev1.Pod) Deletion {
	ns, name, uid := e.Namespace, pod.Name, pod.UID
	return Deletion{"pod/" + name, func(ctx context.Context) error {
		err := e.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{
			Preconditions: &metav1.Preconditions{UID: &uid}, GracePeriodSeconds: ptr.To[int64](0)})
		if apierrors.IsConflict(err) {
			return nil // a different Pod by that name: ours is gone
		}
		return err
	}}
}

// ConfigMapDeletion deletes the ConfigMap name.
func (e *Env) ConfigMapDeletion(name string) Deletion {
	return Deletion{"configmap/" + name, func(ctx context.Context) error {
		return e.Client.CoreV1().ConfigMaps(e.Namespace).Delete(ctx, name, metav1.DeleteOptions{})
	}}
}
