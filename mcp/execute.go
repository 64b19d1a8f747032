package mcp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/runner"
)

// Status values of Execution.
const (
	StatusOK      = "ok"      // exit code 0
	StatusError   = "error"   // non-zero exit code
	StatusTimeout = "timeout" // killed at the time limit
	StatusOOM     = "oom"     // killed for using too much memory
	StatusNotRun  = "not_run" // the code did not run: see Execution.Error
)

func (s *Server) runCode(ctx context.Context, call *sdk.CallToolRequest, in RunCodeInput) (*sdk.CallToolResult, *Execution, error) {
	started := time.Now()
	lang, ok := languageFor(in.Language)
	if !ok {
		return s.answer(runner.Result{}, invalid("language %q is not offered; use one of: %s", in.Language, languageList()), started)
	}
	req, problem := request(lang, in.Code, in.Files, in.TimeoutSeconds)
	if problem != nil {
		return s.answer(runner.Result{}, problem, started)
	}
	req.Output = progress(ctx, call)
	req.AllowDomains = s.opts.AllowDomains
	res, err := s.run.Execute(ctx, req)
	return s.answer(res, err, started)
}

func (s *Server) runInSession(ctx context.Context, call *sdk.CallToolRequest, in RunInSessionInput) (*sdk.CallToolResult, *Execution, error) {
	started := time.Now()
	sess, problem := s.session(ctx, in.SessionID)
	if problem != nil {
		return s.answer(runner.Result{Session: in.SessionID}, problem, started)
	}
	req, problem := request(sessionLanguage(sess), in.Code, in.Files, in.TimeoutSeconds)
	if problem != nil {
		return s.answer(runner.Result{Session: in.SessionID}, problem, started)
	}
	req.Output = progress(ctx, call)
	res, err := sess.Execute(ctx, req)
	// A download's copy is the download's answer, not a file this code made.
	res.Files = dropDownloads(res.Files)
	return s.answer(res, err, started)
}

// request is the runner's request for code in lang, with input files and a timeout.
func request(lang Language, code string, files []InputFile, timeoutSeconds float64) (runner.Request, error) {
	req := runner.Request{Code: code, Language: lang.Name, Timeout: time.Duration(timeoutSeconds * float64(time.Second))}
	if strings.TrimSpace(code) == "" {
		return req, invalid("code is empty: send the complete program in code")
	}
	if len(files) > 0 {
		req.Files = make(map[string][]byte, len(files))
	}
	for _, f := range files {
		if _, dup := req.Files[f.Name]; dup {
			return req, invalid("two input files are named %q", f.Name)
		}
		data, err := fileData(f.Name, f.Content, f.ContentBase64)
		if err != nil {
			return req, err
		}
		req.Files[f.Name] = data
	}
	return req, nil
}

// fileData is a file's bytes from content or content_base64.
func fileData(name, content, contentBase64 string) ([]byte, error) {
	switch {
	case content != "" && contentBase64 != "":
		return nil, invalid("file %q has both content and content_base64; give one", name)
	case contentBase64 != "":
		data, err := base64.StdEncoding.DecodeString(contentBase64)
		if err != nil {
			return nil, invalid("file %q: content_base64 is not standard base64: %v", name, err)
		}
		return data, nil
	}
	return []byte(content), nil
}

// answer is the one place an execution's answer is made, from the runner's Result and error:
// what the code did is a result; anything that kept it from running, or that ended its session,
// is a tool error, with the result when the code had started.
func (s *Server) answer(res runner.Result, err error, started time.Time) (*sdk.CallToolResult, *Execution, error) {
	out := Execution{ExecutionID: res.ExecutionID, SessionID: res.Session, TotalSeconds: time.Since(started).Seconds()}
	ran := !res.Timings.Started.IsZero()
	var notes []string
	switch {
	case err == nil:
	case errors.Is(err, runner.ErrTimeout) && res.TimedOut && !errors.Is(err, runner.ErrSessionEnded):
		// The code's own timeout is a result: the model can make it do less.
	default:
		out.Error = toolErrorFor(err)
	}
	if !ran {
		out.Status, out.ExitCode = StatusNotRun, -1
		return s.result(out, nil)
	}
	out.ExitCode, out.TimedOut, out.CodeSeconds = res.ExitCode, res.TimedOut, res.CodeDuration.Seconds()
	switch res.Outcome() {
	case "success":
		out.Status = StatusOK
	case "timeout":
		out.Status = StatusTimeout
		notes = append(notes, "the program ran past the time limit and was killed; the output is what it printed until then")
	case "oom":
		out.Status = StatusOOM
		notes = append(notes, "the program ran out of memory and was killed; use less memory (process the data in chunks)")
	default:
		out.Status = StatusError
		notes = append(notes, fmt.Sprintf("the program exited with status %d; stderr says why", res.ExitCode))
	}
	var cut bool
	if out.Stdout, cut = clip(res.Stdout, s.opts.MaxOutputBytes); cut || res.StdoutTruncated {
		notes = append(notes, "stdout was truncated; print less")
	}
	if out.Stderr, cut = clip(res.Stderr, s.opts.MaxOutputBytes); cut || res.StderrTruncated {
		notes = append(notes, "stderr was truncated")
	}
	if res.FilesTruncated {
		notes = append(notes, "output files were truncated at the sandbox's size limit")
	}
	var blocks []sdk.Content
	for _, f := range res.Files {
		c, mimeType := fileContent(outputURI(f.Path), f.Data, f.Truncated)
		out.Files = append(out.Files, OutputFile{Path: f.Path, Size: f.Size, MIMEType: mimeType, Truncated: f.Truncated})
		blocks = append(blocks, c)
	}
	out.Message = strings.Join(notes, "; ")
	return s.result(out, blocks)
}

// result is the tool's answer: the structured output, also as JSON text for clients that read
// only content, then the content blocks (output files); an IsError result when out has an error.
func (s *Server) result(out Execution, blocks []sdk.Content) (*sdk.CallToolResult, *Execution, error) {
	return toolResult(out, out.Error, blocks), &out, nil
}

// toolResult is a CallToolResult whose content is v as JSON, then blocks; when te is set, an
// IsError result that says te first.
func toolResult(v any, te *ToolError, blocks []sdk.Content) *sdk.CallToolResult {
	text, err := json.Marshal(v)
	if err != nil {
		text = []byte(err.Error())
	}
	content := append([]sdk.Content{&sdk.TextContent{Text: string(text)}}, blocks...)
	if te == nil {
		return &sdk.CallToolResult{Content: content}
	}
	// The error first, in a sentence: some clients show the model only the first block of an error.
	res := &sdk.CallToolResult{Content: append([]sdk.Content{&sdk.TextContent{Text: te.Error()}}, content...)}
	res.SetError(te)
	return res
}

// clip keeps at most n bytes, cut at a rune boundary, invalid UTF-8 replaced.
func clip(b []byte, n int) (string, bool) {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	if len(s) <= n {
		return s, false
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}
