//go:build integration

package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// testLanguages: bash and JavaScript get Python's guarantees in the real sandbox — streams apart,
// exit codes, output files, a timeout that kills what the code started, warm and cold, sessions
// that keep their state — and the CLI picks the language from the file's extension.
func testLanguages(t *testing.T, tg *target) {
	tg.waitPoolReady(t, warmPoolReplicas)
	warm := tg.options()
	warm.WarmPoolReady = -1
	cold := warm
	cold.WarmPool = "no-such-pool" // nothing matches: a Job of its own
	programs := map[string]string{
		"bash": "echo out; echo err >&2; mkdir -p output; uname -s > output/kernel.txt; " +
			"dmesg 2>/dev/null | grep -qi gvisor && echo gvisor; exit 3",
		"javascript": "const fs = require('fs'); console.log('out'); console.error('err'); " +
			"fs.mkdirSync('output', {recursive: true}); fs.writeFileSync('output/kernel.txt', require('os').type() + '\\n'); " +
			"const boot = require('child_process').spawnSync('dmesg').stdout || ''; if (/gvisor/i.test(boot)) console.log('gvisor'); process.exit(3)",
	}
	for _, lang := range []string{"bash", "javascript"} {
		for name, opts := range map[string]runner.Options{"warm": warm, "cold": cold} {
			tg.step(t, lang+"_"+name, func(t *testing.T) {
				r := tg.newRunner(t, opts)
				res, err := r.Execute(context.Background(), runner.Request{Code: programs[lang], Language: lang, ExecutionID: executionID(lang[:2] + name)})
				if err != nil {
					t.Fatal(err)
				}
				if res.Sandbox != map[string]string{"warm": runner.SandboxWarm, "cold": runner.SandboxCold}[name] {
					t.Errorf("sandbox %s, want %s", res.Sandbox, name)
				}
				wantResult(t, res, 3, "out\ngvisor\n", "err\n")
				if len(res.Files) != 1 || res.Files[0].Path != "kernel.txt" || string(res.Files[0].Data) != "Linux\n" {
					t.Errorf("files %+v, want output/kernel.txt", res.Files)
				}
				// The timeout ends the code and every process it started.
				res, err = r.Execute(context.Background(), runner.Request{Language: lang, Timeout: 3 * time.Second,
					Code: map[string]string{"bash": "echo started; (sleep 600 &); sleep 600 & wait",
						"javascript": "console.log('started'); require('child_process').spawn('sleep', ['600'], {detached: true}); setInterval(() => {}, 1000)"}[lang]})
				if !errors.Is(err, runner.ErrTimeout) || !res.TimedOut || string(res.Stdout) != "started\n" {
					t.Errorf("runaway: %v timed out %v stdout %q", err, res.TimedOut, res.Stdout)
				}
			})
		}
	}

	tg.step(t, "sessions", func(t *testing.T) {
		r := tg.newRunner(t, warm)
		sh := openSession(t, r, runner.SessionOptions{ID: executionID("sh"), Language: "bash"})
		js := openSession(t, r, runner.SessionOptions{ID: executionID("js"), Language: "javascript"})
		sessionExec(t, sh, "mkdir -p sub && cd sub; n=41; greet() { echo \"hi $1\"; }; export FROM=env", 0, "")
		sessionExec(t, sh, "false", 1, "")
		sessionExec(t, sh, "n=$((n + 1)); echo $n $(basename \"$PWD\") $FROM; greet there", 0, "42 sub env\nhi there\n")
		sessionExec(t, js, "let n = 41; function greet(w) { return 'hi ' + w }", 0, "")
		sessionExec(t, js, "throw new Error('boom')", 1, "")
		res, err := js.Execute(context.Background(), runner.Request{Code: "while (true) {}", Timeout: 2 * time.Second})
		if !errors.Is(err, runner.ErrTimeout) || errors.Is(err, runner.ErrSessionEnded) {
			t.Errorf("javascript runaway: %v (timed out %v); want ErrTimeout with the session kept", err, res.TimedOut)
		}
		sessionExec(t, js, "n += 1; console.log(n, greet('there'))", 0, "42 hi there\n")
		if _, err := sh.Execute(context.Background(), runner.Request{Code: "print(1)", Language: "python"}); !errors.Is(err, runner.ErrInvalidRequest) {
			t.Errorf("python in a bash session: %v, want ErrInvalidRequest", err)
		}
		sessionExec(t, sh, "echo $n", 0, "42\n")
	})

	tg.step(t, "cli_by_extension", func(t *testing.T) {
		dir := t.TempDir()
		script := filepath.Join(dir, "count.sh")
		writeFile(t, script, []byte("for i in 1 2 3; do echo $i; done\n"))
		res := tg.gkexec(t, 3*time.Minute, nil, "run", script)
		wantCLI(t, res, 0, "1\n2\n3\n", "")
		res = tg.gkexec(t, 3*time.Minute, nil, "run", "-l", "javascript", "-c", "console.log([1, 2, 3].map(x => x * 2).join(' '))")
		wantCLI(t, res, 0, "2 4 6\n", "")
		if res := tg.gkexec(t, time.Minute, nil, "run", "-l", "cobol", "-c", "x"); res.exitCode != 2 || !strings.Contains(string(res.stderr), "bash, javascript, python") {
			t.Errorf("an unknown language: %s; want a usage error", res)
		}
	})
}

