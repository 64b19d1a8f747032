// Package adktool gives ADK for Go agents (google.golang.org/adk) a code execution tool backed
// by gkexec. ADK for Go has no code executor, only tools; this is one, named execute_code, that
// runs a program in a gVisor-sandboxed Kubernetes Pod and returns stdout, stderr, exit code,
// output files and timings.
//
// The model chooses each call's language: Input.Language is "python" (the default), "bash" or
// "javascript" (runner.Languages), declared to the model as an enum. The code runs as main.py under python3, main.sh under bash or
// main.js under node, with /workspace as its working directory; files it writes under
// /workspace/output come back. Python is the sandbox's own interpreter; bash and node must be on
// the sandbox image's PATH, and an image without them refuses such code (invalid_request, naming
// the missing program). An unknown language is invalid_request too, before anything runs.
//
// What the code did is always a result the model can read and act on: a syntax error, a
// non-zero exit, a timeout, an OOM kill, or a request the sandbox refuses (a bad file name, too
// much input). Infrastructure failures (RBAC, the API server, no gVisor node, image pull) are
// Go errors: the model cannot fix them, and ADK reports them as the tool's error.
//
//	r, _ := runner.New(runner.Options{Namespace: "agent-sandbox"})
//	execTool, _ := adktool.New(adktool.Config{Executor: r, Timeout: r.Options().Timeout})
//	agent, _ := llmagent.New(llmagent.Config{Name: "coder", Model: m, Tools: []tool.Tool{execTool}})
//
// The Executor is a *runner.Runner (the agent holds the Kubernetes credentials) or a
// *server.Client (they stay in a `gkexec serve` sidecar).
//
// By default every call starts from a fresh sandbox. Given Sessions instead, the tool is
// stateful: the calls of one ADK session run in one gkexec session, one live interpreter, so
// that what a call defines (variables, imports, files under /workspace) is there for the next:
//
//	secret := []byte(os.Getenv("GKEXEC_SESSION_SECRET")) // the same in every replica; at least 16 bytes
//	execTool, _ := adktool.New(adktool.Config{Sessions: adktool.RunnerSessions(r), SessionSecret: secret, Timeout: r.Options().Timeout})
//	sessions, _ := adktool.SessionService(session.InMemoryService(), adktool.RunnerSessions(r), secret)
//	// adkrunner.Config{..., SessionService: sessions}: deleting an ADK session closes its gkexec session
//
// A session is one interpreter, so a stateful tool runs one language, Config.SessionLanguage
// (Python by default), and says so in its description; a call that names another is
// invalid_request. A sandbox image without that language's interpreter cannot open the session,
// which is the tool's error: the operator's to fix, not the model's. For a shell and a Python
// interpreter in one conversation, give the agent two stateful tools, each with its own Name and
// SessionLanguage: their sessions are apart (LanguageSessionID, SessionStateKey).
//
// See Config.Sessions for when a session ends, and Config.SessionSecret for why the session
// IDs are keyed.
package adktool

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/functiontool"

	"github.com/gkexec/gkexec/runner"
)

// Executor runs one request; *runner.Runner and *server.Client implement it. A run timeout
// must come back as the partial Result with an error wrapping runner.ErrTimeout, as they do.
type Executor interface {
	Execute(ctx context.Context, req runner.Request) (runner.Result, error)
}

// Defaults.
const (
	DefaultName = "execute_code"
	// DefaultMaxOutputBytes bounds stdout and stderr, each, in what the model sees: the sandbox
	// returns up to 1 MiB, far more than is useful in a model's context.
	DefaultMaxOutputBytes = 32 << 10
	// DefaultMaxInlineFileBytes: output files up to this size that are UTF-8 text come back
	// with their content; others by name and size only (save them with SaveArtifacts).
	DefaultMaxInlineFileBytes = 8 << 10
)

