package wire_test

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/internal/wire/wiretest"
)

// warmEntrypoint is the real entrypoint in stdin mode, with the executions it was sent.
type warmEntrypoint struct {
	*wiretest.Entrypoint
	executions int
}

func startWarmEntrypoint(t *testing.T) *warmEntrypoint {
	return &warmEntrypoint{Entrypoint: wiretest.Start(t)}
}

// withDefaults fills in the limits a runner with default options sends.
func withDefaults(req wire.Request) wire.Request {
	if req.Timeout == 0 {
		req.Timeout = 300 * time.Second
	}
	if req.MaxOutput == 0 {
		req.MaxOutput = 1 << 20
	}
	if req.MaxFile == 0 {
		req.MaxFile = 4 << 20
	}
	if req.MaxProcesses == 0 {
		req.MaxProcesses = 256
	}
	return req
}

// run sends a ping, then the request, and decodes what comes back.
func (e *warmEntrypoint) run(t *testing.T, req wire.Request) wire.Output {
	t.Helper()
	if _, err := io.WriteString(e.Stdin, "P:\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := e.Out.ReadString('\n'); err != nil || line != "P:\n" {
		t.Fatalf("ping answered %q, %v", line, err)
	}
	req = withDefaults(req)
	if _, err := e.Stdin.Write(req.Encode(false)); err != nil {
		t.Fatal(err)
	}
	dec := wire.NewDecoder(req.MaxOutput, req.MaxFile, nil)
	if err := dec.Decode(e.Out); err != nil || dec.End() == nil {
		t.Fatalf("decode: %v (end record %v)", err, dec.End())
	}
	return dec.Output()
}

func TestWarmEntrypointServesOneRequestFromStdin(t *testing.T) {
	t.Parallel()
	e := startWarmEntrypoint(t)
	code := `import os, sys
data = open("in/data.csv").read()
print("read", data, "argv", sys.argv[0].endswith("main.py"), "name", __name__, "file", __file__.endswith("main.py"))
print("to stderr", file=sys.stderr)
os.makedirs("output/sub", exist_ok=True)
open("output/sub/r.bin", "wb").write(bytes([0, 1, 255]))
sys.exit(4)
`
	res := e.run(t, wire.Request{Code: code, Files: map[string][]byte{"in/data.csv": []byte("a,b")}})
	if got := string(res.Stdout); got != "read a,b argv True name __main__ file True\n" {
		t.Errorf("stdout %q", got)
	}
	if got := string(res.Stderr); got != "to stderr\n" {
		t.Errorf("stderr %q", got)
	}
	if res.End.ExitCode != 4 {
		t.Errorf("exit code %d, want 4", res.End.ExitCode)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "sub/r.bin" || !bytes.Equal(res.Files[0].Data, []byte{0, 1, 255}) {
		t.Errorf("files %+v", res.Files)
	}
	// Single use: after its one execution the entrypoint closes its streams and waits to be
	// deleted; it neither exits (its Pod would restart it) nor reads another request.
	if line, err := e.Out.ReadString('\n'); err != io.EOF {
		t.Errorf("after the end record: %q, %v; want the stream closed", line, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- e.Wait() }()
	select {
	case err := <-exited:
		t.Errorf("the entrypoint exited after its execution (%v); in a pool Pod it would restart and serve again", err)
	case <-time.After(500 * time.Millisecond):
	}
}

func TestWarmEntrypointTracebackIsTheCodesOwn(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ code, want, absent string }{
		"exception": {"x = 1\nraise ValueError('boom')\n", `main.py", line 2, in <module>` + "\n    raise ValueError('boom')\nValueError: boom\n", "_main"},
		"syntax":    {"print(\n", "SyntaxError", "_main"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := startWarmEntrypoint(t)
			res := e.run(t, wire.Request{Code: tc.code})
			if res.End.ExitCode != 1 || !strings.Contains(string(res.Stderr), tc.want) || strings.Contains(string(res.Stderr), tc.absent) {
				t.Errorf("exit %d stderr:\n%s\nwant exit 1 with %q and no %q", res.End.ExitCode, res.Stderr, tc.want, tc.absent)
			}
		})
	}
}

