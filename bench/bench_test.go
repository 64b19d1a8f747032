package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner"
)

func TestSummariseUsesNearestRank(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := summarise(ds, 10*time.Second)
	want := Series{Count: 100, Min: Seconds(time.Millisecond), P50: Seconds(50 * time.Millisecond), P95: Seconds(95 * time.Millisecond),
		P99: Seconds(99 * time.Millisecond), Max: Seconds(100 * time.Millisecond), Mean: Seconds(50500 * time.Microsecond),
		Wall: Seconds(10 * time.Second), Throughput: 10}
	if s != want {
		t.Errorf("summarise = %+v\nwant        %+v", s, want)
	}
	if got := summarise(nil, time.Second); got.Count != 0 || got.P50 != 0 {
		t.Errorf("summarise(nothing) = %+v, want zeros", got)
	}
}

// floorKubelet plays the kubelet for the floor's bare Pods on the fake cluster: once the floor
// watches a Pod, its container runs, then the Pod succeeds.
func floorKubelet(t *testing.T, fc *fakecluster.Cluster) {
	t.Helper()
	var watched sync.Map // pod name -> chan struct{}
	seen := func(name string) chan struct{} {
		ch, _ := watched.LoadOrStore(name, make(chan struct{}))
		return ch.(chan struct{})
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: "pods"}
	var generated atomic.Int64
	fc.Client.PrependReactor("create", "pods", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if p := action.(k8stesting.CreateAction).GetObject().(*corev1.Pod); p.Name == "" && p.GenerateName != "" {
			p.Name = fmt.Sprintf("%s%d", p.GenerateName, generated.Add(1)) // the fake does not generate names
		}
		return false, nil, nil
	})
	fc.Client.PrependWatchReactor("pods", func(action k8stesting.Action) (bool, watch.Interface, error) {
		name, ok := action.(k8stesting.WatchActionImpl).WatchRestrictions.Fields.RequiresExactMatch("metadata.name")
		if !ok {
			return false, nil, nil // the runner's own watch: fakecluster's reactor
		}
		w, err := fc.Client.Tracker().Watch(gvr, action.GetNamespace())
		close(seen(name))
		return true, w, err
	})
	w, err := fc.Client.Tracker().Watch(gvr, fakecluster.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	go func() {
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type != watch.Added || p.Labels["app.kubernetes.io/name"] != "gkexec-bench-floor" {
				continue
			}
			go func() {
				<-seen(p.Name)
				ctx := context.Background()
				p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "floor", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
				p.Status.Phase = corev1.PodRunning
				p, err := fc.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
				if err != nil {
					return
				}
				time.Sleep(20 * time.Millisecond)
				p.Status.Phase = corev1.PodSucceeded
				_, _ = fc.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{})
			}()
		}
	}()
}

