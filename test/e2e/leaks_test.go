//go:build integration || gke

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/gkexec/gkexec/test/leftovers"
)

// sleeperCode runs long enough to be interrupted.
const sleeperCode = "import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n"

// testLeaks is stage 6: an interrupted gkexec cleans up after itself; a killed one leaves its
// objects, and `gkexec gc` removes them. (Every other stage and step ends with the same
// no-leftovers assertion.)
func testLeaks(t *testing.T, tg *target) {
	tg.step(t, "sigint_leaves_nothing", func(t *testing.T) {
		id := executionID("sigint")
		cmd, stdout, stderr := tg.startSleeper(t, id)
		if err := cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		code := waitExit(t, cmd, 2*time.Minute)
		if code != 130 {
			t.Errorf("gkexec run exited %d after SIGINT, want 130; stdout %q, stderr %q", code, stdout, stderr)
		}
		if !strings.Contains(stderr.String(), "canceled") {
			t.Errorf("stderr %q: want the cancellation named", stderr)
		}
		// Everything gone, the running Pod included.
		tg.assertNoLeftovers(t, id)
	})

	tg.step(t, "sigkill_leaves_objects_gc_removes_them", func(t *testing.T) {
		id := executionID("sigkill")
		cmd, _, _ := tg.startSleeper(t, id)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = waitExit(t, cmd, time.Minute)

		left, err := leftovers.List(context.Background(), tg.admin, tg.namespace, id)
		if err != nil {
			t.Fatal(err)
		}
		name := "gkexec-" + id
		for _, want := range []string{"Job/" + name, "ConfigMap/" + name} {
			if !containsPrefix(left, want) {
				t.Errorf("after SIGKILL, %s is gone (left: %v); a killed gkexec cannot clean up, so it must still be there for gc", want, left)
			}
		}

		dry := tg.gkexec(t, 2*time.Minute, nil, "gc", "--older-than", "0s", "--dry-run")
		if dry.exitCode != 0 || !strings.Contains(string(dry.stdout), "would delete "+tg.namespace+"/"+name+" Job") {
			t.Errorf("gc --dry-run: %s", dry)
		}
		if still, _ := leftovers.List(context.Background(), tg.admin, tg.namespace, id); !containsPrefix(still, "Job/"+name) {
			t.Errorf("gc --dry-run deleted the job: %v", still)
		}

		res := tg.gkexec(t, 2*time.Minute, nil, "gc", "--older-than", "0s")
		if res.exitCode != 0 {
			t.Fatalf("gkexec gc: %s", res)
		}
		if want := "deleted " + tg.namespace + "/" + name + " Job"; !strings.Contains(string(res.stdout), want) {
			t.Errorf("gc output lacks %q: %s", want, res.stdout)
		}
		// The ConfigMap is owned by the Job: the garbage collector may remove it first.
		cm := tg.namespace + "/" + name + " ConfigMap"
		if !strings.Contains(string(res.stdout), "deleted "+cm) && !strings.Contains(string(res.stdout), "already gone "+cm) {
			t.Errorf("gc output says nothing of %s: %s", cm, res.stdout)
		}
		tg.assertNoLeftovers(t, id)
	})
}

// startSleeper starts `gkexec run` of a sleeping program and returns once its code runs. Read
// the buffers only after the process has ended.
func (tg *target) startSleeper(t *testing.T, id string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	cmd, stdout, stderr := tg.gkexecCommand(context.Background(), nil, "run", "--id", id, "--timeout", "10m", "-c", sleeperCode)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	tg.waitRunning(t, id, 3*time.Minute)
	return cmd, stdout, stderr
}

// waitRunning waits until the execution's sandbox container runs.
func (tg *target) waitRunning(t *testing.T, id string, timeout time.Duration) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := tg.admin.CoreV1().Pods(tg.namespace).List(ctx, metav1.ListOptions{LabelSelector: leftovers.Selector(id)})
		if err != nil || len(pods.Items) == 0 {
			return false, nil
		}
		p := pods.Items[0]
		last = string(p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running != nil {
				return true, nil
			}
		}
		return p.Status.Phase == corev1.PodRunning, nil
	})
	if err != nil {
		t.Fatalf("the sandbox of %s never ran (last phase %q)", id, last)
	}
}

// waitExit waits for the process and returns its exit code (-1 if a signal ended it).
func waitExit(t *testing.T, cmd *exec.Cmd, timeout time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				return -1
			}
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		t.Fatalf("gkexec did not exit within %s", timeout)
		return 0
	}
}

func containsPrefix(items []string, prefix string) bool {
	for _, s := range items {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
