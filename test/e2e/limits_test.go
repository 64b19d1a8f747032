//go:build integration || gke

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/test/leftovers"
)

const (
	// failFastStart is the start timeout of the fail-fast cases; "fast" means well under half of it.
	failFastStart = 4 * time.Minute
	// podGoneDeadline: after a timeout the sandbox Pod must be gone within seconds; generous for a
	// loaded 2-core machine, and still far below any timeout in play.
	podGoneDeadline = 45 * time.Second
)

// testLimits is stage 5: limits hold and hostile code is contained; what cannot run fails fast
// with an actionable error.
func testLimits(t *testing.T, tg *target) {
	// Alone, one after the other: they load the node, and the CPU measurement needs it quiet.
	tg.step(t, "memory_hog_oom_killed", func(t *testing.T) { testMemoryHog(t, tg) })
	tg.step(t, "cpu_spinner_throttled", func(t *testing.T) { testCPUThrottled(t, tg) })
	tg.step(t, "fork_bomb_contained", func(t *testing.T) { testForkBomb(t, tg) })

	t.Run("contained_and_fail_fast", func(t *testing.T) {
		parallelCases := []struct {
			name string
			run  func(t *testing.T, id string)
		}{
			{"infinite_loop_library_timeout", func(t *testing.T, id string) { testTimeoutLibrary(t, tg, id) }},
			{"infinite_loop_binary_timeout", func(t *testing.T, id string) { testTimeoutBinary(t, tg, id) }},
			{"output_flood_capped", func(t *testing.T, id string) { testOutputFlood(t, tg, id) }},
			{"output_flood_binary_capped", func(t *testing.T, id string) { testOutputFloodBinary(t, tg, id) }},
			{"output_files_capped", func(t *testing.T, id string) { testFileFlood(t, tg, id) }},
			{"oversized_code_rejected", func(t *testing.T, id string) { testOversized(t, tg, id) }},
			{"oversized_code_binary_rejected", func(t *testing.T, id string) { testOversizedBinary(t, tg, id) }},
			{"missing_image_fails_fast", func(t *testing.T, id string) { testMissingImage(t, tg, id) }},
			{"missing_runtime_class_fails_fast", func(t *testing.T, id string) { testMissingRuntimeClass(t, tg, id) }},
			{"unschedulable_fails_fast", func(t *testing.T, id string) { testUnschedulable(t, tg, id) }},
		}
		for i, c := range parallelCases {
			id := executionID(fmt.Sprintf("lim%d", i))
			tg.parallelStep(t, c.name, []string{id}, func(t *testing.T) { c.run(t, id) })
		}
	})
}

func testMemoryHog(t *testing.T, tg *target) {
	opts := tg.options()
	r := tg.newRunner(t, opts)
	// 16 MiB at a time, each page written, up to 1.5 GiB: three times the 512Mi limit.
	code := `import sys
blocks = []
for i in range(96):
    blocks.append(bytes([i % 255 + 1]) * (16 << 20))
    print(len(blocks) * 16, "MiB", flush=True)
print("survived")
`
	res, err := r.Execute(context.Background(), runner.Request{Code: code, ExecutionID: executionID("memhog")})
	lines := strings.Split(strings.TrimSpace(string(res.Stdout)), "\n")
	t.Logf("memory hog: err %v; exit %d signal %d oom %v; last stdout %q; max rss %d MiB; stderr %s",
		err, res.ExitCode, res.Signal, res.OOMKilled, lines[len(lines)-1], res.MaxRSSBytes>>20, quoteShort(res.Stderr))
	if strings.Contains(string(res.Stdout), "survived") {
		t.Fatalf("allocated 1.5 GiB under a %s memory limit", r.Options().MemoryLimit)
	}
	if err != nil {
		t.Errorf("Execute: %v; an OOM kill is a result, not an error", err)
	}
	if !res.OOMKilled {
		t.Errorf("Result.OOMKilled = false (exit %d, signal %d); want the memory kill reported as such", res.ExitCode, res.Signal)
	}
	if res.Outcome() != "oom" {
		t.Errorf("outcome %q, want oom", res.Outcome())
	}
	// Killed by SIGKILL, as the kernel's OOM killer does everywhere (gVisor's runtime itself says
	// exit code 128 or 137).
	if res.ExitCode != 137 || res.Signal != 9 {
		t.Errorf("exit code %d, signal %d; want 137 and 9 (SIGKILL)", res.ExitCode, res.Signal)
	}
}