// Config configures the tool.
type Config struct {
	// Executor runs each call's code in a fresh sandbox. Give it or Sessions, not both.
	Executor Executor
	// Sessions, if set, makes the tool stateful: the calls of one ADK session run in one gkexec
	// session, opened by the first (its ID is SessionID's) and resumed by the later ones from
	// any process; the ADK session's state keeps its ID under StateKeySession.
	// ADK has no end-of-session hook: the gkexec session ends at its idle timeout or maximum
	// lifetime, or when the ADK session is deleted through SessionService. A call after the end
	// runs in a new session and its answer tells the model that earlier state is gone.
	Sessions Sessions
	// SessionSecret keys the IDs of the sessions the tool opens (SessionID): required with
	// Sessions, at least MinSessionSecretBytes (32 random bytes recommended), and the same in
	// every replica of the agent, so that they meet in one session. A session ID is a bearer
	// capability — whoever knows it and holds the runner's credentials can drive the session —
	// so it must not be computable from the ADK session's IDs alone. The tool never logs it, and
	// it prints as "[redacted]". Keep it in a Kubernetes Secret. A new secret gives new ADK
	// sessions new IDs; a session that already ran keeps the one in its state until it ends.
	SessionSecret Secret
	// SessionIdleTimeout and SessionMaxLifetime are the terms of the sessions the tool opens;
	// zero means the runner's (runner.Options.SessionIdleTimeout and SessionMaxLifetime).
	SessionIdleTimeout time.Duration
	SessionMaxLifetime time.Duration
	// SessionLanguage is the language of the sessions the tool opens, one of runner.Languages:
	// "python" (the default, also when empty), "bash" or "javascript". A session is one
	// interpreter, so the model does not choose: its calls may name this language or none, and
	// another is answered invalid_request. Only with Sessions; a stateless tool's model chooses
	// each call's language.
	SessionLanguage string
	// AllowDomains narrows the namespace's egress allow-list for the code the tool runs (each
	// call's sandbox, or the sessions it opens): runner.Request.AllowDomains.
	AllowDomains []string
	// Name of the tool. Default "execute_code".
	Name string
	// Description tells the model what the tool does. Default: a description of the sandbox that
	// names Timeout (DefaultDescription, or DefaultSessionDescription when stateful).
	Description string
	// Timeout is the executor's run-time limit, for the default description only (use
	// runner.Runner.Options().Timeout or server.Client.Config's timeout_seconds).
	Timeout time.Duration
	// MaxOutputBytes bounds stdout and stderr, each, in the tool's answer. Default 32 KiB.
	MaxOutputBytes int
	// MaxInlineFileBytes: text output files up to this size are answered with their content,
	// within a total of four times this. Default 8 KiB; negative answers names and sizes only.
	MaxInlineFileBytes int
	// SaveArtifacts saves every output file as an ADK artifact (the runner needs an
	// ArtifactService), named by its path under /workspace/output.
	SaveArtifacts bool
}

// Input is what the model sends. The declaration the model gets lists the languages as an enum
// (see declared).
type Input struct {
	Code     string      `json:"code" jsonschema:"The complete program to run, in the language named by language: Python 3 runs as main.py (python3), Bash as main.sh (bash), JavaScript as main.js (node), with /workspace as the working directory. Print what you need to see. Files it writes under output/ come back."`
	Language string      `json:"language,omitempty" jsonschema:"The language of code: python (the default), bash or javascript."`
	Files    []InputFile `json:"files,omitempty" jsonschema:"Input files, written to the working directory before the code runs."`
}

// InputFile is one input file; give content (text) or content_base64 (binary), not both.
type InputFile struct {
	Name          string `json:"name" jsonschema:"Relative path under the working directory, e.g. data/input.csv."`
	Content       string `json:"content,omitempty" jsonschema:"The file's text content."`
	ContentBase64 string `json:"content_base64,omitempty" jsonschema:"The file's content in base64, for binary files."`
}

// Status values of Output.
const (
	StatusOK             = "ok"              // exit code 0
	StatusError          = "error"           // non-zero exit code (stderr says why)
	StatusTimeout        = "timeout"         // killed at the time limit
	StatusOOM            = "oom"             // killed for using too much memory
	StatusInvalidRequest = "invalid_request" // not run: Message says what to change
)

