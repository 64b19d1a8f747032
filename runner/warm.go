package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
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

// warmSource claims pre-started sandbox Pods from the warm pool: a Deployment (created by the
// sandbox-namespace Terraform module or manifests/components/warm-pool) whose Pods run the
// entrypoint waiting for a request on stdin. Kubernetes' own ReplicaSet controller keeps the pool
// full; the runner writes no controller. A claim is one patch guarded by the Pod's
// resourceVersion that changes its pool-state label: the Pod leaves the Deployment's selector (so
// the controller replaces it at once) and no other claimer can have it. The same patch sets the
// Pod's activeDeadlineSeconds, so a claimed Pod whose runner died ends by itself.
//
// The runner may hold a few sandboxes claimed and attached ahead of demand
// (Options.WarmPoolReady); they count against the pool, are released after Options.WarmPoolHold
// and on Close, and each serves one execution, like every warm sandbox.
type warmSource struct {
	r      *Runner
	h      *track.Hub
	holder string // AnnotationClaimedBy
	want   string // fingerprint of the sandbox the options describe

	mu       sync.Mutex
	ready    []*warmSandbox // oldest first
	tried    map[types.UID]time.Time
	claiming map[types.UID]bool
	stop     chan struct{}
	kick     chan struct{}
	stopped  sync.WaitGroup
}

const (
	// claimAttempts bounds the claims tried for one request when other runners win the races.
	claimAttempts = 4
	// attachTimeout bounds opening the attach stream and the first ping through it.
	attachTimeout = 10 * time.Second
	// streamCloseGrace is how long release waits for an attach stream to end with its deleted
	// Pod's container (1 s of grace period, then the sandbox's teardown).
	streamCloseGrace = 5 * time.Second
)

func newWarmSource(r *Runner, h *track.Hub) *warmSource {
	w := &warmSource{r: r, h: h, holder: r.holder,
		want: podspec.Fingerprint(podspec.Pod(&r.shape, nil)), tried: map[types.UID]time.Time{}, claiming: map[types.UID]bool{},
		stop: make(chan struct{}), kick: make(chan struct{}, 1)}
	if r.opts.WarmPoolReady > 0 {
		w.stopped.Add(1)
		go w.keepReady()
	}
	return w
}

// acquire hands out a held sandbox, else claims one now; errNotServed when the pool has none.
func (w *warmSource) acquire(ctx context.Context, x *execution) (sandbox, error) {
	if sb := w.takeReady(); sb != nil {
		x.timings.Claimed, x.timings.Attached = sb.claimed, sb.attached
		x.noteSandbox(SandboxWarm, sb.pod)
		return sb, nil
	}
	sb, err := w.claimAndAttach(ctx, 0, nil, &x.timings)
	if err != nil {
		return nil, err
	}
	x.noteSandbox(SandboxWarm, sb.pod)
	return sb, nil
}

// claimAndAttach claims an idle Pod, attaches to it and checks the stream with a ping.
func (w *warmSource) claimAndAttach(ctx context.Context, hold time.Duration, extra *metav1.ObjectMeta, tm *Timings) (*warmSandbox, error) {
	pod, err := w.claim(ctx, hold, extra)
	if err != nil {
		return nil, err
	}
	tm.Claimed = time.Now()
	sb := w.connect(pod)
	sb.claimed = tm.Claimed
	if err := sb.ping(ctx); err != nil {
		if sb.broken() && sb.err != nil && sb.err != io.EOF {
			err = sb.err // why the stream ended says more than the pipe it closed
		}
		sb.release(w.r.log)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: attach to pool pod %s/%s: %w", errNotServed, w.r.opts.Namespace, pod.Name, err)
	}
	sb.attached = time.Now()
	tm.Attached = sb.attached
	return sb, nil
}

// candidates are the idle pool Pods this runner may claim, in random order (many runners
// claiming from one pool then rarely race for the same Pod). Pods past WarmPoolMaxIdleAge are
// not candidates: they are returned separately to be recycled.
func (w *warmSource) candidates() (fresh, old []*corev1.Pod) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for uid, at := range w.tried {
		if now.Sub(at) > time.Minute {
			delete(w.tried, uid)
		}
	}
	for _, pod := range w.h.Pods() {
		_, tried := w.tried[pod.UID]
		if pod.Labels[LabelPool] != w.r.opts.WarmPool || pod.Labels[LabelPoolState] != PoolStateIdle ||
			pod.DeletionTimestamp != nil || tried || !diagnose.IdleAndReady(pod) || podspec.Fingerprint(pod.Spec) != w.want {
			continue
		}
		if now.Sub(pod.CreationTimestamp.Time) > w.r.opts.WarmPoolMaxIdleAge {
			old = append(old, pod)
			continue
		}
		fresh = append(fresh, pod)
	}
	rand.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
	return fresh, old
}