func testCPUThrottled(t *testing.T, tg *target) {
	opts := tg.options()
	r := tg.newRunner(t, opts)
	// One thread spins for ~3 s and measures, on the wall clock, how much of the time it actually
	// ran: every stall longer than 2 ms is time the CFS quota (or anyone else) took away. It also
	// reports CPU time over wall time as the sandbox's kernel accounts it; under gVisor that
	// figure counts throttled time too (0.65-0.75 at 500m where the thread ran ~0.5), so it is
	// logged, not asserted.
	code := `import time
clock = time.perf_counter
w0, c0 = clock(), time.process_time()
last, stalled = w0, 0.0
while last - w0 < 3:
    now = clock()
    if now - last > 0.002:
        stalled += now - last
    last = now
wall = last - w0
print((wall - stalled) / wall, (time.process_time() - c0) / wall)
`
	res, err := r.Execute(context.Background(), runner.Request{Code: code, ExecutionID: executionID("cpu")})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("err %v, exit %d, stderr %s", err, res.ExitCode, res.Stderr)
	}
	var running, accounted float64
	if _, err := fmt.Sscan(string(res.Stdout), &running, &accounted); err != nil {
		t.Fatalf("stdout %q", res.Stdout)
	}
	limit := r.Options().CPULimit
	t.Logf("cpu limit %s: the spinning thread ran %.2f of the wall time; the sandbox accounts %.2f CPU time per wall second", limit, running, accounted)
	if running > 0.6 {
		t.Errorf("a spinning thread ran %.2f of the time under a %s limit; want <= 0.6 (throttled to ~0.5)", running, limit)
	}
	if running < 0.1 {
		t.Errorf("a spinning thread ran %.2f of the time: the measurement is broken", running)
	}
}

func testForkBomb(t *testing.T, tg *target) {
	opts := tg.options()
	opts.Timeout = time.Minute
	r := tg.newRunner(t, opts)
	cases := []struct {
		name, code string
		check      func(t *testing.T, res runner.Result, err error)
	}{
		{
			// Small children (exec'd sleep), forked until fork fails: the process limit stops them.
			name: "until_the_process_limit",
			code: `import errno, os
children = 0
try:
    while True:
        if os.fork() == 0:
            os.execv("/bin/sleep", ["sleep", "60"])
        children += 1
except OSError as e:
    print(children, errno.errorcode.get(e.errno, e.errno), flush=True)
`,
			check: func(t *testing.T, res runner.Result, err error) {
				var children int
				var errName string
				if _, serr := fmt.Sscan(string(res.Stdout), &children, &errName); serr != nil || err != nil {
					t.Fatalf("fork never failed: err %v, %s, stdout %q", err, res.Outcome(), res.Stdout)
				}
				if errName != "EAGAIN" || children >= runner.DefaultMaxProcesses {
					t.Errorf("fork failed after %d children with %s; want EAGAIN below MaxProcesses (%d)", children, errName, runner.DefaultMaxProcesses)
				}
			},
		},
		{
			// Every process forks forever and ignores failures: only a limit can end it.
			name: "classic",
			code: "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
			check: func(t *testing.T, res runner.Result, err error) {
				if err != nil && !errors.Is(err, runner.ErrTimeout) {
					t.Errorf("Execute: %v", err)
				}
				if !res.OOMKilled && !res.TimedOut {
					t.Errorf("the fork bomb ended as %s (exit %d); want it killed for memory or at the timeout", res.Outcome(), res.ExitCode)
				}
			},
		},
	}
	for _, c := range cases {
		tg.step(t, c.name, func(t *testing.T) {
			start := time.Now()
			res, err := r.Execute(context.Background(), runner.Request{Code: c.code, ExecutionID: executionID("forkbomb")})
			t.Logf("fork bomb %s: ended as %s after %s (err %v, exit %d, signal %d); stdout %q",
				c.name, res.Outcome(), time.Since(start).Round(time.Second), err, res.ExitCode, res.Signal, res.Stdout)
			c.check(t, res, err)

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if ready, bad, err := nodesReady(ctx, tg.admin); err != nil || !ready {
				t.Errorf("after the fork bomb, nodes not Ready: %s (err %v)", bad, err)
			}
			after, err := r.Execute(context.Background(), runner.Request{Code: "print('still fine')", ExecutionID: executionID("afterbomb")})
			if err != nil || string(after.Stdout) != "still fine\n" {
				t.Errorf("the execution after the fork bomb: err %v, stdout %q, stderr %s", err, after.Stdout, quoteShort(after.Stderr))
			}
		})
	}
}

