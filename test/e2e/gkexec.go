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

// gkexecCommand prepares `gkexec SUBCOMMAND --kubeconfig <agent> --namespace <ns> ARGS...`: the
// binary under test, as the agent, with an environment free of GKEXEC_* and KUBECONFIG so that
// nothing but these flags configures it.
func (tg *target) gkexecCommand(ctx context.Context, stdin []byte, subcommand string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	full := append([]string{subcommand, "--kubeconfig", tg.agentKubeconfig, "--namespace", tg.namespace}, args...)
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
	res := cliResult{stdout: stdout.Bytes(), stderr: stderr.Bytes(), elapsed: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("gkexec %s %v did not finish within %s; stderr: %s", subcommand, args, timeout, stderr)
	case errors.As(err, &exit):
		res.exitCode = exit.ExitCode()
	case err != nil:
		t.Fatalf("gkexec %s: %v", subcommand, err)
	}
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
