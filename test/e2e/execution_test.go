//go:build integration || gke

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// allBytes is every byte value, the binary round-trip payload.
func allBytes() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

const unicodeText = "héllo wörld ✓ 日本語 🎉 Ωμέγα\n"

// testExecution is stage 3: the library and the binary, as the agent, return what the code did.
func testExecution(t *testing.T, tg *target) {
	t.Run("library", func(t *testing.T) { testExecutionLibrary(t, tg) })
	t.Run("binary", func(t *testing.T) { testExecutionBinary(t, tg) })
}

// testExecutionLibrary runs code through runner.Execute with the agent's identity.
func testExecutionLibrary(t *testing.T, tg *target) {
	r := tg.newRunner(t, tg.options())
	type check func(t *testing.T, res runner.Result)
	cases := []struct {
		name  string
		code  string
		files map[string][]byte
		check check
	}{
		{
			name: "stdout_and_stderr_apart",
			code: "import sys\nprint('to stdout 1')\nprint('to stderr 1', file=sys.stderr)\nsys.stdout.write('to stdout 2\\n')\nsys.stderr.write('to stderr 2\\n')\n",
			check: func(t *testing.T, res runner.Result) {
				wantResult(t, res, 0, "to stdout 1\nto stdout 2\n", "to stderr 1\nto stderr 2\n")
				if res.PodName == "" || res.NodeName == "" {
					t.Errorf("PodName %q, NodeName %q: want where it ran", res.PodName, res.NodeName)
				}
				// A used warm sandbox is deleted after Execute returns (the stage checks it goes).
				if res.CodeDuration <= 0 || res.Timings.Started.IsZero() || (res.Sandbox == runner.SandboxCold && res.Timings.CleanedUp.IsZero()) {
					t.Errorf("timings missing: code %s, %+v", res.CodeDuration, res.Timings)
				}
			},
		},
		{
			name:  "exit_0",
			code:  "import sys\nsys.exit(0)\n",
			check: func(t *testing.T, res runner.Result) { wantResult(t, res, 0, "", "") },
		},
		{
			name:  "exit_3",
			code:  "import sys\nprint('bye')\nsys.exit(3)\n",
			check: func(t *testing.T, res runner.Result) { wantResult(t, res, 3, "bye\n", "") },
		},
		{
			name: "exception_exits_1",
			code: "raise ValueError('boom')\n",
			check: func(t *testing.T, res runner.Result) {
				if res.ExitCode != 1 || !strings.Contains(string(res.Stderr), "ValueError: boom") {
					t.Errorf("exit %d, stderr %q; want 1 and the traceback", res.ExitCode, res.Stderr)
				}
				if res.Outcome() != "error" {
					t.Errorf("outcome %q, want error", res.Outcome())
				}
			},
		},
		{
			name: "input_files_in_output_files_out",
			files: map[string][]byte{
				"data.csv":          []byte("a,b\n1,2\n"),
				"nested/dir/in.bin": allBytes(),
			},
			code: `import hashlib, os
csv = open("data.csv").read()
raw = open("nested/dir/in.bin", "rb").read()
os.makedirs("output/sub", exist_ok=True)
open("output/report.txt", "w").write("rows=%d sha=%s cwd=%s" % (csv.count("\n"), hashlib.sha256(raw).hexdigest(), os.getcwd()))
open("output/sub/copy.bin", "wb").write(raw[::-1])
open("data.csv", "a").write("inputs are writable copies\n")
`,
			check: func(t *testing.T, res runner.Result) {
				wantResult(t, res, 0, "", "")
				if len(res.Files) != 2 {
					t.Fatalf("files = %v, want report.txt and sub/copy.bin", fileNames(res.Files))
				}
				report, copied := res.Files[0], res.Files[1]
				wantReport := "rows=2 sha=40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880 cwd=/workspace"
				if report.Path != "report.txt" || string(report.Data) != wantReport {
					t.Errorf("file %s = %q, want report.txt = %q", report.Path, report.Data, wantReport)
				}
				if copied.Path != "sub/copy.bin" || !bytes.Equal(copied.Data, reverse(allBytes())) || copied.Size != 256 || copied.Truncated {
					t.Errorf("file %s (%d bytes, truncated %v) is not the reversed input", copied.Path, copied.Size, copied.Truncated)
				}
			},
		},
		{
			name:  "unicode_intact",
			code:  "import sys\nprint(" + pyString(strings.TrimSuffix(unicodeText, "\n")) + ")\nprint(" + pyString("ошибка ⚠") + ", file=sys.stderr)\n",
			check: func(t *testing.T, res runner.Result) { wantResult(t, res, 0, unicodeText, "ошибка ⚠\n") },
		},
		{
			name: "binary_intact",
			code: "import sys\nsys.stdout.buffer.write(bytes(range(256)) * 4)\nsys.stderr.buffer.write(bytes(range(255, -1, -1)))\n",
			check: func(t *testing.T, res runner.Result) {
				wantResult(t, res, 0, string(bytes.Repeat(allBytes(), 4)), string(reverse(allBytes())))
			},
		},
	}
	for _, c := range cases {
		id := executionID(strings.ReplaceAll(c.name[:min(len(c.name), 12)], "_", "-"))
		tg.parallelStep(t, c.name, []string{id}, func(t *testing.T) {
			res, err := r.Execute(context.Background(), runner.Request{Code: c.code, Files: c.files, ExecutionID: id})
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if res.ExecutionID != id {
				t.Errorf("ExecutionID %q, want %q", res.ExecutionID, id)
			}
			c.check(t, res)
		})
	}
}

