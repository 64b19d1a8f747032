//go:build integration

package agent

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const pythonTimeoutSeconds = 6

// testPythonExecutor runs examples/adk-python's unittest suite with Debian's python3 against a
// real `gkexec serve` (one execution at a time, so that the client's 429 retry is exercised),
// backed by the local cluster as the agent.
func testPythonExecutor(t *testing.T, c *cluster) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 not found: %v (apt-get install python3)", err)
	}
	p := startServe(t, c, "--max-concurrent", "1", "--timeout", fmt.Sprintf("%ds", pythonTimeoutSeconds))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := filepath.Join(c.root, "examples", "adk-python")
	cmd := exec.CommandContext(ctx, python, "-m", "unittest", "discover", "-s", "tests", "-v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GKEXEC_TEST_URL="+p.url,
		"GKEXEC_TEST_TOKEN="+p.token,
		"GKEXEC_TEST_NAMESPACE="+c.namespace,
		fmt.Sprintf("GKEXEC_TEST_TIMEOUT_SECONDS=%d", pythonTimeoutSeconds),
		"PYTHONDONTWRITEBYTECODE=1", // leave no __pycache__ in the repository
		// The sidecar is on loopback; the client ignores proxies anyway.
		"NO_PROXY=127.0.0.1,localhost",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	if err != nil {
		// unittest's report of what failed comes first, where a CI digest of the log shows it.
		t.Errorf("the Python tests failed: %v\n%s", err, unittestFailures(out.String()))
	}
	t.Logf("python3 -m unittest (%s):\n%s", time.Since(start).Round(time.Second), out.String())
	if err != nil {
		t.FailNow()
	}
	ran := regexp.MustCompile(`Ran (\d+) tests?`).FindStringSubmatch(out.String())
	if ran == nil || ran[1] == "0" {
		t.Errorf("no Python test ran")
	}
	if regexp.MustCompile(`skipped=\d+|\.\.\. skipped`).MatchString(out.String()) {
		t.Errorf("Python tests were skipped: every one must run against the server")
	}
}

// unittestFailures is the part of unittest's output that says what failed: its tracebacks, from
// the first ==== rule to the end; all of it when there is no rule (a crash before any test ran).
func unittestFailures(out string) string {
	if i := strings.Index(out, "\n"+strings.Repeat("=", 70)+"\n"); i >= 0 {
		return out[i+1:]
	}
	return out
}