func TestWarmEntrypointAppliesTheRequestsTimeoutAndCaps(t *testing.T) {
	t.Parallel()
	e := startWarmEntrypoint(t)
	res := e.run(t, wire.Request{Code: "import time\nprint('x' * 100, flush=True)\ntime.sleep(60)\n", Timeout: 3 * time.Second, MaxOutput: 10})
	if !res.End.TimedOut || string(res.Stdout) != strings.Repeat("x", 10) || !res.StdoutTruncated {
		t.Errorf("timed out %v stdout %q truncated %v; want killed at 3 s with stdout capped at 10 bytes", res.End.TimedOut, res.Stdout, res.StdoutTruncated)
	}
}

func TestWarmEntrypointRefusesAPathOutsideItsWorkdir(t *testing.T) {
	t.Parallel()
	e := startWarmEntrypoint(t)
	// The runner validates paths too; the entrypoint does not trust it.
	res := e.run(t, wire.Request{Code: "print(1)", Files: map[string][]byte{"../escape": []byte("x")}})
	if res.End.ExitCode != 125 || !strings.Contains(string(res.Stderr), "bad request") {
		t.Errorf("exit %d stderr %q, want 125 and a bad request", res.End.ExitCode, res.Stderr)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "escape")); err == nil {
		t.Error("the file was written outside the workdir")
	}
}

// sessionExec sends one request to a session entrypoint and decodes its records, from its begin
// record to its end record.
func (e *warmEntrypoint) sessionExec(t *testing.T, req wire.Request) (wire.Output, *wire.End) {
	t.Helper()
	if req.ExecutionID == "" {
		e.executions++
		req.ExecutionID = fmt.Sprintf("e%d", e.executions)
	}
	req = withDefaults(req)
	if _, err := e.Stdin.Write(req.Encode(true)); err != nil {
		t.Fatal(err)
	}
	begin := string(wire.Begin(req.ExecutionID))
	for {
		line, err := e.Out.ReadString('\n')
		if err != nil {
			t.Fatalf("before the begin record: %v", err)
		}
		if line == begin {
			break
		}
	}
	dec := wire.NewDecoder(req.MaxOutput, req.MaxFile, nil)
	if err := dec.Decode(e.Out); err != nil || dec.End() == nil {
		t.Fatalf("decode: %v (end record %v)", err, dec.End())
	}
	return dec.Output(), dec.End()
}

func startSessionEntrypoint(t *testing.T, hello string) *warmEntrypoint {
	t.Helper()
	e := startWarmEntrypoint(t)
	if _, err := e.Stdin.Write(wire.Frame(wire.TagSession, []byte(hello))); err != nil {
		t.Fatal(err)
	}
	if line, err := e.Out.ReadString('\n'); err != nil || !strings.HasPrefix(line, "S:") {
		t.Fatalf("session opening answered %q, %v", line, err)
	}
	return e
}

