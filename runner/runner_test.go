package runner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

func TestExecuteReturnsStreamsExitCodeAndFiles(t *testing.T) {
	t.Parallel()
	binary := []byte{0, 1, 2, 0xff, 0xfe}
	log := new(framed).out("hello ✓\n").err("warning\n").out("second\n").
		file("plots/a.bin", binary).end(endRecord{ExitCode: 3, StartedAt: 100, FinishedAt: 100.5, MaxRSSKiB: 2048})
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("node-1"), running}, log: log})
	r := fc.runner(Options{})

	res, err := r.Execute(context.Background(), Request{Code: "print(1)", Files: map[string][]byte{"in/data.csv": []byte("a,b")}, ExecutionID: "ok1"})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if got := string(res.Stdout); got != "hello ✓\nsecond\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := string(res.Stderr); got != "warning\n" {
		t.Errorf("stderr = %q", got)
	}
	if res.ExitCode != 3 || res.TimedOut || res.OOMKilled {
		t.Errorf("exit=%d timedOut=%v oom=%v, want 3 false false", res.ExitCode, res.TimedOut, res.OOMKilled)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "plots/a.bin" || string(res.Files[0].Data) != string(binary) {
		t.Errorf("files = %+v", res.Files)
	}
	if res.PodName != "gkexec-ok1-abcde" || res.NodeName != "node-1" {
		t.Errorf("pod %q node %q", res.PodName, res.NodeName)
	}
	if res.CodeDuration != 500*time.Millisecond || res.MaxRSSBytes != 2048*1024 {
		t.Errorf("code duration %v rss %d", res.CodeDuration, res.MaxRSSBytes)
	}
	tm := res.Timings
	order := []time.Time{tm.Requested, tm.Admitted, tm.Created, tm.Scheduled, tm.Started, tm.Finished, tm.LogsRead, tm.CleanedUp}
	for i := 1; i < len(order); i++ {
		if order[i].IsZero() || order[i].Before(order[i-1]) {
			t.Errorf("timings out of order at %s: %+v", ColdPhaseNames[i-1], tm)
		}
	}
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	_ = r.Close()
	if !hasAction(fc.client.Actions(), "patch", "configmaps") {
		t.Error("the ConfigMap was never patched to be owned by its Job")
	}
}

func hasAction(actions []k8stesting.Action, verb, resource string) bool {
	for _, a := range actions {
		if a.GetVerb() == verb && a.GetResource().Resource == resource {
			return true
		}
	}
	return false
}

