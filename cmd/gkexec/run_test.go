package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

// countingReader is stdin that counts what gkexec read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Code must fit in a ConfigMap: gkexec reads at most 1 MiB + 1 byte of it, and refuses more as a
// usage error before it contacts a cluster.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestRunBoundsTheCodeItReads(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.py")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#"), 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		stdin int64
		args  []string
		fits  bool
	}{
		{name: "stdin of 8 MiB", stdin: 8 << 20, args: []string{"-"}},
		{name: "stdin of 1 MiB + 1 byte", stdin: maxCodeBytes + 1},
		{name: "a file of 8 MiB", args: []string{big}},
		{name: "stdin of exactly 1 MiB", stdin: maxCodeBytes, fits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &countingReader{r: io.LimitReader(zeros{}, tc.stdin)}
			var stdout, stderr bytes.Buffer
			// An unreadable kubeconfig: had gkexec got as far as the cluster, it would fail otherwise.
			args := append([]string{"gkexec", "run", "--kubeconfig", "/nonexistent/kubeconfig"}, tc.args...)
			code := runApp(context.Background(), newApp(in, &stdout, &stderr), args)
			if tc.fits {
				if code == exitUsage || strings.Contains(stderr.String(), "larger than") {
					t.Errorf("1 MiB of code was refused: %s", stderr.String())
				}
				return
			}
			if code != exitUsage || !strings.Contains(stderr.String(), "the code is larger than 1 MiB") {
				t.Errorf("exit %d stderr %q; want %d and a message that the code is larger than 1 MiB", code, stderr.String(), exitUsage)
			}
			if in.n > maxCodeBytes+1 {
				t.Errorf("read %d bytes of stdin, want at most %d", in.n, maxCodeBytes+1)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '#'
	}
	return len(p), nil
}

// transcript records, in one order, what the code's output did on gkexec's stdout and stderr and
// when the runner deleted the execution's Job: written before the deletion is written as it ran.
type transcript struct {
	mu     sync.Mutex
	events []string
	out    bytes.Buffer
	err    bytes.Buffer
}

func (t *transcript) add(event string, buf *bytes.Buffer, p []byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, event+string(p))
	if buf != nil {
		buf.Write(p)
	}
}

func (t *transcript) snapshot() ([]string, string, string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.events), t.out.String(), t.err.String()
}

type transcriptWriter struct {
	t    *transcript
	name string
	buf  *bytes.Buffer
}

func (w transcriptWriter) Write(p []byte) (int, error) {
	w.t.add(w.name+" ", w.buf, p)
	return len(p), nil
}

// runOnFakeCluster runs `gkexec run args...` to its exit code, with a real runner on a fake
// cluster whose sandbox writes log; the transcript has what it printed and when.
func runOnFakeCluster(t *testing.T, steps []func(*corev1.Pod), log []byte, args ...string) (int, *transcript) {
	t.Helper()
	return runOn(t, fakecluster.New(t, fakecluster.Scenario{Steps: steps, Log: log}), args...)
}

// runOn runs `gkexec run args` on fc.
func runOn(t *testing.T, fc *fakecluster.Cluster, args ...string) (int, *transcript) {
	t.Helper()
	tr := &transcript{}
	fc.Client.PrependReactor("delete", "jobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		tr.add("deleted the job", nil, nil)
		return false, nil, nil
	})
	r, err := runner.New(runner.Options{Namespace: fakecluster.Namespace, Client: fc.Client})
	if err != nil {
		t.Fatal(err)
	}
	app := newApp(strings.NewReader(""), transcriptWriter{tr, "stdout", &tr.out}, transcriptWriter{tr, "stderr", &tr.err})
	for _, cmd := range app.Commands {
		if cmd.Name == "run" {
			cmd.Action = func(c *cli.Context) error {
				return runWith(c, func(*cli.Context, io.Writer) (*runner.Runner, error) { return r, nil })
			}
		}
	}
	code := runApp(context.Background(), app, append([]string{"gkexec", "run"}, args...))
	if left := fc.Leftovers(); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
	return code, tr
}

var sandboxRuns = []func(*corev1.Pod){fakecluster.ScheduledOn("node-1"), fakecluster.Running}

