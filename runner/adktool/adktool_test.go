package adktool_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/artifact"
	"google.golang.org/adk/tool"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
)

// stubExecutor answers with a fixed result and error, and records the requests.
type stubExecutor struct {
	res runner.Result
	err error

	mu   sync.Mutex
	reqs []runner.Request
}

func (s *stubExecutor) Execute(_ context.Context, req runner.Request) (runner.Result, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, req)
	s.mu.Unlock()
	return s.res, s.err
}

// ask runs one message through ADK's real agent loop: llmagent + runner + the scripted model.
func ask(t *testing.T, cfg adktool.Config, m *adktooltest.Model, artifacts artifact.Service, message string) adktooltest.Transcript {
	t.Helper()
	execTool, err := adktool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := llmagent.New(llmagent.Config{Name: "coder", Model: m, Tools: []tool.Tool{execTool},
		Instruction: "Answer by running code."})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := adktooltest.Ask(context.Background(), a, artifacts, message)
	if err != nil {
		t.Fatalf("agent loop: %v", err)
	}
	if len(tr.Calls) != 1 || len(tr.Responses) != 1 {
		t.Fatalf("calls %d responses %d, want one of each", len(tr.Calls), len(tr.Responses))
	}
	return tr
}

func TestResultsReachTheModel(t *testing.T) {
	t.Parallel()
	png := []byte{0x89, 'P', 'N', 'G', 0xff}
	ex := &stubExecutor{res: runner.Result{ExecutionID: "e1", Stdout: []byte("42\n"), CodeDuration: 250 * time.Millisecond,
		Files: []runner.File{{Path: "r.txt", Data: []byte("hi"), Size: 2}, {Path: "plot.png", Data: png, Size: 5}}}}
	m := &adktooltest.Model{Args: func(string) map[string]any {
		return map[string]any{"code": "print(6*7)", "files": []any{
			map[string]any{"name": "in/a.txt", "content": "text"},
			map[string]any{"name": "b.bin", "content_base64": base64.StdEncoding.EncodeToString([]byte{0, 1})},
		}}
	}}
	arts := artifact.InMemoryService()
	tr := ask(t, adktool.Config{Executor: ex, SaveArtifacts: true}, m, arts, "what is 6*7?")

	if tr.Answer != "42\n" {
		t.Errorf("answer %q, want the program's stdout", tr.Answer)
	}
	r := tr.Responses[0]
	if r["status"] != adktool.StatusOK || r["exit_code"] != 0.0 || r["code_seconds"] != 0.25 || r["execution_id"] != "e1" {
		t.Errorf("response %v", r)
	}
	if _, hasMessage := r["message"]; hasMessage {
		t.Errorf("a clean success carries no message: %v", r["message"])
	}
	files := r["files"].([]any)
	txt, bin := files[0].(map[string]any), files[1].(map[string]any)
	if txt["content"] != "hi" || bin["content"] != nil || bin["size"] != 5.0 || bin["artifact"] != "plot.png" {
		t.Errorf("files %v: want the text inline, the binary by name, both saved as artifacts", files)
	}
	req := ex.reqs[0]
	if req.Code != "print(6*7)" || string(req.Files["in/a.txt"]) != "text" || string(req.Files["b.bin"]) != "\x00\x01" {
		t.Errorf("request %+v", req)
	}
}