func TestSessionEntrypointKeepsStateAcrossExecutions(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s1"}`)
	if res, end := e.sessionExec(t, wire.Request{Code: "import json\nx = 41\nopen('output/a.txt', 'w').write('a')\n"}); res.End.ExitCode != 0 || end.SessionOver != "" || len(res.Files) != 1 {
		t.Fatalf("first: exit %d over %q files %+v stderr %s", res.End.ExitCode, end.SessionOver, res.Files, res.Stderr)
	}
	res, _ := e.sessionExec(t, wire.Request{Code: "x += 1\nprint(x, json.dumps([1]))\nopen('output/b.txt', 'w').write('b')\n"})
	if string(res.Stdout) != "42 [1]\n" {
		t.Errorf("second stdout %q stderr %q, want the first's variables and imports", res.Stdout, res.Stderr)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "b.txt" {
		t.Errorf("second files %+v, want only the file it wrote (b.txt)", res.Files)
	}
	// An exception is a result; the session goes on.
	res, end := e.sessionExec(t, wire.Request{Code: "raise ValueError('boom')\n"})
	if res.End.ExitCode != 1 || end.SessionOver != "" || !strings.Contains(string(res.Stderr), "ValueError: boom") || strings.Contains(string(res.Stderr), "_session") {
		t.Errorf("exception: exit %d over %q stderr %s", res.End.ExitCode, end.SessionOver, res.Stderr)
	}
	res, _ = e.sessionExec(t, wire.Request{Code: "import sys\nprint(x)\nsys.exit(3)\n"})
	if string(res.Stdout) != "42\n" || res.End.ExitCode != 3 {
		t.Errorf("after the exception: stdout %q exit %d, want 42 and sys.exit's 3", res.Stdout, res.End.ExitCode)
	}
	res, _ = e.sessionExec(t, wire.Request{Code: "print(x)\n"})
	if string(res.Stdout) != "42\n" {
		t.Errorf("after sys.exit: stdout %q, want the session still there", res.Stdout)
	}
}

func TestSessionEntrypointInterruptsARunawayAndGoesOn(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s2"}`)
	e.sessionExec(t, wire.Request{Code: "y = 'kept'\n"})
	res, end := e.sessionExec(t, wire.Request{Code: "while True:\n    pass\n", Timeout: time.Second})
	if !res.End.TimedOut || res.End.ExitCode != 130 || end.SessionOver != "" || !strings.Contains(string(res.Stderr), "KeyboardInterrupt") {
		t.Fatalf("runaway: timed out %v exit %d over %q stderr %s; want interrupted, session kept", res.End.TimedOut, res.End.ExitCode, end.SessionOver, res.Stderr)
	}
	if res, _ := e.sessionExec(t, wire.Request{Code: "print(y)\n"}); string(res.Stdout) != "kept\n" {
		t.Errorf("after the interrupt: stdout %q stderr %q", res.Stdout, res.Stderr)
	}
	// Code that swallows KeyboardInterrupt cannot be recovered: the session ends.
	res, end = e.sessionExec(t, wire.Request{Code: "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except KeyboardInterrupt:\n        print('swallowed', flush=True)\n", Timeout: time.Second})
	if !res.End.TimedOut || end.SessionOver == "" {
		t.Errorf("stubborn: timed out %v over %q exit %d stderr %s; want the session ended", res.End.TimedOut, end.SessionOver, res.End.ExitCode, res.Stderr)
	}
}

func TestSessionEntrypointEndsWhenIdle(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s3","idle_timeout_seconds":0.5,"exit_when_over":true}`)
	exited := make(chan error, 1)
	go func() { exited <- e.Wait() }()
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
	if _, err := io.WriteString(e.Stdin, "P:\n"); err != nil {
		t.Fatal(err)
	}
	line, err := e.Out.ReadString('\n')
	answer, ok := wire.ParsePing([]byte(line))
	if err != nil || !ok || answer.Session != "s4" || answer.Running != "" {
		t.Errorf("ping answered %q (%+v), %v; want session s4, nothing running", line, answer, err)
	}
}

// P1: a request the session's sandbox cannot run (an input through a file the session made) is
// refused within its own begin and end records, and the session goes on.
func TestSessionEntrypointRefusesABadRequestAndGoesOn(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s5"}`)
	e.sessionExec(t, wire.Request{Code: "open('data', 'w').write('x')\nkept = 1\n"})
	res, end := e.sessionExec(t, wire.Request{Code: "print(kept)", Files: map[string][]byte{"data/in.csv": []byte("a"), "z.txt": []byte("z")}})
	if end.Refused == "" || end.ExitCode != 125 || end.SessionOver != "" || !strings.Contains(string(res.Stderr), "bad request") {
		t.Fatalf("refused %q exit %d over %q stderr %q; want a refusal, the session going on", end.Refused, end.ExitCode, end.SessionOver, res.Stderr)
	}
	if res, _ := e.sessionExec(t, wire.Request{Code: "print(kept)"}); string(res.Stdout) != "1\n" {
		t.Errorf("after the refusal: stdout %q stderr %q, want the session's state", res.Stdout, res.Stderr)
	}
}

// P10: a session's timeout stops every process the code started, in its own session or not; the
// interpreter and its state stay.
func TestSessionEntrypointTimeoutStopsTheCodesProcesses(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s6"}`)
	code := "import subprocess, sys, time\n" +
		"kids = [subprocess.Popen(['sleep', '600']), subprocess.Popen(['sleep', '600'], start_new_session=True)]\n" +
		"print(*[k.pid for k in kids], flush=True)\n" +
		"try:\n" +
		"    while True: time.sleep(0.1)\n" +
		"except KeyboardInterrupt:\n" + // a process started after the timeout's first sweep
		"    kids.append(subprocess.Popen(['sleep', '600'], start_new_session=True))\n" +
		"    print(kids[-1].pid, flush=True)\n" +
		"    raise\n"
	res, end := e.sessionExec(t, wire.Request{Code: code, Timeout: time.Second})
	if !end.TimedOut || end.SessionOver != "" {
		t.Fatalf("timed out %v over %q stderr %s; want interrupted, the session kept", end.TimedOut, end.SessionOver, res.Stderr)
	}
	pids := strings.Fields(string(res.Stdout))
	if len(pids) != 3 {
		t.Fatalf("stdout %q, want three pids", res.Stdout)
	}
	// A killed child may still be dying when the check runs: wait for its end, with a deadline.
	check := "for p in kids:\n    try:\n        p.wait(timeout=10)\n        print('gone', p.pid)\n    except subprocess.TimeoutExpired:\n        print('alive', p.pid)\n"
	if res, _ := e.sessionExec(t, wire.Request{Code: check}); strings.Contains(string(res.Stdout), "alive") || !strings.Contains(string(res.Stdout), "gone") {
		t.Errorf("after the timeout: %q (stderr %q); want every child gone", res.Stdout, res.Stderr)
	}
}

// A runner whose attach broke asks for an execution's records again: they come, from its begin
// record to its end record, before the ping's answer; a ping says what runs.
func TestSessionEntrypointReplaysAnExecutionAndSaysWhatRuns(t *testing.T) {
	t.Parallel()
	e := startSessionEntrypoint(t, `{"id":"s7"}`)
	first, _ := e.sessionExec(t, wire.Request{Code: "print('once')", ExecutionID: "e-1"})
	if string(first.Stdout) != "once\n" {
		t.Fatalf("stdout %q", first.Stdout)
	}
	if _, err := e.Stdin.Write(wire.PingWith(wire.PingRequest{Replay: "e-1"})); err != nil {
		t.Fatal(err)
	}
	begin, _ := e.Out.ReadString('\n')
	if begin != string(wire.Begin("e-1")) {
		t.Fatalf("replay began with %q, want e-1's begin record", begin)
	}
	var replayed bytes.Buffer
	for !wire.TagEnd.Starts(replayed.Bytes()[bytes.LastIndexByte(replayed.Bytes()[:max(replayed.Len()-1, 0)], '\n')+1:]) {
		line, err := e.Out.ReadBytes('\n')
		if err != nil {
			t.Fatalf("replay: %v after %q", err, replayed.Bytes())
		}
		replayed.Write(line)
	}
	dec := wire.NewDecoder(1<<20, 4<<20, nil)
	if err := dec.Decode(&replayed); err != nil || dec.End() == nil || string(dec.Output().Stdout) != "once\n" {
		t.Fatalf("replayed: %v end %v stdout %q", err, dec.End(), dec.Output().Stdout)
	}
	if line, _ := e.Out.ReadString('\n'); !wire.TagPing.Starts([]byte(line)) {
		t.Errorf("after the replay %q, want the ping's answer", line)
	}
	// While an execution runs, a ping names it.
	if _, err := e.Stdin.Write(wire.Request{ExecutionID: "e-2", Code: "import time\ntime.sleep(2)", Timeout: time.Minute, MaxOutput: 1 << 20, MaxFile: 1 << 20}.Encode(true)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Stdin.Write(wire.Ping); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := e.Out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if answer, ok := wire.ParsePing([]byte(line)); ok {
			if answer.Running != "e-2" {
				t.Errorf("a ping during e-2 answered %+v, want running e-2", answer)
			}
			break
		}
	}
}

// A sandbox held ready leaves when its runner's keepalive pings stop, and is spent.
func TestHeldSandboxLeavesWhenItsKeepalivesStop(t *testing.T) {
	t.Parallel()
	e := startWarmEntrypoint(t)
	if _, err := e.Stdin.Write(wire.PingWith(wire.PingRequest{KeepaliveSeconds: 0.5})); err != nil {
		t.Fatal(err)
	}
	if line, err := e.Out.ReadString('\n'); err != nil || line != "P:\n" {
		t.Fatalf("ping answered %q, %v", line, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- e.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held sandbox did not leave within 30 s of its last keepalive")
	}
	if _, err := os.Stat(filepath.Join(e.Dir, ".gkexec-spent")); err != nil {
		t.Errorf("no spent marker: %v; its restarted container would serve", err)
	}
}

// A used one-shot sandbox whose runner never deletes its Pod leaves after LINGER, spent.
func TestUsedSandboxLeavesWhenNobodyDeletesIt(t *testing.T) {
	t.Parallel()
	e := &warmEntrypoint{Entrypoint: wiretest.Start(t, "GKEXEC_LINGER_SECONDS=1")}
	res := e.run(t, wire.Request{Code: "print(1)"})
	if string(res.Stdout) != "1\n" {
		t.Fatalf("stdout %q", res.Stdout)
	}
	exited := make(chan error, 1)
	go func() { exited <- e.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit: %v, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the used sandbox did not leave within 30 s of its 1 s linger")
	}
	if _, err := os.Stat(filepath.Join(e.Dir, ".gkexec-spent")); err != nil {
		t.Errorf("no spent marker: %v", err)
	}
}

// Every language runs one-shot in a warm sandbox with the same guarantees: streams apart, the exit
// code, output files, the timeout.
func TestWarmEntrypointRunsEveryLanguage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lang, code, stdout string
		exit               int
	}{
		{"bash", "echo out; echo err >&2; mkdir -p output; printf x > output/f.txt; exit 3", "out\n", 3},
		{"javascript", "console.log('out'); console.error('err'); require('fs').mkdirSync('output', {recursive: true}); require('fs').writeFileSync('output/f.txt', 'x'); process.exit(3)", "out\n", 3},
		{"python", "import os, sys\nprint('out'); print('err', file=sys.stderr)\nos.makedirs('output', exist_ok=True); open('output/f.txt', 'w').write('x'); sys.exit(3)", "out\n", 3},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			e := startWarmEntrypoint(t)
			res := e.run(t, wire.Request{Code: tc.code, Language: tc.lang})
			if string(res.Stdout) != tc.stdout || string(res.Stderr) != "err\n" || res.End.ExitCode != tc.exit ||
				len(res.Files) != 1 || string(res.Files[0].Data) != "x" {
				t.Errorf("stdout %q stderr %q exit %d files %+v", res.Stdout, res.Stderr, res.End.ExitCode, res.Files)
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		e := startWarmEntrypoint(t)
		res := e.run(t, wire.Request{Code: "echo started; sleep 60 & wait", Language: "bash", Timeout: time.Second})
		if !res.End.TimedOut || string(res.Stdout) != "started\n" {
			t.Errorf("timed out %v stdout %q", res.End.TimedOut, res.Stdout)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		e := startWarmEntrypoint(t)
		res := e.run(t, wire.Request{Code: "x", Language: "cobol"})
		if res.End.Refused == "" || res.End.ExitCode != 125 {
			t.Errorf("refused %q exit %d, want a refusal", res.End.Refused, res.End.ExitCode)
		}
	})
}

// A bash session keeps its working directory, variables and functions; a Node.js session its
// variables (let included) and functions; both go on after an error and after an interrupted
// runaway; a request in another language is refused.
func TestSessionEntrypointKeepsStateInEveryLanguage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lang                 string
		set, use, fail, loop string
		want                 string
	}{
		{"bash", "mkdir -p sub; cd sub; x=41; f() { echo \"f $1\"; }; export Y=env", "x=$((x+1)); echo $x $(basename $PWD) $Y; f ok", "false", "while true; do :; done", "42 sub env\nf ok\n"},
		{"javascript", "let x = 41; function f(a) { return 'f ' + a }", "x += 1; console.log(x); console.log(f('ok'))", "throw new Error('boom')", "while (true) {}", "42\nf ok\n"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			e := startSessionEntrypoint(t, `{"id":"l-`+tc.lang+`","language":"`+tc.lang+`"}`)
			if res, end := e.sessionExec(t, wire.Request{Code: tc.set, Language: tc.lang}); end.ExitCode != 0 || end.SessionOver != "" {
				t.Fatalf("set: exit %d over %q stderr %s", end.ExitCode, end.SessionOver, res.Stderr)
			}
			if res, end := e.sessionExec(t, wire.Request{Code: tc.fail, Language: tc.lang}); end.ExitCode == 0 || end.SessionOver != "" {
				t.Fatalf("fail: exit %d over %q stderr %s; want a failure, the session going on", end.ExitCode, end.SessionOver, res.Stderr)
			}
			if res, end := e.sessionExec(t, wire.Request{Code: tc.loop, Language: tc.lang, Timeout: time.Second}); !end.TimedOut || end.SessionOver != "" {
				t.Fatalf("runaway: timed out %v over %q stderr %s; want interrupted, the session going on", end.TimedOut, end.SessionOver, res.Stderr)
			}
			if res, end := e.sessionExec(t, wire.Request{Code: tc.use, Language: tc.lang}); string(res.Stdout) != tc.want || end.ExitCode != 0 {
				t.Errorf("use: stdout %q exit %d stderr %s; want %q", res.Stdout, end.ExitCode, res.Stderr, tc.want)
			}
			if _, end := e.sessionExec(t, wire.Request{Code: "print(1)", Language: "python"}); end.Refused == "" || end.SessionOver != "" {
				t.Errorf("a python request in a %s session: refused %q over %q", tc.lang, end.Refused, end.SessionOver)
			}
		})
	}
}