// testExecutionBinary runs the same promises through the gkexec binary, as the agent.
func testExecutionBinary(t *testing.T, tg *target) {
	const timeout = 5 * time.Minute
	cases := []struct {
		name string
		run  func(t *testing.T, id string)
	}{
		{"streams_and_exit_code", func(t *testing.T, id string) {
			res := tg.gkexec(t, timeout, nil, "run", "--id", id, "-c", "import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)\n")
			wantCLI(t, res, 3, "out\n", "err\n")
		}},
		{"exception_exits_1", func(t *testing.T, id string) {
			res := tg.gkexec(t, timeout, nil, "run", "--id", id, "-c", "raise KeyError('nope')")
			if res.exitCode != 1 || !strings.Contains(string(res.stderr), "KeyError: 'nope'") {
				t.Errorf("%s; want exit 1 and the traceback on stderr", res)
			}
		}},
		{"code_from_stdin", func(t *testing.T, id string) {
			res := tg.gkexec(t, timeout, []byte("print(6 * 7)\n"), "run", "--id", id, "-")
			wantCLI(t, res, 0, "42\n", "")
		}},
		{"code_from_file", func(t *testing.T, id string) {
			file := filepath.Join(t.TempDir(), "job.py")
			writeFile(t, file, []byte("import os\nprint(os.getcwd())\n"))
			res := tg.gkexec(t, timeout, nil, "run", "--id", id, file)
			wantCLI(t, res, 0, "/workspace\n", "")
		}},
		{"input_and_output_files", func(t *testing.T, id string) {
			dir := t.TempDir()
			in, raw, out := filepath.Join(dir, "data.csv"), filepath.Join(dir, "raw.bin"), filepath.Join(dir, "out")
			writeFile(t, in, []byte("x,y\n3,4\n"))
			writeFile(t, raw, allBytes())
			code := `import os
rows = open("data.csv").read().splitlines()
os.makedirs("output/deep", exist_ok=True)
open("output/sum.txt", "w").write(str(sum(int(v) for v in rows[1].split(","))))
open("output/deep/raw.bin", "wb").write(open("inputs/raw.bin", "rb").read())
print("done")
`
			res := tg.gkexec(t, timeout, nil, "run", "--id", id, "--input", in, "--input", "inputs/raw.bin="+raw, "--output-dir", out, "-c", code)
			wantCLI(t, res, 0, "done\n", "")
			if got := readFile(t, filepath.Join(out, "sum.txt")); string(got) != "7" {
				t.Errorf("out/sum.txt = %q, want 7", got)
			}
			if got := readFile(t, filepath.Join(out, "deep", "raw.bin")); !bytes.Equal(got, allBytes()) {
				t.Errorf("out/deep/raw.bin = %d bytes, want the 256 input bytes back", len(got))
			}
		}},
		{"unicode_and_binary_intact", func(t *testing.T, id string) {
			code := "import sys\nsys.stdout.buffer.write(bytes(range(256)))\nsys.stderr.write(" + pyString(unicodeText) + ")\n"
			res := tg.gkexec(t, timeout, nil, "run", "--id", id, "-c", code)
			wantCLI(t, res, 0, string(allBytes()), unicodeText)
		}},
		{"json_parses", func(t *testing.T, id string) {
			code := "import sys\nsys.stdout.buffer.write(bytes(range(256)))\nsys.stderr.write(" + pyString(unicodeText) + ")\n" +
				"open('output/r.txt', 'w').write('hi')\nsys.exit(3)\n"
			res := tg.gkexec(t, timeout, nil, "run", "--json", "--id", id, "-c", code)
			if res.exitCode != 3 {
				t.Errorf("exit %d, want the code's 3 with --json too; stderr %s", res.exitCode, res.stderr)
			}
			var doc struct {
				ExecutionID  string             `json:"execution_id"`
				ExitCode     int                `json:"exit_code"`
				Outcome      string             `json:"outcome"`
				StdoutBase64 string             `json:"stdout_base64"`
				Stderr       string             `json:"stderr"`
				StderrBase64 string             `json:"stderr_base64"`
				PodName      string             `json:"pod_name"`
				PhaseSeconds map[string]float64 `json:"phase_seconds"`
				Files        []struct {
					Path    string `json:"path"`
					Size    int64  `json:"size"`
					Content string `json:"content_base64"`
				} `json:"files"`
			}
			if err := json.Unmarshal(res.stdout, &doc); err != nil {
				t.Fatalf("--json output does not parse: %v\n%s", err, res.stdout)
			}
			stdout, err := base64.StdEncoding.DecodeString(doc.StdoutBase64)
			if err != nil || !bytes.Equal(stdout, allBytes()) {
				t.Errorf("stdout_base64 decodes to %q (%v), want bytes 0..255", stdout, err)
			}
			if doc.ExecutionID != id || doc.ExitCode != 3 || doc.Outcome != "error" || doc.Stderr != unicodeText || doc.StderrBase64 != "" || doc.PodName == "" {
				t.Errorf("json = %+v", doc)
			}
			if len(doc.Files) != 1 || doc.Files[0].Path != "r.txt" || doc.Files[0].Content != base64.StdEncoding.EncodeToString([]byte("hi")) {
				t.Errorf("files = %+v, want r.txt = hi", doc.Files)
			}
			if doc.PhaseSeconds["run"] <= 0 {
				t.Errorf("phase_seconds = %v, want a run phase", doc.PhaseSeconds)
			}
		}},
	}
	for _, c := range cases {
		id := executionID("cli-" + strings.ReplaceAll(c.name[:min(len(c.name), 10)], "_", "-"))
		tg.parallelStep(t, c.name, []string{id}, func(t *testing.T) { c.run(t, id) })
	}
}

