package sandbox

import (
	"context"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// PodDeletion deletes exactly pod, not a later Pod of the same name.
func (e *Env) PodDeletion(pod *corev1.Pod) Deletion {
	ns, name, uid := e.Namespace, pod.Name, pod.UID
	return Deletion{"pod/" + name, func(ctx context.Context) error {
		err := e.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
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
