// Package scripts tests the shell library the project's long scripts share (hack/stages.sh).
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A failed suite's console must end with what failed: a CI page often keeps only the last few dozen lines,
// and a suite's cleanup (terraform destroy, cluster status) can print hundreds after the failure.
func TestAFailedSuitesConsoleEndsWithWhatFailed(t *testing.T) {
	logs := t.TempDir()
	// A go test run without -v: the failure block, then a long cleanup after it.
	script := `
set -euo pipefail # as test/run.sh
source hack/stages.sh
fake_suite() {
	echo "ok  	example.com/a	0.1s"
	echo "--- FAIL: TestLocalCluster (100.00s)"
	echo "    --- FAIL: TestLocalCluster/10_sessions (20.00s)"
	echo "        stage10_test.go:50: session ended: its sandbox pod is gone"
	for i in $(seq 200); do echo "TestLocalCluster logger.go:79: destroying $i"; done
	echo FAIL
	return 1
}
trap 'rc=$?; for i in $(seq 40); do echo "cluster: status line $i" >&2; done; stages_failure_digest; note "tests FAILED"; exit $rc' EXIT
stage_tee e2e fake_suite
`
	out, err := runBash(t, script, logs)
	if err == nil {
		t.Fatalf("the failing stage passed:\n%s", out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	tail := strings.Join(lines[max(0, len(lines)-30):], "\n")
	for _, want := range []string{"--- FAIL: TestLocalCluster/10_sessions", "stage10_test.go:50: session ended", filepath.Join(logs, "e2e.log"), "tests FAILED"} {
		if !strings.Contains(tail, want) {
			t.Errorf("the last 30 lines do not name %q:\n%s", want, tail)
		}
	}
	if strings.Contains(tail, "destroying 150") {
		t.Errorf("the digest repeats the cleanup's lines, not only what failed:\n%s", tail)
	}
}

// A failed test's message shows in the digest even when the test logged much before it: CI's digest of
// TestPoolAutoscale showed only the first lines of its failure block, the autoscalers' log lines, and
// not the message that said what failed.
func TestTheDigestShowsAFailuresMessageUnderItsLogLines(t *testing.T) {
	script := `
source hack/stages.sh
fake_suite() {
	echo "--- FAIL: TestPoolAutoscale (202.15s)"
	for i in $(seq 8); do echo "    autoscale_test.go:198: time=2026-12-05T12:16:4$i.461Z level=INFO msg=\"resized the warm pool\" to=$i"; done
	echo "    warm_test.go:319: warm pool: 1 ready idle pods after 3m0s, want 4"
	for i in $(seq 5); do echo "    autoscale_test.go:198: time=2026-12-05T12:19:5$i.461Z level=INFO msg=\"resized the warm pool\" to=1"; done
	for i in $(seq 100); do echo "TestPoolAutoscale logger.go:79: deleted $i"; done
	echo FAIL
	return 1
}
stage_tee e2e fake_suite || stages_failure_digest
`
	out, _ := runBash(t, script, t.TempDir())
	digest := string(out[strings.LastIndex(string(out), "what failed"):])
	if !strings.Contains(digest, "warm_test.go:319: warm pool: 1 ready idle pods after 3m0s, want 4") {
		t.Errorf("the digest does not show the failure's message:\n%s", digest)
	}
	if !strings.Contains(digest, "--- FAIL: TestPoolAutoscale") {
		t.Errorf("the digest does not name the failed test:\n%s", digest)
	}
}

// A suite that passed prints no digest.
func TestAPassedSuitePrintsNoDigest(t *testing.T) {
	out, err := runBash(t, `source hack/stages.sh; stage_tee unit echo "--- FAIL: not really, a passing suite's output"; stages_failure_digest`, t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(string(out), "what failed") {
		t.Errorf("a passing stage printed a failure digest:\n%s", out)
	}
}

// runBash runs script with bash at the repository's root, its stage logs in logs; stdout and stderr together.
func runBash(t *testing.T, script, logs string) ([]byte, error) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "STAGE_LOGS="+logs)
	return cmd.CombinedOutput()
}
