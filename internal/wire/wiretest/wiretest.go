// Package wiretest runs the sandbox's end of the wire — the real entrypoint.py, under the
// machine's python3 — for tests on either side of it: an entrypoint waiting on stdin as in a warm
// pool Pod (Start), and a Pod's container that lives across attaches (NewPod), as a container
// runtime keeps it.
package wiretest

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gkexec/gkexec/internal/wire"
)

// Entrypoint is entrypoint.py in stdin mode (a warm pool Pod's), in a scratch directory standing
// in for the Pod's volumes.
type Entrypoint struct {
	Stdin io.WriteCloser
	Out   *bufio.Reader
	// Dir holds the code, the workspace (Dir/workspace) and /tmp.
	Dir string
	cmd *exec.Cmd
	// waitOnce: the test and its cleanup both wait for the process; exec.Cmd allows one Wait.
	waitOnce sync.Once
	waitErr  error
}

// Start starts the entrypoint, with env added to its environment; it is killed when the test
// ends. A test fails without python3: the sandbox image runs the same entrypoint, and a skipped
// contract test proves nothing.
func Start(t testing.TB, env ...string) *Entrypoint {
	t.Helper()
	python, err := interpreter()
	if err != nil {
		t.Fatalf("python3 is required for this test (the sandbox image runs the same entrypoint): %v", err)
	}
	return StartWith(t, python, env...)
}

// StartWith is Start with the given Python interpreter: one that has a library the test needs.
func StartWith(t testing.TB, python string, env ...string) *Entrypoint {
	t.Helper()
	dir := t.TempDir()
	work := filepath.Join(dir, "workspace")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-I", "-S", "-c", wire.Entrypoint)
	cmd.Env = []string{
		"GKEXEC_REQUEST=stdin",
		"GKEXEC_CODE=" + filepath.Join(dir, "code", "main.py"),
		"GKEXEC_WORKDIR=" + work,
		"GKEXEC_OUTPUT_DIR=" + filepath.Join(work, "output"),
		"HOME=" + dir, "TMPDIR=" + dir, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
		"PATH=" + os.Getenv("PATH"),
	}
	cmd.Env = append(cmd.Env, env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// What the entrypoint itself says on stderr (a traceback, a refusal) is in a failed test's log.
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &Entrypoint{cmd: cmd, Stdin: stdin, Out: bufio.NewReader(stdout), Dir: dir}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = e.Wait()
		if t.Failed() && stderr.Len() > 0 {
			t.Logf("the entrypoint's stderr:\n%s", stderr.Bytes())
		}
	})
	return e
}

// interpreter is python3's real executable: a launcher on PATH (pyenv's shim, a script) needs
// the PATH a test may take away from the entrypoint.
var interpreter = sync.OnceValues(func() (string, error) {
	out, err := exec.Command("python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
})

// Wait waits for the entrypoint to exit, once however many goroutines ask.
func (e *Entrypoint) Wait() error {
	e.waitOnce.Do(func() { e.waitErr = e.cmd.Wait() })
	return e.waitErr
}

// Pod is a pool Pod's container played by the real entrypoint: it lives across attaches, and its
// stdout goes to every attach current when it writes, as a container runtime's does.
type Pod struct {
	E    *Entrypoint
	mu   sync.Mutex
	outs map[io.Writer]bool
}

// NewPod starts the container, with env added to its environment.
func NewPod(t testing.TB, env ...string) *Pod {
	p := &Pod{E: Start(t, env...), outs: map[io.Writer]bool{}}
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := p.E.Out.Read(buf)
			p.mu.Lock()
			for out := range p.outs {
				if n > 0 {
					if _, werr := out.Write(buf[:n]); werr != nil {
						delete(p.outs, out) // that attach is gone
					}
				}
			}
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

// Attach connects one attach to the container until ctx ends, as pods/attach does (the runner's
// attach function); the container's stdin stays open when it does (no stdinOnce).
func (p *Pod) Attach(ctx context.Context, _ string, stdin io.Reader, stdout io.Writer) error {
	p.mu.Lock()
	p.outs[stdout] = true
	p.mu.Unlock()
	go func() {
		buf := make([]byte, 32<<10)
		for {
			n, err := stdin.Read(buf)
			if n > 0 {
				if _, werr := p.E.Stdin.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	<-ctx.Done()
	p.mu.Lock()
	delete(p.outs, stdout)
	p.mu.Unlock()
	return nil
}
