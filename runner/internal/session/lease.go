package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/runner/internal/diagnose"
	"github.com/gkexec/gkexec/runner/internal/podspec"
	"github.com/gkexec/gkexec/runner/internal/track"
)

// Lease is one runner process's hold on a session's stdin. A process writes a request only while
// it holds the lease; another waits for it to be given back (BusyWait), then is refused — unless
// the sandbox says nothing has run for TakeoverIdle: then the holder is gone (killed mid-linger,
// or its give-back failed), and the lease is taken over. The sandbox, not a timestamp, decides.
type Lease struct {
	Client    kubernetes.Interface
	Namespace string
	Session   string
	// Holder names this runner process.
	Holder string
	Hub    *track.Hub
	Log    *slog.Logger
	// BusyWait bounds the wait for another process's lease.
	BusyWait time.Duration
	// CleanupTimeout bounds giving the lease back.
	CleanupTimeout time.Duration
	// TakeoverIdle is how long the sandbox must have run nothing before a lease another process
	// holds is taken over: longer than a holder keeps its lease after an execution (its linger),
	// so a live holder's next execution is never overtaken.
	TakeoverIdle time.Duration
	// OnPod is handed each version of the Pod the lease's patches produce.
	OnPod func(*corev1.Pod)
	// OnGone is told that the session's Pod is gone.
	OnGone func(why string)
	// Probe asks the session's sandbox what runs in it (an execution ID, "" for none) and how long
	// it has been idle: a lease another process holds is taken over when its sandbox says nothing
	// has run for a while, however far its holder wrote its end.
	Probe func(ctx context.Context) (running string, idle time.Duration, err error)

	mu sync.Mutex
	// held is the Pod as this process's lease patch left it, while it holds the lease, which runs
	// until heldUntil; linger gives it back after an execution unless another one of this process
	// takes it on first.
	held      *corev1.Pod
	heldUntil time.Time
	linger    *time.Timer
	// lingerUntil ends the window in which this process's next execution may use the held lease
	// without an API call; past it, a late give-back never lets it write on a lease another
	// process has taken over meanwhile (its guarded patch meets the change instead).
	lingerUntil time.Time
}

// Take takes the lease for execution id, which may run for runFor from now: no other runner
// process may write to the session's stdin until it is given back or expires (runFor and slack
// from now). pod is the session's Pod as last seen. A lease this process still holds for long
// enough costs no API call.
func (l *Lease) Take(ctx context.Context, pod *corev1.Pod, id string, runFor time.Duration) (*corev1.Pod, error) {
	ns := l.Namespace
	need := time.Now().Add(runFor)
	l.mu.Lock()
	l.stopLinger()
	held, heldUntil, lingerUntil := l.held, l.heldUntil, l.lingerUntil
	l.mu.Unlock()
	if held != nil {
		if !heldUntil.Before(need) && time.Now().Before(lingerUntil) {
			return held, nil // still ours, for long enough: no API call
		}
		pod = held
	}
	waitUntil := time.Now().Add(l.BusyWait)
	for conflicts := 0; ; {
		holder, exec, until := ParseLease(pod.Annotations[podspec.AnnotationSessionLease])
		if holder != "" && holder != l.Holder && time.Now().Before(until) {
			if gone, askAgain := l.holderGone(ctx); !gone {
				if time.Now().Before(waitUntil) {
					// Another process holds it: its execution may be about to end, and a live
					// holder gives the lease back (the watch shows the Pod change). A dead one
					// changes nothing: ask the sandbox again once it may have been idle long enough.
					fresh, err := l.awaitChange(ctx, pod, min(time.Until(waitUntil), askAgain))
					switch {
					case err == nil:
						pod = fresh
						continue
					case ctx.Err() != nil:
						return nil, ctx.Err()
					case errors.Is(err, diagnose.ErrSessionEnded):
						return nil, err
					case time.Now().Before(waitUntil):
						continue
					}
				}
				return nil, fmt.Errorf("%w: session %s is running execution %s for %s until %s at the latest; try again when it is done",
					diagnose.ErrSessionBusy, l.Session, exec, holder, until.Format(time.RFC3339))
			}
		}
		until = time.Now().Add(runFor + podspec.DeadlineSlack*time.Second)
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": pod.ResourceVersion,
			"labels":          map[string]string{podspec.LabelExecutionID: id},
			"annotations":     map[string]string{podspec.AnnotationSessionLease: fmt.Sprintf("%s %s %s", l.Holder, id, until.UTC().Format(time.RFC3339))},
		}})
		leased, err := l.Client.CoreV1().Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		switch {
		case err == nil:
			l.OnPod(leased)
			l.mu.Lock()
			l.held, l.heldUntil = leased, until
			l.mu.Unlock()
			return leased, nil
		case apierrors.IsConflict(err) && conflicts < 3:
			conflicts++
			// Someone changed the Pod since this runner saw it (another process, or this one's
			// own give-back the watch has not shown yet): look again, at the API server's copy.
			fresh, gerr := l.current(ctx, pod)
			if gerr != nil {
				return nil, gerr
			}
			pod = fresh
		case apierrors.IsNotFound(err):
			l.OnGone("its sandbox is gone")
			return nil, fmt.Errorf("%w: session %s: its sandbox pod %s/%s is gone", diagnose.ErrSessionEnded, l.Session, ns, pod.Name)
		case ctx.Err() != nil:
			return nil, ctx.Err()
		default:
			return nil, diagnose.APIError(err, "patch", "pods", ns, pod.Name)
		}
	}
}