func TestExecuteFailurePathsCleanUp(t *testing.T) {
	t.Parallel()
	forbidden := func(verb, resource string) func(*fakeCluster) {
		return func(fc *fakeCluster) {
			fc.client.PrependReactor(verb, resource, func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: resource}, "x", errors.New("denied"))
			})
			// The identity has a Role in the namespace, only not this verb: RBAC, not a missing
			// namespace (see TestClarifyForbidden).
			fc.client.PrependReactor("create", "selfsubjectrulesreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				out := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectRulesReview).DeepCopy()
				out.Status.ResourceRules = []authorizationv1.ResourceRule{{Verbs: []string{"list"}, Resources: []string{"pods"}, APIGroups: []string{""}}}
				return true, out, nil
			})
		}
	}
	cases := []struct {
		name    string
		sc      scenario
		opts    Options
		setup   func(*fakeCluster)
		ctx     func() (context.Context, context.CancelFunc)
		want    error
		message string
		check   func(*testing.T, Result)
	}{
		{
			name: "configmap create forbidden", setup: forbidden("create", "configmaps"),
			want: ErrForbidden, message: `verb "create" on "configmaps"`,
		},
		{
			name: "job create forbidden removes the configmap", setup: forbidden("create", "jobs"),
			want: ErrForbidden, message: `verb "create" on "jobs"`,
		},
		{
			name: "watching pods forbidden", setup: forbidden("list", "pods"),
			want: ErrForbidden, message: `verb "list" on "pods"`,
		},
		{
			name: "namespace missing",
			setup: func(fc *fakeCluster) {
				fc.client.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "sandbox")
				})
			},
			want: ErrNamespaceNotFound, message: `namespace "sandbox" does not exist`,
		},
		{
			name: "image cannot be pulled",
			sc:   scenario{steps: []func(*corev1.Pod){scheduledOn("n"), waiting("ErrImageNeverPull", "not present")}},
			want: ErrImagePull, message: "pull policy is Never",
		},
		{
			name: "no node matches the selector",
			sc:   scenario{steps: []func(*corev1.Pod){unschedulable("0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.")}},
			opts: Options{UnschedulableGrace: 100 * time.Millisecond},
			want: ErrUnschedulable, message: "sandbox.gke.io/runtime=gvisor",
		},
		{
			name: "quota exceeded",
			sc: scenario{noPod: true, events: []corev1.Event{{Type: corev1.EventTypeWarning, Reason: "FailedCreate",
				InvolvedObject: corev1.ObjectReference{Kind: "Job"},
				Message:        `Error creating: pods "x" is forbidden: exceeded quota: sandbox, requested: pods=1, used: pods=10, limited: pods=10`}}},
			want: ErrQuotaExceeded, message: "ResourceQuota",
		},
		{
			name: "runtime class missing",
			sc: scenario{noPod: true, events: []corev1.Event{{Type: corev1.EventTypeWarning, Reason: "FailedCreate",
				InvolvedObject: corev1.ObjectReference{Kind: "Job"},
				Message:        `Error creating: pods "x" is forbidden: pod rejected: RuntimeClass "gvisor" not found`}}},
			want: ErrRuntimeClass, message: "GKE Sandbox",
		},
		{
			name: "node has no runtime handler",
			sc: scenario{steps: []func(*corev1.Pod){scheduledOn("n")}, events: []corev1.Event{{Type: corev1.EventTypeWarning,
				Reason: "FailedCreatePodSandBox", InvolvedObject: corev1.ObjectReference{Kind: "Pod"},
				Message: `Failed to create pod sandbox: rpc error: no runtime for "gvisor" is configured`}}},
			want: ErrRuntimeClass, message: "no container runtime handler",
		},
		{
			name: "never starts",
			sc:   scenario{steps: []func(*corev1.Pod){scheduledOn("n"), waiting("ContainerCreating", "")}},
			opts: Options{StartTimeout: 200 * time.Millisecond},
			want: ErrTimeout, message: "did not start within",
		},
		{
			name: "code runs past the timeout",
			sc:   scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}},
			opts: Options{Timeout: 100 * time.Millisecond},
			want: ErrTimeout, message: "ran past",
			check: func(t *testing.T, r Result) {
				if !r.TimedOut || r.ExitCode != 137 {
					t.Errorf("timedOut=%v exit=%d, want true 137", r.TimedOut, r.ExitCode)
				}
			},
		},
		{
			name: "sandbox reports its own timeout with the output so far",
			sc: scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running},
				log: new(framed).out("partial").end(endRecord{ExitCode: 137, Signal: 9, TimedOut: true})},
			want: ErrTimeout,
			check: func(t *testing.T, r Result) {
				if !r.TimedOut || string(r.Stdout) != "partial" {
					t.Errorf("timedOut=%v stdout=%q", r.TimedOut, r.Stdout)
				}
			},
		},
		{
			name: "caller cancels",
			sc:   scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}},
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			want: ErrCanceled,
		},
		{
			name: "out of memory",
			sc: scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running, terminatedWith("OOMKilled", 137)},
				log: new(framed).out("allocating\n").Bytes()},
			check: func(t *testing.T, r Result) {
				if !r.OOMKilled || r.ExitCode != 137 || string(r.Stdout) != "allocating\n" {
					t.Errorf("oom=%v exit=%d stdout=%q", r.OOMKilled, r.ExitCode, r.Stdout)
				}
			},
		},
		{
			name: "log ends without a result",
			sc: scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running, terminatedWith("Error", 1)},
				log: []byte("Traceback: python3 not happy\n")},
			want: ErrSandboxFailed, message: "without a result",
			check: func(t *testing.T, r Result) {
				if !strings.Contains(string(r.Stderr), "python3 not happy") {
					t.Errorf("stderr = %q, want the unframed output kept", r.Stderr)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := newFakeCluster(t, tc.sc)
			if tc.setup != nil {
				tc.setup(fc)
			}
			r := fc.runner(tc.opts)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			if tc.ctx != nil {
				ctx, cancel = tc.ctx()
			}
			defer cancel()
			res, err := r.Execute(ctx, Request{Code: "print(1)"})
			if tc.want == nil && err != nil {
				t.Fatalf("Execute: unexpected error %v", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Execute error = %v, want %v", err, tc.want)
			}
			if tc.message != "" && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not mention %q", err, tc.message)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
			if left := fc.leftovers(); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestExecuteRejectsBadRequestsBeforeCreatingAnything(t *testing.T) {
	t.Parallel()
	cases := map[string]Request{
		"empty code":            {Code: "  \n"},
		"absolute input":        {Code: "x", Files: map[string][]byte{"/etc/passwd": nil}},
		"escaping input":        {Code: "x", Files: map[string][]byte{"../x": nil}},
		"unclean input":         {Code: "x", Files: map[string][]byte{"a//b": nil}},
		"reserved input":        {Code: "x", Files: map[string][]byte{"..data/x": nil}},
		"input named output":    {Code: "x", Files: map[string][]byte{"output": nil}},
		"input under output/":   {Code: "x", Files: map[string][]byte{"output/in.csv": nil}},
		"bad execution ID":      {Code: "x", ExecutionID: "Not_A_Label"},
		"long execution ID":     {Code: "x", ExecutionID: strings.Repeat("a", 41)},
		"larger than a config":  {Code: strings.Repeat("x", podspec.MaxConfigMapBytes)},
		"timeout above ceiling": {Code: "x", Timeout: DefaultTimeout + time.Second},
		"negative timeout":      {Code: "x", Timeout: -time.Second},
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fc := newFakeCluster(t, scenario{})
			r := fc.runner(Options{})
			_, err := r.Execute(context.Background(), req)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error = %v, want ErrInvalidRequest", err)
			}
			if name == "larger than a config" && !errors.Is(err, ErrRequestTooLarge) {
				t.Errorf("error = %v, want ErrRequestTooLarge", err)
			}
			for _, a := range fc.client.Actions() {
				if a.GetVerb() == "create" {
					t.Errorf("created %s before rejecting the request", a.GetResource().Resource)
				}
			}
			if left := fc.leftovers(); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

func TestConcurrentExecutionsShareOneSetOfWatches(t *testing.T) {
	t.Parallel()
	const n = 20
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	r := fc.runner(Options{})
	// Each execution prints its own ID, so crossed wires would show.
	r.env.OpenLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (ioReadCloser, error) {
		id := strings.TrimSuffix(strings.TrimPrefix(pod, "gkexec-"), "-abcde")
		return nopCloser(new(framed).out(id).end(endRecord{})), nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%02d", i)
			res, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: id})
			if err != nil {
				errs <- err
				return
			}
			if string(res.Stdout) != id {
				errs <- fmt.Errorf("execution %s got stdout %q", id, res.Stdout)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	watches := 0
	for _, a := range fc.client.Actions() {
		if a.GetVerb() == "watch" && a.GetResource().Resource != "jobs" {
			watches++
		}
	}
	if watches != 3 {
		t.Errorf("%d watches for %d executions, want 3 shared ones", watches, n)
	}
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestBrokenLogStreamIsReadAgainOnceTheContainerEnded(t *testing.T) {
	t.Parallel()
	full := new(framed).out("first ").out("second").end(endRecord{ExitCode: 0})
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running, terminatedWith("Completed", 0)}})
	r := fc.runner(Options{})
	var mu sync.Mutex
	calls := 0
	r.env.OpenLogs = func(ctx context.Context, pod string, o *corev1.PodLogOptions) (ioReadCloser, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if o.Follow {
			return nopCloser(new(framed).out("first ").Bytes()), nil // the stream breaks here
		}
		return nopCloser(full), nil
	}
	var streamed chunks
	res, err := r.Execute(context.Background(), Request{Code: "x", Output: streamed.add})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if string(res.Stdout) != "first second" || calls < 2 {
		t.Errorf("stdout %q after %d log requests, want the whole output read again", res.Stdout, calls)
	}
	if got := string(streamed.stream[Stdout]); got != "first second" || len(streamed.order) != 2 {
		t.Errorf("streamed %q in %d chunks, want each chunk once: \"first \", then \"second\" from the re-read", got, len(streamed.order))
	}
}

func TestSameExecutionIDTwiceAtOnceLeavesTheFirstIntact(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}})
	r := fc.runner(Options{})
	reading, release := make(chan struct{}), make(chan struct{})
	r.env.OpenLogs = func(ctx context.Context, pod string, _ *corev1.PodLogOptions) (ioReadCloser, error) {
		close(reading) // called once: the Pod started, so its ConfigMap and Job exist
		<-release
		return nopCloser(new(framed).out("first").end(endRecord{})), nil
	}
	first := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = r.Execute(context.Background(), Request{Code: "x", ExecutionID: "same"})
		first <- err
	}()
	// Wait until the first execution is reading its output, then try the same ID.
	select {
	case <-reading:
	case err := <-first:
		t.Fatalf("the first execution ended before it read its output: %v", err)
	}
	if _, err := r.Execute(context.Background(), Request{Code: "x", ExecutionID: "same"}); !errors.Is(err, ErrInvalidRequest) ||
		!strings.Contains(err.Error(), "already running on this runner") {
		t.Errorf("second execution: %v, want ErrInvalidRequest: already running", err)
	}
	if left := fc.leftovers(); len(left) != 2 {
		t.Errorf("after the refused second execution the first one's objects are %v, want its ConfigMap and Job", left)
	}
	close(release)
	if err := <-first; err != nil || string(res.Stdout) != "first" {
		t.Errorf("first execution: %v, stdout %q", err, res.Stdout)
	}
}