// claim takes one idle Pod out of the pool, exactly once across every runner. extra adds labels
// and annotations to the claim (a session's).
func (w *warmSource) claim(ctx context.Context, hold time.Duration, extra *metav1.ObjectMeta) (*corev1.Pod, error) {
	ns := w.r.opts.Namespace
	fresh, old := w.candidates()
	for _, pod := range old {
		w.r.background(func() { w.recycle(pod) })
	}
	if len(fresh) == 0 {
		return nil, fmt.Errorf("%w: no idle, ready pod of warm pool %q matches the options in namespace %s", errNotServed, w.r.opts.WarmPool, ns)
	}
	tries := 0
	for _, pod := range fresh {
		if tries == claimAttempts {
			break
		}
		if !w.reserve(pod.UID) {
			continue // another execution of this runner is claiming it
		}
		tries++
		// The deadline counts from the Pod's start: it may run for what it has run, plus the hold,
		// plus one execution's start and run time, plus slack.
		age := time.Since(pod.Status.StartTime.Time)
		deadline := int64(math.Ceil((age + hold + w.r.opts.StartTimeout + w.r.opts.Timeout + w.r.killGrace).Seconds())) + podspec.DeadlineSlack
		labels := map[string]string{LabelPoolState: PoolStateClaimed}
		annotations := map[string]string{
			AnnotationClaimedAt:   time.Now().UTC().Format(time.RFC3339),
			AnnotationClaimedBy:   w.holder,
			AnnotationSafeToEvict: "false",
		}
		if extra != nil {
			maps.Copy(labels, extra.Labels)
			maps.Copy(annotations, extra.Annotations)
		}
		patch, _ := json.Marshal(map[string]any{
			"metadata": map[string]any{
				"resourceVersion": pod.ResourceVersion,
				"labels":          labels,
				"annotations":     annotations,
			},
			"spec": map[string]any{"activeDeadlineSeconds": deadline},
		})
		claimed, err := w.r.client.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		w.unreserve(pod.UID, err == nil)
		switch {
		case err == nil:
			return claimed, nil
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsInvalid(err):
			// Another runner won it (or it changed, or went): try the next one.
			w.mu.Lock()
			w.tried[pod.UID] = time.Now()
			w.mu.Unlock()
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			err = diagnose.APIError(err, "patch", "pods", ns, pod.Name)
			w.r.log.Warn("cannot claim from the warm pool; running cold", "pool", w.r.opts.WarmPool, "error", err)
			return nil, fmt.Errorf("%w: %w", errNotServed, err)
		}
	}
	return nil, fmt.Errorf("%w: other runners claimed the idle pods of warm pool %q first", errNotServed, w.r.opts.WarmPool)
}

// reserve marks a Pod as being claimed by this runner, so that its concurrent executions try
// different Pods instead of racing each other for one.
func (w *warmSource) reserve(uid types.UID) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.claiming[uid] {
		return false
	}
	w.claiming[uid] = true
	return true
}

// unreserve ends a claim attempt; a claimed Pod stays out of the candidates (it is marked tried
// until the informer sees its new label).
func (w *warmSource) unreserve(uid types.UID, claimed bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.claiming, uid)
	if claimed {
		w.tried[uid] = time.Now()
	}
}

// recycle deletes an idle Pod that waited past WarmPoolMaxIdleAge; its ReplicaSet replaces it.
// The delete is guarded by the resourceVersion seen, so a Pod claimed meanwhile is left alone.
func (w *warmSource) recycle(pod *corev1.Pod) {
	ctx, cancel := context.WithTimeout(context.Background(), w.r.opts.CleanupTimeout)
	defer cancel()
	err := w.r.client.CoreV1().Pods(w.r.opts.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &pod.UID, ResourceVersion: &pod.ResourceVersion}})
	if err == nil {
		w.r.log.Debug("recycled an idle pool pod", "pod", pod.Name, "age", time.Since(pod.CreationTimestamp.Time))
	}
}