func endOK(l *fakecluster.Log, exitCode int) []byte {
	now := fakecluster.Now()
	return l.End(fakecluster.End{ExitCode: exitCode, StartedAt: now - 0.25, FinishedAt: now})
}

// The code's output reaches gkexec's stdout and stderr chunk by chunk, in the order the sandbox
// wrote it, before the execution is over (its Job deleted), and only once.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestRunStreamsOutputAsTheSandboxSendsIt(t *testing.T) {
	log := endOK(new(fakecluster.Log).Out("one\n").Err("warning: x\n").Out("two ✓\n"), 3)
	code, tr := runOnFakeCluster(t, sandboxRuns, log, "-c", "print(1)")
	events, stdout, stderr := tr.snapshot()
	if code != 3 {
		t.Errorf("exit %d, want the code's own 3; stderr %q", code, stderr)
	}
	want := []string{"stdout one\n", "stderr warning: x\n", "stdout two ✓\n", "deleted the job"}
	if len(events) < len(want) || !slices.Equal(events[:len(want)], want) {
		t.Errorf("events %q, want the chunks in order, each written before the Job was deleted: %q", events, want)
	}
	if stdout != "one\ntwo ✓\n" || stderr != "warning: x\n" {
		t.Errorf("stdout %q stderr %q, want each chunk once and nothing else", stdout, stderr)
	}
}

// --json prints the one Result document on stdout and nothing while the code runs.
func TestRunJSONPrintsOneDocumentAndStreamsNothing(t *testing.T) {
	log := endOK(new(fakecluster.Log).Out("one\n").Err("warning: x\n"), 0)
	code, tr := runOnFakeCluster(t, sandboxRuns, log, "--json", "-c", "print(1)")
	events, stdout, stderr := tr.snapshot()
	if code != 0 || stderr != "" {
		t.Errorf("exit %d stderr %q, want 0 and nothing on stderr", code, stderr)
	}
	if events[0] != "deleted the job" {
		t.Errorf("events %q: something was written before the execution was over", events)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	var res runner.Result
	if err := dec.Decode(&res); err != nil {
		t.Fatalf("stdout is not a Result: %v: %s", err, stdout)
	}
	if string(res.Stdout) != "one\n" || string(res.Stderr) != "warning: x\n" {
		t.Errorf("result stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("more than one document on stdout: %s", stdout)
	}
}

// A sandbox that dies after printing: its output was streamed once, then gkexec's error follows
// on stderr, on a line of its own, and the exit code is gkexec's.
func TestRunErrorAfterOutputPrintsTheOutputOnce(t *testing.T) {
	steps := append(slices.Clone(sandboxRuns), fakecluster.TerminatedWith("Error", 2))
	log := new(fakecluster.Log).Out("so far\n").Err("half a line").Bytes() // no end record
	code, tr := runOnFakeCluster(t, steps, log, "-c", "print(1)")
	_, stdout, stderr := tr.snapshot()
	if code != exitRunner {
		t.Errorf("exit %d, want %d; stderr %q", code, exitRunner, stderr)
	}
	if stdout != "so far\n" {
		t.Errorf("stdout %q, want the output once", stdout)
	}
	msg, ok := strings.CutPrefix(stderr, "half a line\ngkexec: ")
	if !ok || !strings.Contains(msg, "ended without a result") || strings.Contains(msg, "so far") {
		t.Errorf("stderr %q, want the code's stderr once, then gkexec's error on a line of its own", stderr)
	}
}

// Output without a final newline stays exactly as the code wrote it when gkexec has nothing to add.
func TestRunLeavesTheOutputExactWhenItHasNothingToSay(t *testing.T) {
	log := endOK(new(fakecluster.Log).Out("no newline").Err("nor here"), 0)
	code, tr := runOnFakeCluster(t, sandboxRuns, log, "-c", "print(1)")
	_, stdout, stderr := tr.snapshot()
	if code != 0 || stdout != "no newline" || stderr != "nor here" {
		t.Errorf("exit %d stdout %q stderr %q, want 0 and the output byte for byte", code, stdout, stderr)
	}
}