func TestQuotaConflictOnCreateIsRetried(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running},
		log: new(framed).out("ok").end(endRecord{})})
	conflicts := 2
	var mu sync.Mutex
	fc.client.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(schema.GroupResource{Resource: "resourcequotas"}, "gkexec-quota", errors.New("the object has been modified"))
	})
	r := fc.runner(Options{})
	res, err := r.Execute(context.Background(), Request{Code: "x"})
	if err != nil || string(res.Stdout) != "ok" {
		t.Fatalf("Execute: %v, stdout %q; want the conflicts retried", err, res.Stdout)
	}
}

// TestMissingNamespaceAsALeastPrivilegeAgent: the API server refuses an identity before it looks
// for the namespace, so a typo in --namespace used to read as missing RBAC (exit 125).
func TestMissingNamespaceAsALeastPrivilegeAgent(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{})
	fc.client.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "x", errors.New("denied"))
	})
	// The fake's review answers with no rules at all: nothing is granted in that namespace.
	r := fc.runner(Options{})
	_, err := r.Execute(context.Background(), Request{Code: "x"})
	if !errors.Is(err, ErrNamespaceNotFound) {
		t.Errorf("Execute: %v, want ErrNamespaceNotFound", err)
	}
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestQuotaConflictWhileTheJobCreatesItsPodIsNotFatal: at concurrency the Job controller's Pod
// create races on the ResourceQuota's usage and is refused with a Conflict; the controller tries
// again by itself, so the execution must wait for the Pod instead of failing.
func TestQuotaConflictWhileTheJobCreatesItsPodIsNotFatal(t *testing.T) {
	t.Parallel()
	conflict := corev1.Event{Type: corev1.EventTypeWarning, Reason: "FailedCreate",
		InvolvedObject: corev1.ObjectReference{Kind: "Job"},
		Message: `Error creating: Operation cannot be fulfilled on resourcequotas "gkexec-quota": ` +
			`the object has been modified; please apply your changes to the latest version and try again`}
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running},
		log: new(framed).out("ok").end(endRecord{}), events: []corev1.Event{conflict}})
	r := fc.runner(Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := r.Execute(ctx, Request{Code: "x"})
	if err != nil || string(res.Stdout) != "ok" {
		t.Fatalf("Execute: %v, stdout %q; want the Job controller's retry awaited", err, res.Stdout)
	}
}