// Everything the code did, and requests the sandbox refuses, are results the model can act on.
func TestModelActionableOutcomesAreResults(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		res     runner.Result
		err     error
		args    map[string]any
		status  string
		message string
	}{
		{name: "non-zero exit", res: runner.Result{ExitCode: 1, Stderr: []byte("ZeroDivisionError: division by zero\n")},
			status: adktool.StatusError, message: "exited with status 1"},
		{name: "syntax error", res: runner.Result{ExitCode: 1, Stderr: []byte("SyntaxError: invalid syntax\n")},
			status: adktool.StatusError, message: "stderr says why"},
		{name: "timeout", res: runner.Result{TimedOut: true, ExitCode: 137, Stdout: []byte("partial")},
			err: fmt.Errorf("%w: ran past 1s", runner.ErrTimeout), status: adktool.StatusTimeout, message: "time limit"},
		{name: "out of memory", res: runner.Result{OOMKilled: true, ExitCode: 137},
			status: adktool.StatusOOM, message: "out of memory"},
		{name: "too much input", err: fmt.Errorf("%w: %w: 2 MiB", runner.ErrInvalidRequest, runner.ErrRequestTooLarge),
			status: adktool.StatusInvalidRequest, message: "2 MiB"},
		{name: "bad base64", args: map[string]any{"code": "1", "files": []any{map[string]any{"name": "x", "content_base64": "!!"}}},
			status: adktool.StatusInvalidRequest, message: "not valid base64"},
		{name: "duplicate input", args: map[string]any{"code": "1", "files": []any{map[string]any{"name": "x"}, map[string]any{"name": "x"}}},
			status: adktool.StatusInvalidRequest, message: "two input files"},
		{name: "empty code", args: map[string]any{"code": " "}, status: adktool.StatusInvalidRequest, message: "code is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &adktooltest.Model{}
			if tc.args != nil {
				m.Args = func(string) map[string]any { return tc.args }
			}
			tr := ask(t, adktool.Config{Executor: &stubExecutor{res: tc.res, err: tc.err}}, m, nil, "1/0")
			r := tr.Responses[0]
			if _, isErr := r["error"]; isErr {
				t.Fatalf("the tool failed (%v); want a result", r["error"])
			}
			if r["status"] != tc.status || !strings.Contains(fmt.Sprint(r["message"]), tc.message) {
				t.Errorf("status %v message %q, want %s mentioning %q", r["status"], r["message"], tc.status, tc.message)
			}
			if !strings.Contains(tr.Answer, tc.status) {
				t.Errorf("the model's answer %q does not reflect %s", tr.Answer, tc.status)
			}
		})
	}
}

// Infrastructure failures are the tool's errors: ADK hands the model {"error": ...}.
func TestInfrastructureFailuresAreErrors(t *testing.T) {
	t.Parallel()
	for _, sentinel := range []error{runner.ErrForbidden, runner.ErrCluster, runner.ErrImagePull, runner.ErrUnschedulable, runner.ErrTimeout} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			t.Parallel()
			ex := &stubExecutor{err: fmt.Errorf("%w: details", sentinel)}
			tr := ask(t, adktool.Config{Executor: ex}, &adktooltest.Model{}, nil, "print(1)")
			e, isErr := tr.Responses[0]["error"]
			if !isErr || !strings.Contains(fmt.Sprint(e), sentinel.Error()) {
				t.Errorf("response %v, want an error naming %q", tr.Responses[0], sentinel)
			}
			if !strings.HasPrefix(tr.Answer, "The tool failed") {
				t.Errorf("answer %q", tr.Answer)
			}
		})
	}
}

func TestOutputIsClippedForTheModel(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("é", 10_000) // 20,000 bytes
	ex := &stubExecutor{res: runner.Result{Stdout: []byte(big), Stderr: []byte("ok"), StderrTruncated: true,
		Files: []runner.File{{Path: "big.txt", Data: []byte(big), Size: 20_000}}}}
	tr := ask(t, adktool.Config{Executor: ex, MaxOutputBytes: 1001, MaxInlineFileBytes: 100}, &adktooltest.Model{}, nil, "x")
	r := tr.Responses[0]
	out := r["stdout"].(string)
	if len(out) != 1000 || !strings.HasPrefix(big, out) {
		t.Errorf("stdout clipped to %d bytes, want 1000 (a rune boundary)", len(out))
	}
	if msg := fmt.Sprint(r["message"]); !strings.Contains(msg, "stdout was truncated") || !strings.Contains(msg, "stderr was truncated") {
		t.Errorf("message %q does not note the truncation", msg)
	}
	if f := r["files"].([]any)[0].(map[string]any); f["content"] != nil {
		t.Errorf("a file over MaxInlineFileBytes came back inline")
	}
}

func TestToolDeclaration(t *testing.T) {
	t.Parallel()
	if _, err := adktool.New(adktool.Config{}); err == nil {
		t.Error("New without an Executor must fail")
	}
	execTool, err := adktool.New(adktool.Config{Executor: &stubExecutor{}, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if execTool.Name() != "execute_code" || !strings.Contains(execTool.Description(), "killed after 30s") ||
		!strings.Contains(execTool.Description(), runner.OutputDir) {
		t.Errorf("name %q description %q", execTool.Name(), execTool.Description())
	}
	m := &adktooltest.Model{}
	ask(t, adktool.Config{Executor: &stubExecutor{}}, m, nil, "print(1)")
	decl := m.Requests()[0].Config.Tools[0].FunctionDeclarations[0]
	schema, _ := json.Marshal(decl.ParametersJsonSchema)
	if decl.Name != "execute_code" || !strings.Contains(string(schema), `"required":["code"]`) {
		t.Errorf("declaration %s: %s", decl.Name, schema)
	}
}
