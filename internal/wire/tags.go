package wire

// Tag is the first byte of a record line.
type Tag byte

// The records. entrypoint.py defines the same table (its T_* constants and *_FIELDS tuples);
// TestEntrypointSpeaksTheWire fails when the two differ.
const (
	// Sandbox to runner.
	TagStdout Tag = 'O' // a chunk of the code's stdout
	TagStderr Tag = 'E' // a chunk of the code's stderr
	TagFile   Tag = 'F' // an output file's header (FileHeader)
	TagEnd    Tag = 'X' // the end record (End)
	TagBegin  Tag = 'B' // the sandbox has the whole request; the records up to X are its execution's (BeginRecord)
	// Both ways.
	TagData    Tag = 'D' // a chunk of the current file: an output file's, or a request's input file's
	TagPing    Tag = 'P' // a ping; the answer is empty, or a PingAnswer in a session or a spent Pod
	TagSession Tag = 'S' // runner: open a session (Hello); sandbox: it is open (SessionOpened)
	// Runner to sandbox.
	TagRequest   Tag = 'Q' // a request's header (RequestHeader)
	TagCode      Tag = 'C' // a chunk of the code
	TagInput     Tag = 'I' // an input file's header (InputHeader)
	TagGo        Tag = 'G' // the request is complete: run it
	TagInterrupt Tag = 'K' // in a session: interrupt the running execution
)

// Tags names every record, as entrypoint.py's T_* constants do (T_STDOUT is "stdout").
var Tags = map[string]Tag{
	"stdout": TagStdout, "stderr": TagStderr, "file": TagFile, "end": TagEnd, "begin": TagBegin,
	"data": TagData, "ping": TagPing, "session": TagSession,
	"request": TagRequest, "code": TagCode, "input": TagInput, "go": TagGo, "interrupt": TagInterrupt,
}

// Language is how the entrypoint runs code in one language.
type Language struct {
	File    string `json:"file"`    // the code's file name in the working directory
	Program string `json:"program"` // the interpreter, looked up on the image's PATH
}

// Languages the entrypoint runs code in (its LANGUAGES table). Python is the default, and the
// entrypoint's own interpreter; bash and javascript need theirs on the sandbox image's PATH.
var Languages = map[string]Language{
	"bash":       {File: "main.sh", Program: "bash"},
	"javascript": {File: "main.js", Program: "node"},
	"python":     {File: "main.py", Program: "python3"},
}

// CodeFile is the file name of code in lang ("" is Python).
func CodeFile(lang string) string {
	if lang == "" {
		lang = "python"
	}
	return Languages[lang].File
}

// End is the entrypoint's last record of an execution: everything the runner needs to know of how
// the code ended. Every field is written inside the sandbox, where the code runs: a Result built
// from it is only as trustworthy as the sandbox (see the README's "Results").
type End struct {
	ExitCode        int     `json:"exit_code"`
	Signal          int     `json:"signal"`
	TimedOut        bool    `json:"timed_out"`
	StdoutTruncated bool    `json:"stdout_truncated"`
	StderrTruncated bool    `json:"stderr_truncated"`
	FilesTruncated  bool    `json:"files_truncated"`
	StartedAt       float64 `json:"started_at"`
	FinishedAt      float64 `json:"finished_at"`
	MaxRSSKiB       int64   `json:"max_rss_kib"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	// SessionOver says why a session ended with this execution ("" while it goes on).
	SessionOver string `json:"session_over,omitempty"`
	// Refused says why the sandbox did not run the request (an input it could not write, a
	// broken request); "" when it ran it.
	Refused string `json:"refused,omitempty"`
}

// FileHeader starts an output file; its bytes follow in TagData records.
type FileHeader struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Truncated bool   `json:"truncated"`
}

// RequestHeader starts a request sent over stdin: the limits of this execution, and in a session
// the execution's ID (its records are framed by a BeginRecord naming it).
type RequestHeader struct {
	TimeoutSeconds float64 `json:"timeout_seconds"`
	MaxOutputBytes int64   `json:"max_output_bytes"`
	MaxFileBytes   int64   `json:"max_file_bytes"`
	MaxProcesses   int64   `json:"max_processes"`
	ExecutionID    string  `json:"execution_id,omitempty"`
	Language       string  `json:"language,omitempty"`
}

// InputHeader starts an input file of a request; its bytes follow in TagData records.
type InputHeader struct {
	Path string `json:"path"`
}

// Hello opens a session in a waiting sandbox: its ID and terms, which the sandbox enforces itself.
type Hello struct {
	ID                 string  `json:"id"`
	IdleTimeoutSeconds float64 `json:"idle_timeout_seconds"`
	MaxLifetimeSeconds float64 `json:"max_lifetime_seconds"`
	MaxProcesses       int64   `json:"max_processes"`
	// ExitWhenOver: the entrypoint exits when the session ends (a Job's Pod) instead of waiting
	// to be deleted (a pool Pod, whose container would be restarted).
	ExitWhenOver bool `json:"exit_when_over"`
	// Language is the session's interpreter's (Languages); empty is Python.
	Language string `json:"language,omitempty"`
}

// SessionOpened is the sandbox's answer to a Hello.
type SessionOpened struct {
	Session string `json:"session"`
	// Refused says why the sandbox did not open the session (an interpreter its image lacks);
	// "" when it did.
	Refused string `json:"refused,omitempty"`
}

// BeginRecord starts an execution's records within a session's stream.
type BeginRecord struct {
	ExecutionID string `json:"execution_id"`
}

// PingRequest is what a runner may ask with a ping; an empty ping asks nothing.
type PingRequest struct {
	// KeepaliveSeconds: this runner holds the sandbox ready and pings it at least that often; a
	// sandbox whose pings stop leaves (its runner is gone).
	KeepaliveSeconds float64 `json:"keepalive_seconds,omitempty"`
	// Replay asks a session's sandbox to write this execution's records again before the answer
	// (the one running, or the last): the runner's attach broke mid-execution.
	Replay string `json:"replay,omitempty"`
}

// PingAnswer is a sandbox's answer to a ping when it has something to say: the session it holds
// and what runs in it, or that it is a spent Pod's restarted container that will never serve.
type PingAnswer struct {
	Session string `json:"session,omitempty"`
	Spent   bool   `json:"spent,omitempty"`
	// Running is the execution running in the session, "" when none is; IdleSeconds how long
	// ago the last one ended, by the sandbox's clock.
	Running     string  `json:"running,omitempty"`
	IdleSeconds float64 `json:"idle_seconds,omitempty"`
}