// An image without a language's interpreter refuses its code, one-shot and at a session's
// opening, saying which program is missing; nothing runs.
func TestEntrypointRefusesALanguageItsImageLacks(t *testing.T) {
	t.Parallel()
	bashOnly := t.TempDir() // a PATH with bash and no node
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bash, filepath.Join(bashOnly, "bash")); err != nil {
		t.Fatal(err)
	}
	t.Run("one-shot", func(t *testing.T) {
		t.Parallel()
		e := &warmEntrypoint{Entrypoint: wiretest.Start(t, "PATH="+bashOnly)}
		res := e.run(t, wire.Request{Code: "console.log('ran')", Language: "javascript"})
		if !strings.Contains(res.End.Refused, "no node on its PATH") || res.End.ExitCode != 125 || len(res.Stdout) != 0 {
			t.Errorf("refused %q exit %d stdout %q; want a refusal naming node", res.End.Refused, res.End.ExitCode, res.Stdout)
		}
	})
	t.Run("session", func(t *testing.T) {
		t.Parallel()
		e := &warmEntrypoint{Entrypoint: wiretest.Start(t, "PATH="+bashOnly)}
		if _, err := e.Stdin.Write(wire.Frame(wire.TagSession, []byte(`{"id":"n1","language":"javascript"}`))); err != nil {
			t.Fatal(err)
		}
		line, err := e.Out.ReadString('\n')
		opened, ok := wire.ParseOpened([]byte(line))
		if err != nil || !ok || opened.Session != "n1" || !strings.Contains(opened.Refused, "no node on its PATH") {
			t.Fatalf("session opening answered %q (%+v), %v; want a refusal naming node", line, opened, err)
		}
		if rest, err := io.ReadAll(e.Out); len(rest) != 0 || err != nil {
			t.Errorf("after the refusal: %q, %v; want the stream closed", rest, err)
		}
	})
}

