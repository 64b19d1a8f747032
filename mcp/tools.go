package mcp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/runner"
)

// Tool names.
const (
	ToolRunCode         = "run_code"
	ToolOpenSession     = "open_session"
	ToolRunInSession    = "run_in_session"
	ToolCloseSession    = "close_session"
	ToolUploadFile      = "upload_file"
	ToolDownloadFile    = "download_file"
	ToolDescribeSandbox = "describe_sandbox"
)

// RunCodeInput is run_code's arguments.
type RunCodeInput struct {
	Language       string      `json:"language,omitempty" jsonschema:"The language of the code."`
	Code           string      `json:"code" jsonschema:"The complete program. Print what you need to see."`
	Files          []InputFile `json:"files,omitempty" jsonschema:"Input files, written under the working directory before the code runs."`
	TimeoutSeconds float64     `json:"timeout_seconds,omitempty" jsonschema:"Kill the program after this many seconds."`
}

// InputFile is one input file; give content (text) or content_base64 (binary), not both.
type InputFile struct {
	Name          string `json:"name" jsonschema:"Path relative to the working directory, e.g. data/input.csv (not under output/)."`
	Content       string `json:"content,omitempty" jsonschema:"The file's text."`
	ContentBase64 string `json:"content_base64,omitempty" jsonschema:"The file's bytes in standard base64, for binary files."`
}

// RunInSessionInput is run_in_session's arguments.
type RunInSessionInput struct {
	SessionID      string      `json:"session_id" jsonschema:"The session's ID, from open_session."`
	Code           string      `json:"code" jsonschema:"Code to run in the session's interpreter, whose variables, imports and files persist from earlier calls. Print what you need to see."`
	Files          []InputFile `json:"files,omitempty" jsonschema:"Input files, written under the working directory before the code runs."`
	TimeoutSeconds float64     `json:"timeout_seconds,omitempty" jsonschema:"Interrupt the code after this many seconds; the session stays usable when it can be interrupted."`
}

// Execution is what run_code and run_in_session answer. Output files come as content after it:
// images as image content, anything else as an embedded resource.
type Execution struct {
	Status       string       `json:"status" jsonschema:"ok (exit code 0), error (non-zero exit code: stderr says why), timeout (killed at the time limit), oom (killed for using too much memory), or not_run (see error)."`
	ExitCode     int          `json:"exit_code" jsonschema:"The program's exit status; 128+N when signal N killed it; -1 when it did not run."`
	TimedOut     bool         `json:"timed_out" jsonschema:"The program ran past the time limit; the output is what it printed until then."`
	Stdout       string       `json:"stdout"`
	Stderr       string       `json:"stderr"`
	Message      string       `json:"message,omitempty" jsonschema:"Notes: why the status is not ok, what was truncated."`
	Files        []OutputFile `json:"files,omitempty" jsonschema:"Files the program wrote (in a session: created or changed) under the output directory; their contents follow as content."`
	ExecutionID  string       `json:"execution_id,omitempty"`
	SessionID    string       `json:"session_id,omitempty"`
	CodeSeconds  float64      `json:"code_seconds" jsonschema:"The program's own run time."`
	TotalSeconds float64      `json:"total_seconds" jsonschema:"The whole call, the sandbox's start included."`
	Error        *ToolError   `json:"error,omitempty" jsonschema:"Why the code did not run, or what ended the session."`
}

// OutputFile describes one output file; its contents are a content block of the answer.
type OutputFile struct {
	Path      string `json:"path" jsonschema:"Path relative to the output directory."`
	Size      int64  `json:"size" jsonschema:"Size in bytes in the sandbox."`
	MIMEType  string `json:"mime_type"`
	Truncated bool   `json:"truncated,omitempty" jsonschema:"Only the first bytes came back: the output files' size limit was reached."`
}

// OpenSessionInput is open_session's arguments.
type OpenSessionInput struct {
	Language           string  `json:"language,omitempty" jsonschema:"The language of the session's interpreter."`
	IdleTimeoutSeconds float64 `json:"idle_timeout_seconds,omitempty" jsonschema:"End the session after this long without a call; default and most: the server's (describe_sandbox)."`
	MaxLifetimeSeconds float64 `json:"max_lifetime_seconds,omitempty" jsonschema:"End the session this long after it opened; default and most: the server's (describe_sandbox)."`
}

// SessionInfo is what open_session answers.
type SessionInfo struct {
	SessionID string `json:"session_id" jsonschema:"Pass it to run_in_session, upload_file, download_file and close_session. Whoever knows it can use the session: do not share it."`
	Language  string `json:"language"`
	Sandbox   string `json:"sandbox" jsonschema:"warm (a pre-started sandbox) or cold (one started for the session)."`
}

// SessionInput names a session (close_session).
type SessionInput struct {
	SessionID string `json:"session_id" jsonschema:"The session's ID, from open_session."`
}

// Closed is what close_session answers.
type Closed struct {
	SessionID string `json:"session_id"`
	Closed    bool   `json:"closed" jsonschema:"The session is over and its sandbox deleted."`
}

// UploadInput is upload_file's arguments; give content or content_base64, not both.
type UploadInput struct {
	SessionID     string `json:"session_id" jsonschema:"The session's ID, from open_session."`
	Path          string `json:"path" jsonschema:"Where to write the file: a path relative to the working directory (or absolute under it), not under output/. Directories are created; an existing file is replaced."`
	Content       string `json:"content,omitempty" jsonschema:"The file's text."`
	ContentBase64 string `json:"content_base64,omitempty" jsonschema:"The file's bytes in standard base64, for binary files."`
}