// holderGone asks the sandbox whether the lease's holder is using the session: not when nothing
// has run in it for TakeoverIdle. If it may be, askAgain says when the answer could change: when
// the sandbox will have been idle long enough, or, while something runs (a dead holder's last
// execution ends unseen by the watch), a TakeoverIdle later.
func (l *Lease) holderGone(ctx context.Context) (gone bool, askAgain time.Duration) {
	if l.Probe == nil {
		return false, time.Hour
	}
	running, idle, err := l.Probe(ctx)
	switch {
	case err != nil:
		l.Log.Debug("could not ask the session's sandbox what runs in it", "session", l.Session, "error", err)
		return false, l.TakeoverIdle
	case running != "":
		return false, l.TakeoverIdle
	case idle >= l.TakeoverIdle:
		return true, 0
	}
	return false, l.TakeoverIdle - idle + 50*time.Millisecond
}

// awaitChange waits for the session's Pod to change from was: another resourceVersion, or another
// lease. It watches the shared watch's copy of that very Pod (its name and UID); when the watch does
// not show it live, the API server decides whether it is gone (track.Hub.SessionPodOf).
func (l *Lease) awaitChange(ctx context.Context, was *corev1.Pod, within time.Duration) (*corev1.Pod, error) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		changed := l.Hub.PodsChanged() // before looking: a change after the look wakes the wait
		pod, err := l.Hub.SessionPodOf(ctx, l.Session, was)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, fmt.Errorf("%w: session %s: its pod did not change within %s: %w", diagnose.ErrCluster, l.Session, within, ctx.Err())
		case err != nil:
			return nil, err
		case pod == nil:
			return nil, l.gone(was)
		}
		if pod.ResourceVersion != was.ResourceVersion || pod.Annotations[podspec.AnnotationSessionLease] != was.Annotations[podspec.AnnotationSessionLease] {
			return pod, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: session %s: the watch did not show its pod change within %s: %w", diagnose.ErrCluster, l.Session, within, ctx.Err())
		case <-changed:
		}
	}
}

// current is the session's Pod as the API server has it now; ErrSessionEnded (and OnGone) when it
// has no live Pod of was's name and UID.
func (l *Lease) current(ctx context.Context, was *corev1.Pod) (*corev1.Pod, error) {
	got, err := l.Hub.SessionPodOfNow(ctx, l.Session, was)
	switch {
	case err != nil:
		return nil, err
	case got == nil:
		return nil, l.gone(was)
	}
	return got, nil
}

// gone tells the session its Pod is gone, and says so.
func (l *Lease) gone(was *corev1.Pod) error {
	l.OnGone("its sandbox is gone")
	return fmt.Errorf("%w: session %s: its sandbox pod %s/%s is gone", diagnose.ErrSessionEnded, l.Session, l.Namespace, was.Name)
}

// Linger calls giveBack after d, unless Take, GiveBack or Drop comes first: a process keeps the
// lease a moment after an execution, for its next one.
func (l *Lease) Linger(d time.Duration, giveBack func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLinger()
	l.lingerUntil = time.Now().Add(d)
	l.linger = time.AfterFunc(d, giveBack)
}

func (l *Lease) stopLinger() {
	if l.linger != nil {
		l.linger.Stop()
	}
}

// GiveBack gives a held lease back and records the session's last use, unless someone else
// changed the Pod since (a lease that expired and was taken is theirs).
func (l *Lease) GiveBack() {
	l.mu.Lock()
	leased := l.held
	l.held = nil
	l.stopLinger()
	l.mu.Unlock()
	if leased == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.CleanupTimeout)
	defer cancel()
	ours := leased.Annotations[podspec.AnnotationSessionLease]
	for attempt := 0; ; attempt++ {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": leased.ResourceVersion,
			"annotations": map[string]any{
				podspec.AnnotationSessionLease:    nil,
				podspec.AnnotationSessionLastUsed: time.Now().UTC().Format(time.RFC3339),
			},
		}})
		pod, err := l.Client.CoreV1().Pods(l.Namespace).Patch(ctx, leased.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			l.OnPod(pod)
			return
		}
		if apierrors.IsConflict(err) && attempt < 3 {
			// Something else wrote to the Pod (its status, a controller): if the lease is still
			// this one, give it back from the API server's newer version.
			if fresh, gerr := l.current(ctx, leased); gerr == nil && fresh.Annotations[podspec.AnnotationSessionLease] == ours {
				leased = fresh
				continue
			}
		}
		l.Log.Debug("could not give the session lease back; it expires by itself", "session", l.Session, "error", err)
		return
	}
}

// Drop forgets the lease without an API call: the session is over.
func (l *Lease) Drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLinger()
	l.held = nil
}

// Newer reports whether a is a later version of the same Pod than b. resourceVersions are
// opaque; the watch's copy is newer unless it is the one this runner's own patch replaced.
func Newer(a, b *corev1.Pod) bool {
	if a.ResourceVersion == b.ResourceVersion {
		return false
	}
	at, bt := a.Annotations[podspec.AnnotationSessionLease], b.Annotations[podspec.AnnotationSessionLease]
	return at == bt || a.Annotations[podspec.AnnotationSessionLastUsed] >= b.Annotations[podspec.AnnotationSessionLastUsed]
}

// ParseLease reads the lease annotation: "<holder> <execution> <until>".
func ParseLease(v string) (holder, execution string, until time.Time) {
	f := strings.Fields(v)
	if len(f) != 3 {
		return "", "", time.Time{}
	}
	until, err := time.Parse(time.RFC3339, f[2])
	if err != nil {
		return "", "", time.Time{}
	}
	return f[0], f[1], until
}