// debianPython is the interpreter the sandbox image has, with Debian's matplotlib
// (hack/install-prereqs.sh installs it).
func debianPython(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if err := exec.Command(python, "-c", "import matplotlib").Run(); err != nil {
		t.Fatalf("%s with matplotlib is required for this test (hack/install-prereqs.sh installs python3-matplotlib): %v", python, err)
	}
	return python
}

func isPNG(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }

// Every matplotlib figure left open at the end of an execution comes back as a PNG output file,
// plt.show() included and without its warning; a file the code wrote under a figure's name is
// kept, and the figure takes another; figures come back after an error too.
func TestEntrypointReturnsTheFiguresLeftOpen(t *testing.T) {
	t.Parallel()
	e := &warmEntrypoint{Entrypoint: wiretest.StartWith(t, debianPython(t))}
	code := "import os, matplotlib.pyplot as plt\n" +
		"plt.plot([1, 2, 3]); plt.show()\n" +
		"plt.figure(); plt.bar([1], [2])\n" +
		"closed = plt.figure(); plt.close(closed)\n" +
		"os.makedirs('output', exist_ok=True); open('output/figure-1.png', 'w').write('mine')\n" +
		"raise ValueError('after the plots')\n"
	res := e.run(t, wire.Request{Code: code})
	files := map[string][]byte{}
	for _, f := range res.Files {
		files[f.Path] = f.Data
	}
	if string(files["figure-1.png"]) != "mine" || !isPNG(files["figure-1-2.png"]) || !isPNG(files["figure-2.png"]) || len(files) != 3 {
		names := slices.Sorted(maps.Keys(files))
		t.Errorf("files %v; want the code's figure-1.png, and figures 1 and 2 as PNGs", names)
	}
	if res.End.ExitCode != 1 || !strings.Contains(string(res.Stderr), "ValueError: after the plots") || strings.Contains(string(res.Stderr), "cannot be shown") {
		t.Errorf("exit %d stderr %q; want the code's error and nothing about show()", res.End.ExitCode, res.Stderr)
	}
}

