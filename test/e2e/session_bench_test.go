//go:build integration

package e2e

import (
	"context"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/testenv"
	"github.com/gkexec/gkexec/test/testns"
)

// BenchmarkSession measures sessions on the local cluster (docs/performance.md): an execution of
// print(1) inside an open session, the time from Execute to the first streamed chunk of
// `print(1); time.sleep(1)`, and memory per open session on the runner's side. It makes its own
// namespace with a warm pool of 2 and deletes it. Run with `make bench-session`.
func BenchmarkSession(b *testing.B) {
	kubeconfig := testenv.RequireEnv(b, "KUBECONFIG", "the local cluster's admin kubeconfig")
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	ns := uniqueName("gkexec-bench-session")
	opts := runner.Options{Namespace: ns, RESTConfig: cfg, WarmPoolReady: -1}
	probe, err := runner.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	client := probe.Client()
	testns.SweepStale(b, client)
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	testns.Own(b, client, ns)
	b.Cleanup(func() { _ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	pool, err := runner.WarmPoolDeployment(opts, 2)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := client.AppsV1().Deployments(ns).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, poolDeadline, true, func(ctx context.Context) (bool, error) {
		d, err := client.AppsV1().Deployments(ns).Get(ctx, pool.Name, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2, nil
	}); err != nil {
		b.Fatalf("pool not ready: %v", err)
	}
	r, err := runner.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	s, err := r.OpenSession(ctx, runner.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if res, err := s.Execute(ctx, runner.Request{Code: "x = 1"}); err != nil || res.ExitCode != 0 {
		b.Fatalf("warm-up: %v %+v", err, res)
	}
	// The runner's cost of one more open session (the shared watches are already running).
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	other, err := r.OpenSession(ctx, runner.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := other.Execute(ctx, runner.Request{Code: "y = 1"}); err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	_ = other.Close()

	lat := make([]time.Duration, 0, b.N)
	var rss int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		res, err := s.Execute(ctx, runner.Request{Code: "print(1)"})
		lat = append(lat, time.Since(t0))
		if err != nil || strings.TrimSpace(string(res.Stdout)) != "1" {
			b.Fatalf("execution %d: %v stdout %q", i, err, res.Stdout)
		}
		rss = res.MaxRSSBytes
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*95/100].Microseconds())/1000, "p95-ms")

	var firsts []time.Duration
	for i := 0; i < 5; i++ {
		var first time.Duration
		t0 := time.Now()
		if _, err := s.Execute(ctx, runner.Request{Code: "import time\nprint(1, flush=True)\ntime.sleep(1)\n", Output: func(runner.Stream, []byte) {
			if first == 0 {
				first = time.Since(t0)
			}
		}}); err != nil {
			b.Fatal(err)
		}
		firsts = append(firsts, first)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	b.ReportMetric(float64(firsts[len(firsts)/2].Microseconds())/1000, "first-chunk-p50-ms")
	b.ReportMetric(float64(rss)/(1<<20), "interpreter-rss-MiB")
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/1024, "runner-heap-per-session-KiB")
}