func wantResult(t *testing.T, res runner.Result, code int, stdout, stderr string) {
	t.Helper()
	if res.ExitCode != code || string(res.Stdout) != stdout || string(res.Stderr) != stderr {
		t.Errorf("got exit %d, stdout %s, stderr %s\nwant exit %d, stdout %s, stderr %s",
			res.ExitCode, quoteShort(res.Stdout), quoteShort(res.Stderr), code, quoteShort([]byte(stdout)), quoteShort([]byte(stderr)))
	}
	if res.StdoutTruncated || res.StderrTruncated || res.TimedOut || res.OOMKilled {
		t.Errorf("flags: stdout truncated %v, stderr truncated %v, timed out %v, oom %v", res.StdoutTruncated, res.StderrTruncated, res.TimedOut, res.OOMKilled)
	}
}

func wantCLI(t *testing.T, res cliResult, code int, stdout, stderr string) {
	t.Helper()
	if res.exitCode != code || string(res.stdout) != stdout || string(res.stderr) != stderr {
		t.Errorf("got %s\nwant exit %d, stdout %s, stderr %s", res, code, quoteShort([]byte(stdout)), quoteShort([]byte(stderr)))
	}
}

// pyString is s as a Python string literal (JSON's escapes are Python's too).
func pyString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func reverse(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		out[len(b)-1-i] = c
	}
	return out
}

func fileNames(files []runner.File) []string {
	var names []string
	for _, f := range files {
		names = append(names, f.Path)
	}
	return names
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
	}
	return b
}