// TestAnExecutionIDUsedAgainFollowsItsOwnPod: an execution ID may be used again at once (a client
// retrying with the same ID); the previous execution's Pod, deleted with its Job, still carries the
// ID, and the watch may report it late. Its events must not be taken for the new execution's Pod:
// its deletion is not the new Pod's, its output not the new execution's.
func TestAnExecutionIDUsedAgainFollowsItsOwnPod(t *testing.T) {
	t.Parallel()
	fc := newFakeCluster(t, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running},
		log: new(framed).out("ran\n").end(endRecord{})})
	r := fc.runner(Options{})
	var (
		mu      sync.Mutex
		release func()
		jobs    int
	)
	// The second Job's creation lets the watch deliver what it held: the first Pod's deletion
	// reaches the runner while the second execution waits for its Pod.
	fc.client.PrependReactor("create", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if jobs++; jobs == 2 && release != nil {
			release()
		}
		return false, nil, nil
	})
	ctx := context.Background()
	first, err := r.Execute(ctx, Request{Code: "print(1)", ExecutionID: "again", Output: func(Stream, []byte) {
		// The first Pod runs, as the runner saw: hold what the watch reports of it from now on.
		mu.Lock()
		defer mu.Unlock()
		if release == nil {
			release = fc.HoldPodEvents()
		}
	}})
	if err != nil {
		t.Fatalf("first: %v", err)
	}
	second, err := r.Execute(ctx, Request{Code: "print(1)", ExecutionID: "again"})
	if err != nil {
		t.Fatalf("the ID used again: %v", err)
	}
	if second.PodName == first.PodName || string(second.Stdout) != "ran\n" {
		t.Errorf("the second execution ran in %s (the first in %s), stdout %q: want its own Pod", second.PodName, first.PodName, second.Stdout)
	}
}
