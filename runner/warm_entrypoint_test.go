package runner

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// warmEntrypoint starts sandbox/entrypoint.py in stdin mode (a warm pool Pod's) with the machine's
// python3, in a scratch directory standing in for the Pod's volumes.
type warmEntrypoint struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
	dir   string
	// waitOnce: the test and its cleanup both wait for the process; exec.Cmd allows one Wait.
	waitOnce sync.Once
	waitErr  error
}

// wait waits for the entrypoint to exit, once however many goroutines ask.
func (e *warmEntrypoint) wait() error {
	e.waitOnce.Do(func() { e.waitErr = e.cmd.Wait() })
	return e.waitErr
}

func startWarmEntrypoint(t *testing.T) *warmEntrypoint {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatal("python3 is required for this test (the sandbox image runs the same entrypoint)")
	}
	dir := t.TempDir()
	work := filepath.Join(dir, "workspace")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-I", "-S", "-c", entrypointPy)
	cmd.Env = []string{
		"GKEXEC_REQUEST=stdin",
		"GKEXEC_CODE=" + filepath.Join(dir, "code", "main.py"),
		"GKEXEC_WORKDIR=" + work,
		"GKEXEC_OUTPUT_DIR=" + filepath.Join(work, "output"),
		"HOME=" + dir, "TMPDIR=" + dir, "PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1",
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &warmEntrypoint{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), dir: dir}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = e.wait()
	})
	return e
}

// run sends a ping, then the request, and decodes what comes back.
func (e *warmEntrypoint) run(t *testing.T, o *Options, req Request) (Result, *decoder) {
	t.Helper()
	if _, err := io.WriteString(e.stdin, "P:\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := e.out.ReadString('\n'); err != nil || line != "P:\n" {
		t.Fatalf("ping answered %q, %v", line, err)
	}
	x := &execution{req: req, timeout: req.timeout(o)}
	if _, err := e.stdin.Write(encodeRequest(o, x)); err != nil {
		t.Fatal(err)
	}
	dec := newDecoder(o.MaxOutputBytes, o.MaxFileBytes)
	if err := dec.readFrom(e.out); err != nil {
		t.Fatal(err)
	}
	var res Result
	dec.apply(&res)
	return res, dec
}

