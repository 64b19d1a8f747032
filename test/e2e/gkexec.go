//go:build integration || gke

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cliResult is what one gkexec invocation did.
type cliResult struct {
	exitCode int
	stdout   []byte
	stderr   []byte
	elapsed  time.Duration
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d, stdout %s, stderr %s", r.exitCode, quoteShort(r.stdout), quoteShort(r.stderr))
}

// gkexecCommand prepares `gkexec SUBCOMMAND --kubeconfig <agent> --namespace <ns> ARGS...`, where
// SUBCOMMAND may be several words ("session exec"; the flags go after the last, which has them): the
// binary under test, as the agent, with an environment free of GKEXEC_* and KUBECONFIG so that
// nothing but these flags configures it.
func (tg *target) gkexecCommand(ctx context.Context, stdin []byte, subcommand string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	full := append(strings.Fields(subcommand), "--kubeconfig", tg.agentKubeconfig, "--namespace", tg.namespace)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, tg.bin, full...)
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GKEXEC_") || strings.HasPrefix(kv, "KUBECONFIG=") {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	return cmd, &stdout, &stderr
}

// gkexec runs the binary to completion (or the deadline) and returns what it did.
func (tg *target) gkexec(t *testing.T, timeout time.Duration, stdin []byte, subcommand string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd, stdout, stderr := tg.gkexecCommand(ctx, stdin, subcommand, args...)
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("gkexec %s %v did not finish within %s; stderr: %s", subcommand, args, timeout, stderr)
	}
	res := cliResult{exitCode: exitCode(t, err), stdout: stdout.Bytes(), stderr: stderr.Bytes(), elapsed: time.Since(start)}
	t.Logf("gkexec %s: exit %d in %s", subcommand, res.exitCode, res.elapsed.Round(10*time.Millisecond))
	return res
}

// quoteShort quotes at most 300 bytes of b, for failure messages.
func quoteShort(b []byte) string {
	if len(b) > 300 {
		return strconv.Quote(string(b[:300])) + "..."
	}
	return strconv.Quote(string(b))
}

// exitCode is the exit code of a gkexec that ran (err from its Wait or Run); any other error fails
// the test.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit):
		return exit.ExitCode()
	}
	t.Fatalf("gkexec: %v", err)
	return -1
}