// envDatascienceImage names the optional image with matplotlib, which test/run.sh builds, imports
// and names here (so `make test` runs the figures stage); without it the stage is skipped, and the
// entrypoint's own tests (which run Debian's matplotlib on the host) are all that prove figures.
const envDatascienceImage = "GKEXEC_E2E_DATASCIENCE_IMAGE"

// testFigures: on an image with matplotlib, the figures Python code leaves open come back as PNG
// files from the real sandbox, one-shot and in a session.
func testFigures(t *testing.T, tg *target) {
	image := os.Getenv(envDatascienceImage)
	if image == "" {
		t.Skipf("%s is empty or not set: test/run.sh (make test, make e2e, make test-figures) builds the image and sets it", envDatascienceImage)
	}
	opts := tg.options()
	opts.WarmPoolReady = -1
	opts.WarmPool = "no-such-pool" // the pool runs the default image
	opts.Image = image
	plot := "import numpy as np, pandas as pd, matplotlib.pyplot as plt\n" +
		"df = pd.DataFrame({'x': np.arange(10), 'y': np.arange(10) ** 2})\n" +
		"df.plot(x='x', y='y'); plt.figure(); plt.hist(np.random.default_rng(1).normal(size=500)); plt.show()\n" +
		"print(len(df))\n"
	isPNG := func(f runner.File) bool { return bytes.HasPrefix(f.Data, []byte("\x89PNG\r\n\x1a\n")) }
	tg.step(t, "one_shot", func(t *testing.T) {
		r := tg.newRunner(t, opts)
		res, err := r.Execute(context.Background(), runner.Request{Code: plot, ExecutionID: executionID("fig")})
		if err != nil {
			t.Fatal(err)
		}
		wantResult(t, res, 0, "10\n", "")
		if len(res.Files) != 2 || res.Files[0].Path != "figure-1.png" || res.Files[1].Path != "figure-2.png" || !isPNG(res.Files[0]) || !isPNG(res.Files[1]) {
			t.Errorf("files %v, want figure-1.png and figure-2.png as PNGs", fileNames(res.Files))
		}
	})
	tg.step(t, "session", func(t *testing.T) {
		r := tg.newRunner(t, opts)
		s := openSession(t, r, runner.SessionOptions{ID: executionID("figs")})
		res := sessionExec(t, s, plot, 0, "10\n")
		if len(res.Files) != 2 || !isPNG(res.Files[0]) {
			t.Errorf("first: files %v, want two figures", fileNames(res.Files))
		}
		if res := sessionExec(t, s, "print(len(plt.get_fignums()))", 0, "0\n"); len(res.Files) != 0 {
			t.Errorf("second: files %v, want none (the figures were returned and closed)", fileNames(res.Files))
		}
	})
}