// loopCode prints a line, then spins forever.
const loopCode = "print('started', flush=True)\nwhile True:\n    pass\n"

func testTimeoutLibrary(t *testing.T, tg *target, id string) {
	opts := tg.options()
	opts.Timeout = 5 * time.Second
	r := tg.newRunner(t, opts)
	res, err := r.Execute(context.Background(), runner.Request{Code: loopCode, ExecutionID: id})
	errorsIs(t, err, runner.ErrTimeout)
	if !res.TimedOut || string(res.Stdout) != "started\n" {
		t.Errorf("TimedOut %v, stdout %q: want true and the output so far", res.TimedOut, res.Stdout)
	}
	if res.CodeDuration < opts.Timeout || res.CodeDuration > opts.Timeout+15*time.Second {
		t.Errorf("the code ran %s; want it killed at the %s timeout", res.CodeDuration, opts.Timeout)
	}
	tg.assertPodGone(t, id, podGoneDeadline)
}

func testTimeoutBinary(t *testing.T, tg *target, id string) {
	res := tg.gkexec(t, 3*time.Minute, nil, "run", "--id", id, "--timeout", "5s", "-c", loopCode)
	if res.exitCode != 124 {
		t.Errorf("%s; want exit 124", res)
	}
	if string(res.stdout) != "started\n" || !strings.Contains(string(res.stderr), "timed out") {
		t.Errorf("%s; want the output so far and a timeout message", res)
	}
	tg.assertPodGone(t, id, podGoneDeadline)
}

// assertPodGone waits for the execution's Pod to disappear, and fails if it takes longer than within.
func (tg *target) assertPodGone(t *testing.T, id string, within time.Duration) {
	t.Helper()
	start := time.Now()
	var last []corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, within, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: leftovers.Selector(id)})
		if err != nil {
			return false, nil
		}
		last = pods.Items
		return len(pods.Items) == 0, nil
	})
	if err != nil {
		var names []string
		for _, p := range last {
			names = append(names, fmt.Sprintf("%s (%s, deleting %v)", p.Name, p.Status.Phase, p.DeletionTimestamp != nil))
		}
		t.Errorf("the sandbox pod of %s is still there %s after the execution returned: %v", id, within, names)
		return
	}
	t.Logf("the pod of %s was gone %s after the execution returned", id, time.Since(start).Round(100*time.Millisecond))
}

