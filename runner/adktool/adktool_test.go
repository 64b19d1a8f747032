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

// argsOf is the tool call's arguments for a user message: a JSON object as it is, anything else
// as the code.
func argsOf(text string) map[string]any {
	var args map[string]any
	if json.Unmarshal([]byte(text), &args) == nil {
		return args
	}
	return map[string]any{"code": text}
}

// The model chooses each call's language, and the request carries it: Python as none, the same
// request as before there were languages.
func TestTheModelChoosesEachCallsLanguage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ lang, want string }{{"bash", "bash"}, {"javascript", "javascript"}, {"python", ""}, {"", ""}} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			args := map[string]any{"code": "x"}
			if tc.lang != "" {
				args["language"] = tc.lang
			}
			ex := &stubExecutor{}
			tr := ask(t, adktool.Config{Executor: ex}, &adktooltest.Model{Args: func(string) map[string]any { return args }}, nil, "x")
			if len(ex.reqs) != 1 || ex.reqs[0].Language != tc.want || tr.Responses[0]["status"] != adktool.StatusOK {
				t.Errorf("requests %+v response %v, want one request in %q", ex.reqs, tr.Responses[0], tc.want)
			}
		})
	}
}

// A language gkexec does not run is answered invalid_request, naming those it does; nothing runs.
// The declaration's enum is not what refuses it: ADK's schema check would make it the tool's
// error, which tells the model less.
func TestAnUnknownLanguageIsInvalidRequest(t *testing.T) {
	t.Parallel()
	for _, lang := range []string{"cobol", "Python", "js", "bash "} {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			ex := &stubExecutor{}
			m := &adktooltest.Model{Args: func(string) map[string]any { return map[string]any{"code": "1", "language": lang} }}
			r := ask(t, adktool.Config{Executor: ex}, m, nil, "1").Responses[0]
			msg := fmt.Sprint(r["message"])
			if r["status"] != adktool.StatusInvalidRequest || !strings.Contains(msg, fmt.Sprintf("%q", lang)) || !strings.Contains(msg, "bash, javascript, python") {
				t.Errorf("response %v, want invalid_request naming %q and the languages", r, lang)
			}
			if len(ex.reqs) != 0 {
				t.Errorf("ran %+v", ex.reqs)
			}
		})
	}
}

// Every language runs for real behind the tool (the sandbox's entrypoint, with this machine's
// python3, bash and node): the code finds its input files in the working directory, and what it
// writes under output/ comes back, as the declaration says.
func TestEveryLanguageRunsInTheSandbox(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ lang, code string }{
		{"bash", `read n < data/n.txt; echo $((n + 1)); echo "bash $n" > output/r.txt`},
		{"javascript", "const fs = require('fs'); const n = Number(fs.readFileSync('data/n.txt', 'utf8'));\n" +
			"console.log(n + 1); fs.writeFileSync('output/r.txt', `javascript ${n}\\n`);"},
		{"python", "n = int(open('data/n.txt').read())\nprint(n + 1)\nopen('output/r.txt', 'w').write(f'python {n}\\n')"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			m := &adktooltest.Model{Args: func(string) map[string]any {
				return map[string]any{"code": tc.code, "language": tc.lang, "files": []any{map[string]any{"name": "data/n.txt", "content": "41\n"}}}
			}}
			r := ask(t, adktool.Config{Executor: sandboxExecutor{t: t}}, m, nil, "41 + 1?").Responses[0]
			files, _ := r["files"].([]any)
			if r["status"] != adktool.StatusOK || r["stdout"] != "42\n" || len(files) != 1 {
				t.Fatalf("response %v, want ok, 42 and one file", r)
			}
			if f := files[0].(map[string]any); f["path"] != "r.txt" || f["content"] != tc.lang+" 41\n" {
				t.Errorf("file %v, want r.txt holding %q", f, tc.lang+" 41\n")
			}
		})
	}
}

// A sandbox image without a language's interpreter refuses its code: the model reads which
// program is missing (and can use another language); the other languages still run.
func TestALanguageTheImageLacksIsInvalidRequest(t *testing.T) {
	t.Parallel()
	noNode := sandboxExecutor{t: t, env: []string{bashOnly(t)}}
	js := &adktooltest.Model{Args: func(string) map[string]any { return map[string]any{"code": "console.log(1)", "language": "javascript"} }}
	r := ask(t, adktool.Config{Executor: noNode}, js, nil, "1").Responses[0]
	if r["status"] != adktool.StatusInvalidRequest || !strings.Contains(fmt.Sprint(r["message"]), "no node on its PATH") {
		t.Errorf("response %v, want invalid_request naming node", r)
	}
	sh := &adktooltest.Model{Args: func(string) map[string]any { return map[string]any{"code": "echo 1", "language": "bash"} }}
	if r := ask(t, adktool.Config{Executor: noNode}, sh, nil, "1").Responses[0]; r["status"] != adktool.StatusOK || r["stdout"] != "1\n" {
		t.Errorf("bash on the same image: %v", r)
	}
}

// The declaration offers the languages as an enum, and says what each language's file is and
// that files under output/ come back; the description names every language.
func TestToolDeclarationOffersTheLanguages(t *testing.T) {
	t.Parallel()
	m := &adktooltest.Model{}
	ask(t, adktool.Config{Executor: &stubExecutor{}}, m, nil, "print(1)")
	decl := m.Requests()[0].Config.Tools[0].FunctionDeclarations[0]
	var schema struct {
		Properties map[string]struct {
			Description string `json:"description"`
			Enum        []string
		}
		Required []string
	}
	raw, _ := json.Marshal(decl.ParametersJsonSchema)
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	if lang := schema.Properties["language"]; strings.Join(lang.Enum, ",") != "bash,javascript,python" || !strings.Contains(lang.Description, "python (the default)") {
		t.Errorf("language %+v, want the enum bash, javascript, python and python the default", lang)
	}
	if strings.Join(schema.Required, ",") != "code" {
		t.Errorf("required %v, want code alone", schema.Required)
	}
	code := schema.Properties["code"].Description
	for _, want := range []string{"main.py", "main.sh", "main.js", "output/", "come back"} {
		if !strings.Contains(code, want) {
			t.Errorf("code's description %q does not say %q", code, want)
		}
	}
	d := decl.Description
	if !strings.Contains(d, "Python 3 by default") || !strings.Contains(d, "Bash") || !strings.Contains(d, "JavaScript") {
		t.Errorf("description %q, want every language", d)
	}
	if _, err := adktool.New(adktool.Config{Executor: &stubExecutor{}, SessionLanguage: "bash"}); err == nil || !strings.Contains(err.Error(), "stateful") {
		t.Errorf("SessionLanguage on a stateless tool: %v, want it refused", err)
	}
}