// keepReady holds Options.WarmPoolReady sandboxes claimed and attached, refilling as they are
// taken and as the pool's Pods become ready, and replacing those held past WarmPoolHold.
func (w *warmSource) keepReady() {
	defer w.stopped.Done()
	tick := time.NewTicker(min(w.r.opts.WarmPoolHold/4, 30*time.Second))
	defer tick.Stop()
	for {
		w.fill()
		select {
		case <-w.stop:
			return
		case <-w.kick:
		case <-w.h.PoolChanged():
		case <-tick.C:
			w.expire()
		}
	}
}

func (w *warmSource) fill() {
	for failures := 0; failures < claimAttempts; {
		w.mu.Lock()
		n := len(w.ready)
		w.mu.Unlock()
		if n >= w.r.opts.WarmPoolReady {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), attachTimeout)
		var tm Timings
		sb, err := w.claimAndAttach(ctx, w.r.opts.WarmPoolHold, nil, &tm)
		cancel()
		if err != nil {
			failures++
			if fresh, _ := w.candidates(); len(fresh) == 0 {
				return
			}
			continue
		}
		w.mu.Lock()
		select {
		case <-w.stop:
			w.mu.Unlock()
			sb.release(w.r.log)
			return
		default:
		}
		w.ready = append(w.ready, sb)
		w.mu.Unlock()
	}
}

// takeReady returns the oldest held sandbox whose stream still works.
func (w *warmSource) takeReady() *warmSandbox {
	defer func() {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}()
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.ready) > 0 {
		sb := w.ready[0]
		w.ready = w.ready[1:]
		if !sb.broken() {
			return sb
		}
		w.r.background(func() { sb.release(w.r.log) })
	}
	return nil
}

// expire releases held sandboxes older than WarmPoolHold, or whose stream broke.
func (w *warmSource) expire() {
	w.mu.Lock()
	var keep, drop []*warmSandbox
	for _, sb := range w.ready {
		if sb.broken() || time.Since(sb.claimed) > w.r.opts.WarmPoolHold {
			drop = append(drop, sb)
		} else {
			keep = append(keep, sb)
		}
	}
	w.ready = keep
	w.mu.Unlock()
	for _, sb := range drop {
		sb.release(w.r.log)
	}
}

// close stops refilling and deletes the held sandboxes.
func (w *warmSource) close() {
	w.mu.Lock()
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.mu.Unlock()
	w.stopped.Wait()
	w.mu.Lock()
	held := w.ready
	w.ready = nil
	w.mu.Unlock()
	var wg sync.WaitGroup
	for _, sb := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sb.release(w.r.log)
		}()
	}
	wg.Wait()
}

// warmSandbox is a claimed pool Pod with an attach stream to its waiting entrypoint.
type warmSandbox struct {
	w        *warmSource
	pod      *corev1.Pod
	t        *track.Tracker
	claimed  time.Time
	attached time.Time

	stdin  *io.PipeWriter
	out    *bufio.Reader
	cancel context.CancelFunc
	done   chan struct{} // closed when the attach stream ended
	err    error         // why, once done

	releaseOnce sync.Once
	left        []string
}

// connect starts the attach stream to a claimed Pod.
func (w *warmSource) connect(pod *corev1.Pod) *warmSandbox {
	t := w.h.Track(track.PodKey(pod.Name))
	t.Seed(pod)
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	sb := &warmSandbox{w: w, pod: pod, t: t, stdin: inW, out: bufio.NewReaderSize(outR, 64<<10),
		cancel: cancel, done: make(chan struct{})}
	go func() {
		err := w.r.attach(ctx, pod.Name, inR, outW)
		if err == nil {
			err = io.EOF
		}
		sb.err = err
		outW.CloseWithError(err)
		// EOF, not an error, for client-go's copy from our stdin: it ends quietly.
		_ = inW.Close()
		close(sb.done)
	}()
	return sb
}

func (sb *warmSandbox) kind() string            { return SandboxWarm }
func (sb *warmSandbox) tracker() *track.Tracker { return sb.t }

func (sb *warmSandbox) broken() bool {
	select {
	case <-sb.done:
		return true
	default:
		return false
	}
}