func testOutputFlood(t *testing.T, tg *target, id string) {
	opts := tg.options()
	r := tg.newRunner(t, opts)
	code := `import sys
chunk = b"0123456789abcdef" * 4096
for _ in range(128):
    sys.stdout.buffer.write(chunk)
for _ in range(48):
    sys.stderr.buffer.write(chunk)
`
	res, err := r.Execute(context.Background(), runner.Request{Code: code, ExecutionID: id})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("err %v, exit %d", err, res.ExitCode)
	}
	limit := int(runner.DefaultMaxOutputBytes)
	want := bytes.Repeat([]byte("0123456789abcdef"), limit/16)
	if !bytes.Equal(res.Stdout, want) || !res.StdoutTruncated {
		t.Errorf("stdout: %d bytes, truncated %v; want the first %d bytes and truncated", len(res.Stdout), res.StdoutTruncated, limit)
	}
	if !bytes.Equal(res.Stderr, want) || !res.StderrTruncated {
		t.Errorf("stderr: %d bytes, truncated %v; want the first %d bytes and truncated", len(res.Stderr), res.StderrTruncated, limit)
	}
}

func testOutputFloodBinary(t *testing.T, tg *target, id string) {
	code := "import sys\nfor _ in range(10000):\n    sys.stdout.write('y' * 1000)\n"
	res := tg.gkexec(t, 5*time.Minute, nil, "run", "--id", id, "--max-output-bytes", "1000", "-c", code)
	if res.exitCode != 0 || string(res.stdout) != strings.Repeat("y", 1000) {
		t.Errorf("%s; want exit 0 and exactly 1000 bytes", res)
	}
	if !strings.Contains(string(res.stderr), "stdout truncated at the size cap") {
		t.Errorf("stderr %q: want the truncation note", res.stderr)
	}
}

func testFileFlood(t *testing.T, tg *target, id string) {
	r := tg.newRunner(t, tg.options())
	code := `import os
open("output/a-small.txt", "w").write("small")
with open("output/b-big.bin", "wb") as f:
    for _ in range(6):
        f.write(b"z" * (1 << 20))
open("output/c-after.txt", "w").write("after")
`
	res, err := r.Execute(context.Background(), runner.Request{Code: code, ExecutionID: id})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("err %v, exit %d, stderr %s", err, res.ExitCode, quoteShort(res.Stderr))
	}
	if !res.FilesTruncated {
		t.Error("FilesTruncated = false after 6 MiB of files under a 4 MiB cap")
	}
	total := 0
	for _, f := range res.Files {
		total += len(f.Data)
	}
	if total > int(runner.DefaultMaxFileBytes) {
		t.Errorf("%d bytes of files returned, cap %d", total, runner.DefaultMaxFileBytes)
	}
	if len(res.Files) < 2 || res.Files[0].Path != "a-small.txt" || string(res.Files[0].Data) != "small" ||
		res.Files[1].Path != "b-big.bin" || !res.Files[1].Truncated || res.Files[1].Size != 6<<20 {
		t.Errorf("files %v: want a-small.txt whole, then b-big.bin (6 MiB) marked truncated", fileSummary(res.Files))
	}
}

func fileSummary(files []runner.File) []string {
	var out []string
	for _, f := range files {
		out = append(out, fmt.Sprintf("%s(%d of %d, truncated %v)", f.Path, len(f.Data), f.Size, f.Truncated))
	}
	return out
}

// oversizedCode is valid Python over the 1 MiB a ConfigMap holds.
func oversizedCode() string {
	return "x = 1\n#" + strings.Repeat("#", 1<<20+1024) + "\n"
}

func testOversized(t *testing.T, tg *target, id string) {
	r := tg.newRunner(t, tg.options())
	rec := tg.recordCreations(t, id)
	_, err := r.Execute(context.Background(), runner.Request{Code: oversizedCode(), ExecutionID: id})
	added := rec.stopAfter(2 * time.Second)
	errorsIs(t, err, runner.ErrRequestTooLarge)
	errorsIs(t, err, runner.ErrInvalidRequest)
	if len(added) > 0 {
		t.Errorf("an oversized request created %v; want nothing created", added)
	}
}

