package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// Attachment is an attach stream to a Pod's waiting entrypoint: its stdin and its stdout, the
// sandbox's two ends of the wire.
type Attachment struct {
	e   *Env
	Pod *corev1.Pod
	t   *track.Tracker

	stdin  *io.PipeWriter
	out    *bufio.Reader
	outR   *io.PipeReader // under out: closed when this end lets go, so that no writer blocks on it
	cancel context.CancelFunc
	done   chan struct{} // closed when the attach stream ended
	err    error         // why, once done

	deleteOnce sync.Once
	left       []string
}

// Connect starts an attach stream to pod, followed by a tracker of its own.
func (e *Env) Connect(pod *corev1.Pod) *Attachment {
	t := e.Hub.Track(track.PodKey(pod.Name))
	t.Seed(pod)
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	a := &Attachment{e: e, Pod: pod, t: t, stdin: inW, out: bufio.NewReaderSize(outR, 64<<10), outR: outR,
		cancel: cancel, done: make(chan struct{})}
	go func() {
		err := e.Attach(ctx, pod.Name, inR, outW)
		if err == nil {
			err = io.EOF
		}
		a.err = err
		outW.CloseWithError(err)
		// EOF, not an error, for client-go's copy from our stdin: it ends quietly.
		_ = inW.Close()
		close(a.done)
	}()
	return a
}

// Tracker follows the attached Pod.
func (a *Attachment) Tracker() *track.Tracker { return a.t }

// Broken reports whether the stream ended.
func (a *Attachment) Broken() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Ping proves the stream works end to end: the entrypoint answers a ping with one. req may ask
// something of it (a keepalive).
func (a *Attachment) Ping(ctx context.Context, req wire.PingRequest) error {
	ping := wire.Ping
	if req != (wire.PingRequest{}) {
		ping = wire.PingWith(req)
	}
	errc := make(chan error, 1)
	go func() {
		if _, err := a.stdin.Write(ping); err != nil {
			errc <- err
			return
		}
		line, err := a.out.ReadSlice('\n')
		switch {
		case err != nil:
			errc <- err
		case !wire.TagPing.Starts(line):
			errc <- fmt.Errorf("the sandbox answered %q to a ping", bytes.TrimSpace(line))
		default:
			errc <- nil
		}
	}()
	timer := time.NewTimer(AttachTimeout)
	defer timer.Stop()
	select {
	case err := <-errc:
		return err
	case <-timer.C:
		a.cancel()
		<-errc
		return fmt.Errorf("no answer within %s", AttachTimeout)
	case <-ctx.Done():
		a.cancel()
		<-errc
		return ctx.Err()
	}
}

// Detach ends this attach; the Pod and its entrypoint go on (a session's, for the next attach).
func (a *Attachment) Detach() {
	_ = a.stdin.Close()
	a.cancel()
	a.letGo()
	select {
	case <-a.done:
	case <-time.After(streamCloseGrace):
	}
	a.e.Hub.Untrack(track.PodKey(a.Pod.Name), a.t)
}

// abandon lets go of a stream to a Pod this runner did not get: the stream is cut and its
// reading end closed at once (nothing the Pod writes for its new holder waits on it), and it is
// untracked once it ended, in the background.
func (a *Attachment) abandon() {
	_ = a.stdin.Close()
	a.cancel()
	a.letGo()
	a.e.Background(a.Detach)
}

// Delete deletes the Pod, then waits for the attach stream to end with its container: a stream
// cut from our side would be logged by client-go as an error. It returns what it could not
// delete; only the first call deletes.
func (a *Attachment) Delete(log *slog.Logger) []string {
	a.deleteOnce.Do(func() {
		_ = a.stdin.Close()
		a.left = DeleteAll(log, a.e.CleanupTimeout, a.e.PodDeletion(a.Pod))
		select {
		case <-a.done:
		case <-time.After(streamCloseGrace):
		}
		a.cancel()
		a.letGo()
		a.e.Hub.Untrack(track.PodKey(a.Pod.Name), a.t)
	})
	return a.left
}

// letGo closes the reading end of the stream: whatever still writes the sandbox's output into it
// (the attach's copy, while nobody reads a session's lines) fails at once instead of blocking,
// and the stream ends.
func (a *Attachment) letGo() {
	_ = a.outR.CloseWithError(io.ErrClosedPipe)
}

// warmSandbox is a claimed pool Pod attached to, for one execution.
type warmSandbox struct {
	*Attachment
	claimed, attached time.Time
}

func (sb *warmSandbox) Kind() string { return Warm }

// Open sends the request over stdin; the entrypoint's framed output comes back on stdout.
func (sb *warmSandbox) Open(ctx context.Context, x *Execution) (io.ReadCloser, error) {
	frames := x.Request.Encode(false)
	written := make(chan error, 1)
	go func() {
		_, err := sb.stdin.Write(frames)
		written <- err
	}()
	select {
	case err := <-written:
		if err != nil {
			return nil, fmt.Errorf("%w: pod %s/%s: sending the request: %v", diagnose.ErrSandboxFailed, sb.e.Namespace, sb.Pod.Name, err)
		}
	case <-ctx.Done():
		sb.cancel()
		return nil, ctx.Err()
	}
	x.Marks.Started = time.Now()
	go func() {
		select {
		case <-ctx.Done():
			sb.cancel()
		case <-sb.done:
		}
	}()
	// Name the execution on its Pod, as a cold one's objects are named, for `kubectl get -l` and
	// audit; off the critical path (the Pod may already be gone when it lands).
	sb.e.Background(func() { sb.label(x.Request.ExecutionID) })
	return io.NopCloser(sb.out), nil
}

func (sb *warmSandbox) label(id string) {
	e := sb.e
	ctx, cancel := context.WithTimeout(context.Background(), e.CleanupTimeout)
	defer cancel()
	// The claim's time is renewed with the ID: gc's age of a one-shot Pod counts from its
	// execution, not from when it was claimed to be held ready.
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"labels":      map[string]string{podspec.LabelExecutionID: id},
		"annotations": map[string]string{podspec.AnnotationClaimedAt: time.Now().UTC().Format(time.RFC3339)}}})
	_, err := e.Client.CoreV1().Pods(e.Namespace).Patch(ctx, sb.Pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		e.Log.Debug("could not label the warm sandbox with its execution", "pod", sb.Pod.Name, "error", err)
	}
}

// Reopen reads the container's log, which holds the entrypoint's stdout too, following it while
// the container runs: it recovers an execution whose attach broke. A container that was
// restarted (after an OOM kill) left its output in the previous log, which is read whole.
func (sb *warmSandbox) Reopen(ctx context.Context, follow bool) io.ReadCloser {
	pod, _, _, _ := sb.t.Snapshot()
	previous := false
	for _, cs := range pod.Status.ContainerStatuses {
		previous = previous || (cs.Name == podspec.ContainerName && cs.RestartCount > 0)
	}
	stream, err := sb.e.OpenLogs(ctx, sb.Pod.Name, &corev1.PodLogOptions{Container: podspec.ContainerName, Previous: previous,
		Follow: follow && !previous, LimitBytes: ptr.To(int64(wire.MaxLogBytes + 1<<20))})
	if err != nil {
		return nil
	}
	return stream
}

// Release deletes the Pod: a warm sandbox serves once.
func (sb *warmSandbox) Release(log *slog.Logger) []string { return sb.Delete(log) }