func TestWarmEntrypointServesOneRequestFromStdin(t *testing.T) {
	t.Parallel()
	o := defaults(t, Options{})
	e := startWarmEntrypoint(t)
	code := `import os, sys
data = open("in/data.csv").read()
print("read", data, "argv", sys.argv[0].endswith("main.py"), "name", __name__, "file", __file__.endswith("main.py"))
print("to stderr", file=sys.stderr)
os.makedirs("output/sub", exist_ok=True)
open("output/sub/r.bin", "wb").write(bytes([0, 1, 255]))
sys.exit(4)
`
	res, dec := e.run(t, o, Request{Code: code, Files: map[string][]byte{"in/data.csv": []byte("a,b")}})
	if dec.end == nil {
		t.Fatal("no end record")
	}
	if got := string(res.Stdout); got != "read a,b argv True name __main__ file True\n" {
		t.Errorf("stdout %q", got)
	}
	if got := string(res.Stderr); got != "to stderr\n" {
		t.Errorf("stderr %q", got)
	}
	if res.ExitCode != 4 {
		t.Errorf("exit code %d, want 4", res.ExitCode)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "sub/r.bin" || !bytes.Equal(res.Files[0].Data, []byte{0, 1, 255}) {
		t.Errorf("files %+v", res.Files)
	}
	// Single use: after its one execution the entrypoint closes its streams and waits to be
	// deleted; it neither exits (its Pod would restart it) nor reads another request.
	if line, err := e.out.ReadString('\n'); err != io.EOF {
		t.Errorf("after the end record: %q, %v; want the stream closed", line, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- e.wait() }()
	select {
	case err := <-exited:
		t.Errorf("the entrypoint exited after its execution (%v); in a pool Pod it would restart and serve again", err)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestWarmEntrypointTracebackIsTheCodesOwn(t *testing.T) {
	t.Parallel()
	o := defaults(t, Options{})
	for name, tc := range map[string]struct{ code, want, absent string }{
		"exception": {"x = 1\nraise ValueError('boom')\n", `main.py", line 2, in <module>` + "\n    raise ValueError('boom')\nValueError: boom\n", "_main"},
		"syntax":    {"print(\n", "SyntaxError", "_main"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := startWarmEntrypoint(t)
			res, _ := e.run(t, o, Request{Code: tc.code})
			if res.ExitCode != 1 || !strings.Contains(string(res.Stderr), tc.want) || strings.Contains(string(res.Stderr), tc.absent) {
				t.Errorf("exit %d stderr:\n%s\nwant exit 1 with %q and no %q", res.ExitCode, res.Stderr, tc.want, tc.absent)
			}
		})
	}
}

func TestWarmEntrypointAppliesTheRequestsTimeoutAndCaps(t *testing.T) {
	t.Parallel()
	o := defaults(t, Options{MaxOutputBytes: 10})
	e := startWarmEntrypoint(t)
	res, _ := e.run(t, o, Request{Code: "import time\nprint('x' * 100, flush=True)\ntime.sleep(60)\n", Timeout: time.Second})
	if !res.TimedOut || string(res.Stdout) != strings.Repeat("x", 10) || !res.StdoutTruncated {
		t.Errorf("timed out %v stdout %q truncated %v; want killed at 1 s with stdout capped at 10 bytes", res.TimedOut, res.Stdout, res.StdoutTruncated)
	}
}

func TestWarmEntrypointRefusesAPathOutsideItsWorkdir(t *testing.T) {
	t.Parallel()
	o := defaults(t, Options{})
	e := startWarmEntrypoint(t)
	// The runner validates paths too; the entrypoint does not trust it.
	res, _ := e.run(t, o, Request{Code: "print(1)", Files: map[string][]byte{"../escape": []byte("x")}})
	if res.ExitCode != 125 || !strings.Contains(string(res.Stderr), "bad request") {
		t.Errorf("exit %d stderr %q, want 125 and a bad request", res.ExitCode, res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "escape")); err == nil {
		t.Error("the file was written outside the workdir")
	}
}

// sessionExec sends one request to a session entrypoint and decodes its records, from its begin
// record to its end record.
func (e *warmEntrypoint) sessionExec(t *testing.T, o *Options, req Request) (Result, *endRecord) {
	t.Helper()
	if req.ExecutionID == "" {
		req.ExecutionID = NewExecutionID()
	}
	x := &execution{req: req, timeout: req.timeout(o)}
	if _, err := e.stdin.Write(encodeSessionRequest(o, x)); err != nil {
		t.Fatal(err)
	}
	begin := string(beginLine(req.ExecutionID))
	for {
		line, err := e.out.ReadString('\n')
		if err != nil {
			t.Fatalf("before the begin record: %v", err)
		}
		if line == begin {
			break
		}
	}
	dec := newDecoder(o.MaxOutputBytes, o.MaxFileBytes)
	if err := dec.readFrom(e.out); err != nil || dec.end == nil {
		t.Fatalf("decode: %v (end record %v)", err, dec.end)
	}
	var res Result
	dec.apply(&res)
	return res, dec.end
}

func startSessionEntrypoint(t *testing.T, hello string) *warmEntrypoint {
	t.Helper()
	e := startWarmEntrypoint(t)
	if _, err := e.stdin.Write(frame('S', []byte(hello))); err != nil {
		t.Fatal(err)
	}
	if line, err := e.out.ReadString('\n'); err != nil || !strings.HasPrefix(line, "S:") {
		t.Fatalf("session opening answered %q, %v", line, err)
	}
	return e
}

func TestSessionEntrypointKeepsStateAcrossExecutions(t *testing.T) {
	t.Parallel()
	o := defaults(t, Options{})
	e := startSessionEntrypoint(t, `{"id":"s1"}`)
	if res, end := e.sessionExec(t, o, Request{Code: "import json\nx = 41\nopen('output/a.txt', 'w').write('a')\n"}); res.ExitCode != 0 || end.SessionOver != "" || len(res.Files) != 1 {
		t.Fatalf("first: exit %d over %q files %+v stderr %s", res.ExitCode, end.SessionOver, res.Files, res.Stderr)
	}
	res, _ := e.sessionExec(t, o, Request{Code: "x += 1\nprint(x, json.dumps([1]))\nopen('output/b.txt', 'w').write('b')\n"})
	if string(res.Stdout) != "42 [1]\n" {
		t.Errorf("second stdout %q stderr %q, want the first's variables and imports", res.Stdout, res.Stderr)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "b.txt" {
		t.Errorf("second files %+v, want only the file it wrote (b.txt)", res.Files)
	}
	// An exception is a result; the session goes on.
	res, end := e.sessionExec(t, o, Request{Code: "raise ValueError('boom')\n"})
	if res.ExitCode != 1 || end.SessionOver != "" || !strings.Contains(string(res.Stderr), "ValueError: boom") || strings.Contains(string(res.Stderr), "_session") {
		t.Errorf("exception: exit %d over %q stderr %s", res.ExitCode, end.SessionOver, res.Stderr)
	}
	res, _ = e.sessionExec(t, o, Request{Code: "import sys\nprint(x)\nsys.exit(3)\n"})
	if string(res.Stdout) != "42\n" || res.ExitCode != 3 {
		t.Errorf("after the exception: stdout %q exit %d, want 42 and sys.exit's 3", res.Stdout, res.ExitCode)
	}
	res, _ = e.sessionExec(t, o, Request{Code: "print(x)\n"})
	if string(res.Stdout) != "42\n" {
		t.Errorf("after sys.exit: stdout %q, want the session still there", res.Stdout)
	}
}

func TestSessionEntrypointInterruptsARunawayAndGoesOn(t *testing.T) {
	t.Parallel()
	o := defaults(t, Options{})
	e := startSessionEntrypoint(t, `{"id":"s2"}`)
	e.sessionExec(t, o, Request{Code: "y = 'kept'\n"})
	res, end := e.sessionExec(t, o, Request{Code: "while True:\n    pass\n", Timeout: time.Second})
	if !res.TimedOut || res.ExitCode != 130 || end.SessionOver != "" || !strings.Contains(string(res.Stderr), "KeyboardInterrupt") {
		t.Fatalf("runaway: timed out %v exit %d over %q stderr %s; want interrupted, session kept", res.TimedOut, res.ExitCode, end.SessionOver, res.Stderr)
	}
	if res, _ := e.sessionExec(t, o, Request{Code: "print(y)\n"}); string(res.Stdout) != "kept\n" {
		t.Errorf("after the interrupt: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	// Code that swallows KeyboardInterrupt cannot be recovered: the session ends.
	res, end = e.sessionExec(t, o, Request{Code: "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        print('swallowed', flush=True)\n", Timeout: time.Second})
	if !res.TimedOut || end.SessionOver == "" {
		t.Errorf("stubborn: timed out %v over %q exit %d stderr %s; want the session ended", res.TimedOut, end.SessionOver, res.ExitCode, res.Stderr)
	}
}

func TestSessionEntrypointEndsWhenIdle(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s3","idle_timeout_seconds":0.5,"exit_when_over":true}`)
	exited := make(chan error, 1)
	go func() { exited <- e.wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the idle session's entrypoint did not end within 30 s of its 0.5 s idle timeout")
	}
}

func TestSessionEntrypointAnswersPingsWithItsSession(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s4"}`)
	if _, err := io.WriteString(e.stdin, "P:\n"); err != nil {
		t.Fatal(err)
	}
	want := string(frame('P', []byte(`{"session":"s4"}`)))
	if line, err := e.out.ReadString('\n'); err != nil || line != want {
		t.Errorf("ping answered %q, %v; want %q", line, err, want)
	}
}