// Output is what the model reads.
type Output struct {
	Status   string `json:"status" jsonschema:"ok, error (non-zero exit), timeout, oom, or invalid_request (not run; see message)."`
	ExitCode int    `json:"exit_code" jsonschema:"The program's exit status; 128+N if killed by signal N."`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	// Message explains a status other than ok in a sentence, and notes truncation.
	Message string       `json:"message,omitempty"`
	Files   []OutputFile `json:"files,omitempty" jsonschema:"Files the program wrote under /workspace/output."`
	// CodeSeconds is the program's own run time; TotalSeconds includes starting the sandbox.
	CodeSeconds  float64 `json:"code_seconds"`
	TotalSeconds float64 `json:"total_seconds"`
	ExecutionID  string  `json:"execution_id,omitempty"`
}

// OutputFile is one file the program wrote.
type OutputFile struct {
	Path string `json:"path" jsonschema:"Path relative to /workspace/output."`
	Size int64  `json:"size"`
	// Content is set for small text files.
	Content string `json:"content,omitempty"`
	// Artifact is the ADK artifact name when the file was saved as one.
	Artifact string `json:"artifact,omitempty"`
}

// New returns the execute_code tool.
func New(cfg Config) (tool.Tool, error) {
	switch {
	case cfg.Executor == nil && cfg.Sessions == nil:
		return nil, errors.New("adktool: Config.Executor (a *runner.Runner or a *server.Client) or Config.Sessions (RunnerSessions) is required")
	case cfg.Executor != nil && cfg.Sessions != nil:
		return nil, errors.New("adktool: give Config.Executor (a fresh sandbox per call) or Config.Sessions (one interpreter per ADK session), not both")
	case cfg.SessionIdleTimeout < 0 || cfg.SessionMaxLifetime < 0:
		return nil, fmt.Errorf("adktool: Config.SessionIdleTimeout %s and SessionMaxLifetime %s may not be negative", cfg.SessionIdleTimeout, cfg.SessionMaxLifetime)
	case cfg.SessionLanguage != "" && cfg.Sessions == nil:
		return nil, fmt.Errorf("adktool: Config.SessionLanguage %q is the language of a stateful tool's sessions (Config.Sessions); a stateless tool's model chooses each call's language", cfg.SessionLanguage)
	case !known(cfg.SessionLanguage):
		return nil, fmt.Errorf("adktool: Config.SessionLanguage %q: gkexec runs %s (empty is python)", cfg.SessionLanguage, strings.Join(runner.Languages(), ", "))
	}
	if cfg.Sessions != nil {
		if err := checkSecret(cfg.SessionSecret); err != nil {
			return nil, err
		}
		if cfg.SessionLanguage == "" {
			cfg.SessionLanguage = python
		}
		// A copy: the caller's slice changing later must not change the IDs.
		cfg.SessionSecret = bytes.Clone(cfg.SessionSecret)
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.Description == "" && cfg.Sessions != nil {
		cfg.Description = DefaultSessionDescription(cfg.SessionLanguage, cfg.Timeout, cfg.SessionIdleTimeout)
	} else if cfg.Description == "" {
		cfg.Description = DefaultDescription(cfg.Timeout)
	}
	if cfg.MaxOutputBytes <= 0 {
		cfg.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if cfg.MaxInlineFileBytes == 0 {
		cfg.MaxInlineFileBytes = DefaultMaxInlineFileBytes
	}
	t := &execTool{cfg: cfg}
	fc := functiontool.Config{Name: cfg.Name, Description: cfg.Description}
	if cfg.Sessions != nil {
		t.opening = &opening{locks: map[string]*idLock{}}
		lang := cfg.SessionLanguage
		return declare(fc, t.runInSession, []string{lang},
			fmt.Sprintf("The language of code: %s, this conversation's interpreter's; omit it or give %s.", lang, lang))
	}
	return declare(fc, t.run, runner.Languages(), "")
}

// python is the default language, the sandbox's own interpreter's.
const python = "python"

// known says whether lang names a language gkexec runs; empty is Python.
func known(lang string) bool {
	return lang == "" || slices.Contains(runner.Languages(), lang)
}

// onTheWire is lang as the runner is given it: Python as empty, so that a Python request or
// session is the same as before there were languages (and sandboxes of that time take it).
func onTheWire(lang string) string {
	if lang == python {
		return ""
	}
	return lang
}

// DefaultDescription is the tool description the model gets by default.
func DefaultDescription(timeout time.Duration) string {
	limit := ""
	if timeout > 0 {
		limit = fmt.Sprintf(" It is killed after %s.", timeout)
	}
	return "Runs a program in an isolated sandbox and returns its stdout, stderr, exit code and output files:" +
		" Python 3 by default, or Bash or JavaScript (Node.js) when language says so." +
		" Every call starts from a fresh, empty sandbox: nothing persists between calls, so each program must be complete." +
		" There is no network access and nothing can be installed: Python has its standard library, JavaScript Node's built-in modules, Bash the sandbox's commands." +
		" The working directory is " + runner.WorkDir + ", where input files appear; write files to " + runner.OutputDir +
		"/ to return them." + limit
}

type execTool struct {
	cfg     Config
	opening *opening // stateful: one opening of a session ID at a time in this process
}

func (t *execTool) run(ctx agent.ToolContext, in Input) (Output, error) {
	if !known(in.Language) {
		return Output{Status: StatusInvalidRequest, ExitCode: -1, Message: fmt.Sprintf(
			"not run: language %q: this tool runs %s; give one of them, or none for python", in.Language, strings.Join(runner.Languages(), ", "))}, nil
	}
	req, problem := request(in.Code, onTheWire(in.Language), in.Files)
	req.AllowDomains = t.cfg.AllowDomains
	if problem != "" {
		return Output{Status: StatusInvalidRequest, ExitCode: -1, Message: problem}, nil
	}
	started := time.Now()
	res, err := t.cfg.Executor.Execute(ctx, req)
	return t.answer(ctx, res, err, time.Since(started))
}

// answer is the model's view of an execution: what the code did is a result, the request's
// fault is invalid_request, and anything else the tool's error.
func (t *execTool) answer(ctx agent.ToolContext, res runner.Result, err error, took time.Duration, notes ...string) (Output, error) {
	switch {
	case errors.Is(err, runner.ErrSessionEnded) && !res.Timings.Started.IsZero():
		// The code ended its session (os._exit, out of memory, uninterruptible at the timeout):
		// its result stands, and the model must know that the next call starts afresh.
		notes = append(notes, "this program ended the session ("+err.Error()+"); the next call runs in a new one, without the variables, imports and files of earlier calls")
	case err == nil, errors.Is(err, runner.ErrTimeout) && res.TimedOut:
	case errors.Is(err, runner.ErrInvalidRequest):
		// Too much input, a bad file name: the model can change the call.
		return Output{Status: StatusInvalidRequest, ExitCode: -1, Message: "not run: " + err.Error()}, nil
	default:
		return Output{}, fmt.Errorf("%s: the sandbox could not run the code: %w", t.cfg.Name, err)
	}
	out := t.output(res, took)
	if out.Message != "" {
		notes = append(notes, out.Message)
	}
	if len(notes) > 0 {
		out.Message = strings.Join(notes, "; ")
	}
	if t.cfg.SaveArtifacts {
		if err := saveArtifacts(ctx, res.Files, &out); err != nil {
			return out, fmt.Errorf("%s: saving output files as artifacts: %w", t.cfg.Name, err)
		}
	}
	return out, nil
}

// request is the runner's request for code in language (as onTheWire gives it) with files, or
// what is wrong with them.
func request(code, language string, files []InputFile) (runner.Request, string) {
	req := runner.Request{Code: code, Language: language}
	if strings.TrimSpace(code) == "" {
		return req, "not run: code is empty; send the complete program in `code`"
	}
	if len(files) > 0 {
		req.Files = make(map[string][]byte, len(files))
	}
	for _, f := range files {
		if _, dup := req.Files[f.Name]; dup {
			return req, fmt.Sprintf("not run: two input files are named %q", f.Name)
		}
		switch {
		case f.Content != "" && f.ContentBase64 != "":
			return req, fmt.Sprintf("not run: input file %q has both content and content_base64; give one", f.Name)
		case f.ContentBase64 != "":
			data, err := base64.StdEncoding.DecodeString(f.ContentBase64)
			if err != nil {
				return req, fmt.Sprintf("not run: input file %q: content_base64 is not valid base64: %v", f.Name, err)
			}
			req.Files[f.Name] = data
		default:
			req.Files[f.Name] = []byte(f.Content)
		}
	}
	return req, ""
}