// ping proves the stream works end to end: the entrypoint answers a P record with one.
func (sb *warmSandbox) ping(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() {
		if _, err := sb.stdin.Write(wire.Ping); err != nil {
			errc <- err
			return
		}
		line, err := sb.out.ReadSlice('\n')
		switch {
		case err != nil:
			errc <- err
		case !wire.TagPing.Starts(line):
			errc <- fmt.Errorf("the sandbox answered %q to a ping", bytes.TrimSpace(line))
		default:
			errc <- nil
		}
	}()
	timer := time.NewTimer(attachTimeout)
	defer timer.Stop()
	select {
	case err := <-errc:
		return err
	case <-timer.C:
		sb.cancel()
		<-errc
		return fmt.Errorf("no answer within %s", attachTimeout)
	case <-ctx.Done():
		sb.cancel()
		<-errc
		return ctx.Err()
	}
}

// open sends the request over stdin; the entrypoint's framed output comes back on stdout.
func (sb *warmSandbox) open(ctx context.Context, x *execution) (io.ReadCloser, error) {
	frames := x.sandboxRequest(&sb.w.r.opts).Encode(false)
	written := make(chan error, 1)
	go func() {
		_, err := sb.stdin.Write(frames)
		written <- err
	}()
	select {
	case err := <-written:
		if err != nil {
			return nil, fmt.Errorf("%w: pod %s/%s: sending the request: %v", ErrSandboxFailed, sb.w.r.opts.Namespace, sb.pod.Name, err)
		}
	case <-ctx.Done():
		sb.cancel()
		return nil, ctx.Err()
	}
	x.mark(&x.timings.Started)
	go func() {
		select {
		case <-ctx.Done():
			sb.cancel()
		case <-sb.done:
		}
	}()
	// Name the execution on its Pod, as a cold one's objects are named, for `kubectl get -l` and
	// audit; off the critical path (the Pod may already be gone when it lands).
	sb.w.r.background(func() { sb.label(x.req.ExecutionID) })
	return io.NopCloser(sb.out), nil
}

func (sb *warmSandbox) label(id string) {
	r := sb.w.r
	ctx, cancel := context.WithTimeout(context.Background(), r.opts.CleanupTimeout)
	defer cancel()
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{LabelExecutionID: id}}})
	_, err := r.client.CoreV1().Pods(r.opts.Namespace).Patch(ctx, sb.pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		r.log.Debug("could not label the warm sandbox with its execution", "pod", sb.pod.Name, "error", err)
	}
}

// reopen reads the container's log: the entrypoint's stdout goes there too. A container that
// was restarted (after an OOM kill) left its output in the previous log.
func (sb *warmSandbox) reopen(ctx context.Context) io.ReadCloser {
	pod, _, _, _ := sb.t.Snapshot()
	previous := false
	for _, cs := range pod.Status.ContainerStatuses {
		previous = previous || (cs.Name == podspec.ContainerName && cs.RestartCount > 0)
	}
	stream, err := sb.w.r.openLogs(ctx, sb.pod.Name, &corev1.PodLogOptions{Container: podspec.ContainerName, Previous: previous,
		LimitBytes: ptr.To(int64(wire.MaxLogBytes + 1<<20))})
	if err != nil {
		return nil
	}
	return stream
}

// release deletes the Pod (a warm sandbox serves once), then waits for the attach stream to end
// with its container: a stream cut from our side would be logged by client-go as an error.
func (sb *warmSandbox) release(log *slog.Logger) []string {
	sb.releaseOnce.Do(func() {
		_ = sb.stdin.Close()
		r, name := sb.w.r, sb.pod.Name
		sb.left = deleteAll(log, r.opts.CleanupTimeout, r.podDeletion(sb.pod))
		select {
		case <-sb.done:
		case <-time.After(streamCloseGrace):
		}
		sb.cancel()
		sb.w.h.Untrack(track.PodKey(name), sb.t)
	})
	return sb.left
}

// podDeletion deletes exactly pod, not a later Pod of the same name.
func (r *Runner) podDeletion(pod *corev1.Pod) deletion {
	ns, name, uid := r.opts.Namespace, pod.Name, pod.UID
	return deletion{"pod/" + name, func(ctx context.Context) error {
		err := r.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if apierrors.IsConflict(err) {
			return nil // a different Pod by that name: ours is gone
		}
		return err
	}}
}