func TestRunMeasuresResultFirstOutputAndTheFloor(t *testing.T) {
	t.Parallel()
	log := new(fakecluster.Log).Out("1\n").End(wire.End{ExitCode: 0, StartedAt: fakecluster.Now(), FinishedAt: fakecluster.Now()})
	fc := fakecluster.New(t, fakecluster.Scenario{Steps: []func(*corev1.Pod){fakecluster.ScheduledOn("n"), fakecluster.Running}, Log: log})
	floorKubelet(t, fc)
	var progress []int
	rep, err := Run(context.Background(), Config{
		Executions: 6, Concurrency: 2, Code: FirstOutputCode, Expect: "1", Floor: true, FirstOutput: true,
		Options:  ModeCold.Options(runner.Options{Client: fc.Client, Namespace: fakecluster.Namespace}),
		Progress: func(done, _ int) { progress = append(progress, done) },
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Failures != 0 || rep.Runner.Count != 6 || rep.Warm != 0 {
		t.Errorf("failures %d, measured %d, warm %d; want 0, 6, 0 (%v)", rep.Failures, rep.Runner.Count, rep.Warm, rep.FirstErrors)
	}
	if len(progress) != 6 || progress[5] != 6 {
		t.Errorf("progress reported %v, want once per execution up to 6", progress)
	}
	if rep.FirstOutput == nil || rep.FirstOutput.Count != 6 || rep.FirstOutput.P50 <= 0 || rep.FirstOutput.Max > rep.Runner.Max {
		t.Errorf("first output = %+v, want 6 times, each within its execution (runner: %+v)", rep.FirstOutput, rep.Runner)
	}
	if rep.Floor == nil || rep.Floor.Count != 6 || rep.FloorFailures != 0 {
		t.Fatalf("floor = %+v, failures %d %v; want 6 bare Pods measured", rep.Floor, rep.FloorFailures, rep.FloorErrors)
	}
	if rep.FloorFirstOutput == nil || rep.FloorFirstOutput.Count != 6 || rep.FloorFirstOutput.Max > rep.Floor.Max {
		t.Errorf("floor's first output = %+v, want 6, each within its Pod's run (floor: %+v)", rep.FloorFirstOutput, rep.Floor)
	}
	if rep.RatioP50 <= 0 || rep.RatioFirstOutputP50 <= 0 || rep.RatioThroughput <= 0 {
		t.Errorf("ratios p50 %v, first output %v, throughput %v: want all set against the floor", rep.RatioP50, rep.RatioFirstOutputP50, rep.RatioThroughput)
	}
	pods, _ := fc.Client.CoreV1().Pods(fakecluster.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=gkexec-bench-floor"})
	if len(pods.Items) != 0 {
		t.Errorf("%d floor Pods left behind", len(pods.Items))
	}
}

func TestRunCountsAWrongResultAsAFailure(t *testing.T) {
	t.Parallel()
	log := new(fakecluster.Log).Out("2\n").End(wire.End{ExitCode: 0, StartedAt: fakecluster.Now(), FinishedAt: fakecluster.Now()})
	fc := fakecluster.New(t, fakecluster.Scenario{Steps: []func(*corev1.Pod){fakecluster.ScheduledOn("n"), fakecluster.Running}, Log: log})
	rep, err := Run(context.Background(), Config{
		Executions: 3, Concurrency: 3, Code: "print(2)", Expect: "1",
		Options: ModeCold.Options(runner.Options{Client: fc.Client, Namespace: fakecluster.Namespace}),
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rep.Failures != 3 || rep.Runner.Count != 0 || len(rep.FirstErrors) != 1 || !strings.Contains(rep.FirstErrors[0], `does not contain "1"`) {
		t.Errorf("failures %d, measured %d, errors %q; want 3 failures named once", rep.Failures, rep.Runner.Count, rep.FirstErrors)
	}
}

// TestReportKeepsItsFields: the JSON report is extended, never reshaped: scripts (hack/bench.sh,
// hack/load.sh, before/after comparisons) read modes.<mode>.runner.p50 and .p95, .floor, order.
func TestReportKeepsItsFields(t *testing.T) {
	t.Parallel()
	floor := &Series{Count: 2, P50: Seconds(2 * time.Second), P95: Seconds(3 * time.Second), Throughput: 1}
	first := &Series{Count: 2, P50: Seconds(time.Second)}
	cold := &Report{Executions: 2, Concurrency: 1, Runner: Series{Count: 2, P50: Seconds(time.Second), P95: Seconds(time.Second), Throughput: 2},
		FirstOutput: &Series{Count: 2, P50: Seconds(500 * time.Millisecond)}}
	cold.compare(floor, first)
	s := Suite{Scenario: "sequential", Modes: map[string]*Report{"cold": cold}, Order: []string{"cold"}, Floor: floor, FloorFirstOutput: first}
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Modes map[string]struct {
			Runner              struct{ P50, P95 float64 }
			Floor               struct{ P50, P95 float64 }
			RatioP50            float64               `json:"ratio_p50"`
			RatioFirstOutputP50 float64               `json:"ratio_first_output_p50"`
			FirstOutput         struct{ P50 float64 } `json:"first_output"`
		}
		Order []string
		Floor struct{ P50 float64 }
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	c := got.Modes["cold"]
	if c.Runner.P50 != 1 || c.Runner.P95 != 1 || c.Floor.P50 != 2 || c.Floor.P95 != 3 || got.Floor.P50 != 2 || len(got.Order) != 1 {
		t.Errorf("report fields moved: %s", raw)
	}
	if c.RatioP50 != 0.5 || c.RatioFirstOutputP50 != 0.5 || c.FirstOutput.P50 != 0.5 {
		t.Errorf("ratios to the floor: p50 %v, first output %v; want 0.5 and 0.5 (%s)", c.RatioP50, c.RatioFirstOutputP50, raw)
	}
	var back Suite
	if err := json.Unmarshal(raw, &back); err != nil || back.Modes["cold"].Runner.P50 != Seconds(time.Second) {
		t.Errorf("the report does not read back: %v, %+v", err, back.Modes["cold"])
	}
}