// Uploaded is what upload_file answers.
type Uploaded struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path" jsonschema:"The file's path relative to the working directory."`
	Size      int    `json:"size"`
}

// DownloadInput is download_file's arguments.
type DownloadInput struct {
	SessionID string `json:"session_id" jsonschema:"The session's ID, from open_session."`
	Path      string `json:"path" jsonschema:"The file to read: a path relative to the working directory, or absolute under it."`
}

// Downloaded is what download_file answers; the file's contents follow as a content block.
type Downloaded struct {
	SessionID string `json:"session_id"`
	Path      string `json:"path" jsonschema:"The file's path relative to the working directory."`
	Size      int64  `json:"size"`
	MIMEType  string `json:"mime_type"`
	Truncated bool   `json:"truncated,omitempty" jsonschema:"Only the first bytes came back: the file is larger than the output files' size limit."`
}

func (s *Server) addTools() error {
	o := s.run.Options()
	sandbox := fmt.Sprintf(" The sandbox (gVisor) has no network and no package installs; a program may run %g seconds at most.", o.Timeout.Seconds())
	files := fmt.Sprintf(" Input files appear under the working directory %s; files the code writes under %s/ come back (images as images).", runner.WorkDir, runner.OutputDir)
	return errors.Join(
		addTool(s, &sdk.Tool{Name: ToolRunCode, Title: "Run code in a fresh sandbox",
			Description: "Runs a complete program in a fresh, isolated sandbox and returns its stdout, stderr, exit code and output files. " +
				"Nothing persists between calls: for state across calls use open_session and run_in_session. Languages: " + languageList() + "." + sandbox + files +
				" A failing program is a result (status error, the traceback on stderr), not a tool error. With a progress token, the output streams as progress notifications.",
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)}}, s.runCode),
		addTool(s, &sdk.Tool{Name: ToolOpenSession, Title: "Open a session",
			Description: "Starts a session: one live interpreter in one sandbox, whose variables, imports and files under " + runner.WorkDir +
				fmt.Sprintf(" persist from one run_in_session to the next. Returns its session_id. It ends at close_session, after its idle timeout (%g seconds by default) or at its maximum lifetime (%g seconds). Languages: %s.",
					o.SessionIdleTimeout.Seconds(), o.SessionMaxLifetime.Seconds(), languageList()),
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)}}, s.openSession),
		addTool(s, &sdk.Tool{Name: ToolRunInSession, Title: "Run code in a session",
			Description: "Runs code in an open session's interpreter, where earlier calls' variables, imports and files are still there, and returns its stdout, stderr, exit code and the output files it created or changed." +
				sandbox + files + " An exception is a result (exit code 1) and the session goes on; so does a timeout when the code can be interrupted. " +
				"If the code ends the interpreter (os._exit, out of memory), the answer is an error session_ended with the result: open a new session.",
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(false)}}, s.runInSession),
		addTool(s, &sdk.Tool{Name: ToolUploadFile, Title: "Upload a file into a session",
			Description: "Writes a file into an open session's working directory " + runner.WorkDir + ", where its code can open it. At most 1 MiB.",
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true, OpenWorldHint: ptr(false)}}, s.uploadFile),
		addTool(s, &sdk.Tool{Name: ToolDownloadFile, Title: "Download a file from a session",
			Description: fmt.Sprintf("Reads a file of an open session's working directory %s (images come back as images). Files outside it are refused. At most %d bytes.", runner.WorkDir, o.MaxFileBytes),
			Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}}, s.downloadFile),
		addTool(s, &sdk.Tool{Name: ToolCloseSession, Title: "Close a session",
			Description: "Ends an open session and deletes its sandbox; its variables and files are gone.",
			Annotations: &sdk.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(false)}}, s.closeSession),
		addTool(s, &sdk.Tool{Name: ToolDescribeSandbox, Title: "Describe the sandbox",
			Description: "Lists what this server's sandbox namespace offers: the languages, the limits (time, memory, CPU, output sizes), the session terms and the warm pool's state (pre-started sandboxes start in milliseconds, others in about a second).",
			Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: ptr(false)}}, s.describeSandbox),
	)
}

// addTool registers a tool with its input schema (inputSchema's) and the output schema of Out. A
// handler answers a nil *Out with a tool error that has no structured content (failed).
func addTool[In, Out any](s *Server, t *sdk.Tool, h func(context.Context, *sdk.CallToolRequest, In) (*sdk.CallToolResult, *Out, error)) error {
	in, err := inputSchema[In](s)
	if err != nil {
		return fmt.Errorf("tool %s: input schema: %w", t.Name, err)
	}
	out, err := jsonschema.For[Out](nil)
	if err != nil {
		return fmt.Errorf("tool %s: output schema: %w", t.Name, err)
	}
	notNullable(out)
	t.InputSchema, t.OutputSchema = in, out
	sdk.AddTool(s.mcp, t, func(ctx context.Context, call *sdk.CallToolRequest, in In) (*sdk.CallToolResult, any, error) {
		res, out, err := h(ctx, call, in)
		if out == nil {
			return res, nil, err
		}
		return res, *out, err
	})
	return nil
}

// languageList names the languages for descriptions: "python (Python 3 ...)".
func languageList() string {
	var names []string
	for _, l := range languages {
		names = append(names, l.Name+" ("+l.Description+")")
	}
	return strings.Join(names, ", ")
}