// In a session each execution returns the figures it left open (and closes them): none when it
// drew nothing, its own when it drew again.
func TestSessionEntrypointReturnsEachExecutionsFigures(t *testing.T) {
	t.Parallel()
	e := &warmEntrypoint{Entrypoint: wiretest.StartWith(t, debianPython(t))}
	if _, err := e.Stdin.Write(wire.Frame(wire.TagSession, []byte(`{"id":"fig"}`))); err != nil {
		t.Fatal(err)
	}
	if line, err := e.Out.ReadString('\n'); err != nil || !strings.HasPrefix(line, "S:") {
		t.Fatalf("session opening answered %q, %v", line, err)
	}
	draw := "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"
	for i, tc := range []struct {
		code  string
		files int
	}{{draw, 1}, {"x = 1", 0}, {draw, 1}} {
		res, end := e.sessionExec(t, wire.Request{Code: tc.code})
		if end.ExitCode != 0 || len(res.Files) != tc.files || (tc.files == 1 && (res.Files[0].Path != "figure-1.png" || !isPNG(res.Files[0].Data))) {
			t.Errorf("execution %d: exit %d files %d (%+v) stderr %q; want %d figure", i+1, end.ExitCode, len(res.Files), res.Files, res.Stderr, tc.files)
		}
	}
}