func testOversizedBinary(t *testing.T, tg *target, id string) {
	rec := tg.recordCreations(t, id)
	file := filepath.Join(t.TempDir(), "big.py")
	if err := os.WriteFile(file, []byte(oversizedCode()), 0o644); err != nil {
		t.Fatal(err)
	}
	res := tg.gkexec(t, 2*time.Minute, nil, "run", "--id", id, file)
	added := rec.stopAfter(2 * time.Second)
	if res.exitCode != 2 || !strings.Contains(string(res.stderr), "request too large") {
		t.Errorf("%s; want exit 2 and 'request too large'", res)
	}
	if len(added) > 0 {
		t.Errorf("an oversized request created %v; want nothing created", added)
	}
}

// failFast runs code that cannot start and checks the error and that it came well before the
// start timeout.
func failFast(t *testing.T, tg *target, id string, mutate func(*runner.Options), want error, wantInMessage string) {
	t.Helper()
	opts := tg.options()
	opts.StartTimeout = failFastStart
	mutate(&opts)
	r := tg.newRunner(t, opts)
	start := time.Now()
	_, err := r.Execute(context.Background(), runner.Request{Code: "print('never')", ExecutionID: id})
	took := time.Since(start)
	t.Logf("failed after %s: %v", took.Round(100*time.Millisecond), err)
	errorsIs(t, err, want)
	if !strings.Contains(err.Error(), wantInMessage) {
		t.Errorf("error %q does not mention %q", err, wantInMessage)
	}
	if took > failFastStart/2 {
		t.Errorf("took %s to fail; want well under the start timeout %s", took, failFastStart)
	}
}

// failFastBinary does the same through the binary: exit 126, the sandbox cannot start.
func failFastBinary(t *testing.T, tg *target, id, wantInMessage string, flags ...string) {
	t.Helper()
	args := append([]string{"--id", id, "--start-timeout", failFastStart.String()}, flags...)
	res := tg.gkexec(t, failFastStart+time.Minute, nil, "run", append(args, "-c", "print('never')")...)
	if res.exitCode != 126 || !strings.Contains(string(res.stderr), wantInMessage) {
		t.Errorf("%s; want exit 126 and %q", res, wantInMessage)
	}
	if res.elapsed > failFastStart/2 {
		t.Errorf("took %s to fail; want well under the start timeout %s", res.elapsed, failFastStart)
	}
}

func testMissingImage(t *testing.T, tg *target, id string) {
	const image = "gkexec.invalid/none:1"
	failFast(t, tg, id, func(o *runner.Options) {
		o.Image, o.ImagePullPolicy = image, corev1.PullNever
	}, runner.ErrImagePull, image)
	tg.assertNoLeftovers(t, id)
	failFastBinary(t, tg, id+"-b", "ErrImageNeverPull", "--image", image, "--image-pull-policy", "Never")
	tg.assertNoLeftovers(t, id+"-b")
}

func testMissingRuntimeClass(t *testing.T, tg *target, id string) {
	failFast(t, tg, id, func(o *runner.Options) { o.RuntimeClassName = "does-not-exist" }, runner.ErrRuntimeClass, "does-not-exist")
	tg.assertNoLeftovers(t, id)
	failFastBinary(t, tg, id+"-b", "does-not-exist", "--runtime-class", "does-not-exist")
	tg.assertNoLeftovers(t, id+"-b")
}

func testUnschedulable(t *testing.T, tg *target, id string) {
	failFast(t, tg, id, func(o *runner.Options) {
		o.NodeSelector = map[string]string{"gkexec.dev/none": "x"}
		o.UnschedulableGrace = 5 * time.Second
	}, runner.ErrUnschedulable, "node")
	tg.assertNoLeftovers(t, id)
	failFastBinary(t, tg, id+"-b", "cannot be scheduled", "--node-selector", "gkexec.dev/none=x", "--unschedulable-grace", "5s")
	tg.assertNoLeftovers(t, id+"-b")
}