// runCold runs the entrypoint as a Job's container runs it: the code (and inputs) in files a
// ConfigMap would mount, the result on stdout, then it exits.
func runCold(t *testing.T, python, lang, code string) wire.Output {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "code", wire.CodeFile(lang))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "workspace")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, "-I", "-S", "-c", wire.Entrypoint)
	cmd.Env = []string{"GKEXEC_REQUEST=configmap", "GKEXEC_CODE=" + file, "GKEXEC_INPUTS=" + filepath.Join(dir, "code", "inputs"),
		"GKEXEC_LANGUAGE=" + lang, "GKEXEC_WORKDIR=" + work, "GKEXEC_OUTPUT_DIR=" + filepath.Join(work, "output"),
		"HOME=" + dir, "TMPDIR=" + dir, "PATH=" + os.Getenv("PATH")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("the entrypoint: %v; stderr %s", err, stderr.Bytes())
	}
	dec := wire.NewDecoder(1<<20, 4<<20, nil)
	if err := dec.Decode(bytes.NewReader(out)); err != nil || dec.End() == nil {
		t.Fatalf("decode: %v (end record %v)", err, dec.End())
	}
	return dec.Output()
}

// A Job's sandbox runs Python as a warm one does (its traceback the code's own, its figures
// returned), and the other languages by their interpreter.
func TestColdEntrypointRunsEveryLanguageAsAWarmOneDoes(t *testing.T) {
	t.Parallel()
	python := debianPython(t)
	res := runCold(t, python, "python", "import sys, matplotlib.pyplot as plt\nplt.plot([1])\nprint('hi', sys.argv[0].endswith('main.py'))\n1/0\n")
	tb := string(res.Stderr)
	if string(res.Stdout) != "hi True\n" || res.End.ExitCode != 1 || !strings.HasPrefix(tb, "Traceback (most recent call last):\n  File \"") ||
		strings.Contains(tb, "<string>") || !strings.Contains(tb, "ZeroDivisionError") {
		t.Errorf("python: stdout %q exit %d stderr %q; want the code's own traceback", res.Stdout, res.End.ExitCode, tb)
	}
	if len(res.Files) != 1 || res.Files[0].Path != "figure-1.png" || !isPNG(res.Files[0].Data) {
		t.Errorf("python: files %+v, want the figure", res.Files)
	}
	if res := runCold(t, python, "bash", "echo $((6 * 7)); exit 4"); string(res.Stdout) != "42\n" || res.End.ExitCode != 4 {
		t.Errorf("bash: stdout %q exit %d stderr %q", res.Stdout, res.End.ExitCode, res.Stderr)
	}
	if res := runCold(t, python, "javascript", "console.log(6 * 7)"); string(res.Stdout) != "42\n" || res.End.ExitCode != 0 {
		t.Errorf("javascript: stdout %q exit %d stderr %q", res.Stdout, res.End.ExitCode, res.Stderr)
	}
}

// processGone: pid stops running (it does not exist, or it is a zombie nobody reaped yet) within
// 10 s: a process killed just before the result came may still be dying.
func processGone(pid string) bool {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return true
		}
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && len(stat) > i+2 && stat[i+2] == 'Z' {
			return true
		}
	}
	return false
}

// A one-shot run ends every process the code started, in a session of its own or not: at the
// timeout, and when the code exits leaving a daemon behind; warm and cold.
func TestOneShotEndsEveryProcessTheCodeStarted(t *testing.T) {
	t.Parallel()
	spawn := "import subprocess\n" +
		"kid = subprocess.Popen(['sleep', '600'], start_new_session=True, stdout=subprocess.DEVNULL)\n" +
		"print(kid.pid, flush=True)\n"
	for _, tc := range []struct {
		name, code string
		timeout    time.Duration
	}{
		{"timeout", spawn + "import time\nwhile True: time.sleep(0.1)\n", 3 * time.Second}, // room for a loaded machine to start it
		{"exit", spawn, 0},
	} {
		t.Run("warm_"+tc.name, func(t *testing.T) {
			t.Parallel()
			res := startWarmEntrypoint(t).run(t, wire.Request{Code: tc.code, Timeout: tc.timeout})
			pid := strings.TrimSpace(string(res.Stdout))
			if pid == "" || res.End.TimedOut != (tc.timeout > 0) || !processGone(pid) {
				t.Errorf("stdout %q timed out %v: the code's process %s outlived the run", res.Stdout, res.End.TimedOut, pid)
			}
		})
	}
	t.Run("cold_exit", func(t *testing.T) {
		t.Parallel()
		res := runCold(t, debianPython(t), "python", spawn)
		if pid := strings.TrimSpace(string(res.Stdout)); pid == "" || !processGone(pid) {
			t.Errorf("stdout %q: the code's process %s outlived the run", res.Stdout, pid)
		}
	})
}
