package runner

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gkexec/gkexec/internal/wire"
)

// Result is what an execution produced. A non-zero exit code is a result, not an error.
type Result struct {
	ExecutionID string
	// Session is the ID of the session the execution ran in; empty for a one-shot execution.
	Session string
	// Stdout and Stderr are the code's two streams, kept apart, byte for byte.
	Stdout []byte
	Stderr []byte
	// ExitCode is the code's exit status; 128+N when killed by signal N.
	ExitCode int
	// Signal that ended the code, 0 if it exited by itself.
	Signal int
	// TimedOut: the code was killed at Options.Timeout (Execute also returns ErrTimeout).
	TimedOut bool
	// OOMKilled: the sandbox ran out of memory (Options.MemoryLimit) and was killed.
	OOMKilled bool
	// StdoutTruncated, StderrTruncated, FilesTruncated: a size cap dropped the rest.
	StdoutTruncated bool
	StderrTruncated bool
	FilesTruncated  bool
	// Files written under OutputDir, in path order.
	Files []File
	// Sandbox is the source that ran it: SandboxWarm (a pre-started Pod of the warm pool) or
	// SandboxCold (a Job created for this execution).
	Sandbox string
	// PodName and NodeName: where it ran.
	PodName  string
	NodeName string
	// LeftBehind names the objects the runner could not delete, after retrying for
	// Options.CleanupTimeout; empty when everything it made is gone. `gkexec gc` removes them.
	LeftBehind []string
	// Timings of each phase, as the runner observed them.
	Timings Timings
	// CodeDuration is the code's own run time, measured inside the sandbox.
	CodeDuration time.Duration
	// MaxRSSBytes is the peak resident memory of the code's processes, measured inside the sandbox.
	MaxRSSBytes int64
	// Egress is what the namespace's egress gateway allowed and refused for this execution; nil
	// when the namespace has none.
	Egress *Egress
}

// File is one output file.
type File struct {
	// Path relative to OutputDir, slash separated.
	Path string
	// Data holds the content, at most Size bytes (less when Truncated).
	Data []byte
	// Size is the file's size in the sandbox.
	Size      int64
	Truncated bool
}

// Sources of a sandbox (Result.Sandbox).
const (
	SandboxCold = "cold"
	SandboxWarm = "warm"
)

// Timings records when the runner saw each phase; zero when a phase was not reached. A warm
// sandbox held ready ahead of the request was claimed and attached before Requested.
type Timings struct {
	Requested time.Time // Execute was called
	Admitted  time.Time // its turn came: cold, in the runner's queue (Options.MaxInFlight); in a session, the session's
	Created   time.Time // cold: ConfigMap and Job accepted by the API server
	Claimed   time.Time // warm: a pool Pod was claimed
	Scheduled time.Time // cold: the Pod was bound to a node
	Attached  time.Time // warm: the attach stream to the waiting entrypoint was open
	Started   time.Time // cold: the container was seen running; warm: the request was delivered
	Finished  time.Time // the end-of-output record (or the container's termination) was seen
	LogsRead  time.Time // the output stream was fully read
	CleanedUp time.Time // the deletions of what the source made were accepted
}

// Outcome summarises the result in one word, for logs and metrics.
func (r *Result) Outcome() string {
	switch {
	case r.TimedOut:
		return "timeout"
	case r.OOMKilled:
		return "oom"
	case r.ExitCode != 0:
		return "error"
	default:
		return "success"
	}
}

// resultJSON is the documented JSON form of a Result (README "Results", docs/integrations.md).
type resultJSON struct {
	ExecutionID     string             `json:"execution_id"`
	Session         string             `json:"session_id,omitempty"`
	ExitCode        int                `json:"exit_code"`
	Signal          int                `json:"signal,omitempty"`
	Outcome         string             `json:"outcome"`
	Stdout          string             `json:"stdout"`
	StdoutBase64    []byte             `json:"stdout_base64,omitempty"`
	Stderr          string             `json:"stderr"`
	StderrBase64    []byte             `json:"stderr_base64,omitempty"`
	TimedOut        bool               `json:"timed_out"`
	OOMKilled       bool               `json:"oom_killed"`
	StdoutTruncated bool               `json:"stdout_truncated"`
	StderrTruncated bool               `json:"stderr_truncated"`
	FilesTruncated  bool               `json:"files_truncated"`
	Files           []fileJSON         `json:"files"`
	Sandbox         string             `json:"sandbox,omitempty"`
	PodName         string             `json:"pod_name,omitempty"`
	NodeName        string             `json:"node_name,omitempty"`
	LeftBehind      []string           `json:"left_behind,omitempty"`
	Timings         timingsJSON        `json:"timings"`
	CodeSeconds     float64            `json:"code_seconds"`
	MaxRSSBytes     int64              `json:"max_rss_bytes,omitempty"`
	PhaseSeconds    map[string]float64 `json:"phase_seconds"`
	Egress          *Egress            `json:"egress,omitempty"`
}

type fileJSON struct {
	Path      string `json:"path"`
	Size      int64  `json:"size"`
	Truncated bool   `json:"truncated,omitempty"`
	Content   []byte `json:"content_base64"`
}

type timingsJSON struct {
	Requested *time.Time `json:"requested,omitempty"`
	Admitted  *time.Time `json:"admitted,omitempty"`
	Created   *time.Time `json:"created,omitempty"`
	Claimed   *time.Time `json:"claimed,omitempty"`
	Scheduled *time.Time `json:"scheduled,omitempty"`
	Attached  *time.Time `json:"attached,omitempty"`
	Started   *time.Time `json:"started,omitempty"`
	Finished  *time.Time `json:"finished,omitempty"`
	LogsRead  *time.Time `json:"logs_read,omitempty"`
	CleanedUp *time.Time `json:"cleaned_up,omitempty"`
}

// MarshalJSON gives the documented JSON form: text fields as strings, with a lossless base64 twin
// only when the bytes are not valid UTF-8; file contents always base64.
func (r Result) MarshalJSON() ([]byte, error) {
	return json.Marshal(r.jsonForm())
}

// jsonForm is the Result as resultJSON. File contents are shared with the Result, not copied:
// encoding only reads them.
func (r Result) jsonForm() resultJSON {
	at := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	out := resultJSON{
		ExecutionID: r.ExecutionID, Session: r.Session, ExitCode: r.ExitCode, Signal: r.Signal, Outcome: r.Outcome(),
		TimedOut: r.TimedOut, OOMKilled: r.OOMKilled,
		StdoutTruncated: r.StdoutTruncated, StderrTruncated: r.StderrTruncated, FilesTruncated: r.FilesTruncated,
		Files: []fileJSON{}, Sandbox: r.Sandbox, PodName: r.PodName, NodeName: r.NodeName, LeftBehind: r.LeftBehind,
		Timings: timingsJSON{at(r.Timings.Requested), at(r.Timings.Admitted), at(r.Timings.Created), at(r.Timings.Claimed), at(r.Timings.Scheduled),
			at(r.Timings.Attached), at(r.Timings.Started), at(r.Timings.Finished), at(r.Timings.LogsRead), at(r.Timings.CleanedUp)},
		CodeSeconds: r.CodeDuration.Seconds(), MaxRSSBytes: r.MaxRSSBytes, PhaseSeconds: map[string]float64{},
		Egress: r.Egress,
	}
	for name, d := range r.Timings.Phases() {
		out.PhaseSeconds[name] = d.Seconds()
	}
	out.Stdout, out.StdoutBase64 = textAndBase64(r.Stdout)
	out.Stderr, out.StderrBase64 = textAndBase64(r.Stderr)
	for _, f := range r.Files {
		out.Files = append(out.Files, fileJSON{f.Path, f.Size, f.Truncated, f.Data})
	}
	return out
}

// UnmarshalJSON reads what MarshalJSON writes, so that clients of `gkexec serve` and
// `gkexec run --json` get the same Result back.
func (r *Result) UnmarshalJSON(b []byte) error {
	var in resultJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	from := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return *t
	}
	exact := func(text string, b64 []byte) []byte {
		if b64 != nil {
			return b64 // present only when the bytes are not UTF-8: the exact ones
		}
		return []byte(text)
	}
	*r = Result{
		ExecutionID: in.ExecutionID, Session: in.Session, ExitCode: in.ExitCode, Signal: in.Signal,
		Stdout: exact(in.Stdout, in.StdoutBase64), Stderr: exact(in.Stderr, in.StderrBase64),
		TimedOut: in.TimedOut, OOMKilled: in.OOMKilled,
		StdoutTruncated: in.StdoutTruncated, StderrTruncated: in.StderrTruncated, FilesTruncated: in.FilesTruncated,
		Files: []File{}, Sandbox: in.Sandbox, PodName: in.PodName, NodeName: in.NodeName, LeftBehind: in.LeftBehind,
		Timings: Timings{from(in.Timings.Requested), from(in.Timings.Admitted), from(in.Timings.Created), from(in.Timings.Claimed), from(in.Timings.Scheduled),
			from(in.Timings.Attached), from(in.Timings.Started), from(in.Timings.Finished), from(in.Timings.LogsRead), from(in.Timings.CleanedUp)},
		CodeDuration: time.Duration(in.CodeSeconds * float64(time.Second)), MaxRSSBytes: in.MaxRSSBytes,
		Egress: in.Egress,
	}
	for _, f := range in.Files {
		r.Files = append(r.Files, File{Path: f.Path, Data: f.Content, Size: f.Size, Truncated: f.Truncated})
	}
	return nil
}

// takeOutput copies what the sandbox said into the Result: stdout and stderr are copied, file
// data is shared with the decoder.
func (r *Result) takeOutput(o wire.Output) {
	r.Stdout = append([]byte(nil), o.Stdout...)
	r.Stderr = append([]byte(nil), o.Stderr...)
	r.StdoutTruncated, r.StderrTruncated, r.FilesTruncated = o.StdoutTruncated, o.StderrTruncated, o.FilesTruncated
	r.Files = make([]File, len(o.Files))
	for i, f := range o.Files {
		r.Files[i] = File{Path: f.Path, Data: f.Data, Size: f.Size, Truncated: f.Truncated}
	}
	if e := o.End; e != nil {
		r.ExitCode, r.Signal, r.TimedOut = e.ExitCode, e.Signal, e.TimedOut
		r.CodeDuration = e.CodeDuration()
		r.MaxRSSBytes = e.MaxRSSKiB * 1024
	}
}

func textAndBase64(b []byte) (string, []byte) {
	if utf8.Valid(b) {
		return string(b), nil
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), b
}

// PhaseNames are the consecutive phases of an execution, in order. A cold execution goes through
// queue, create, schedule, start, run, read_logs, cleanup; a warm one through claim, attach,
// start, run, read_logs, cleanup, or only start onwards when its sandbox was held ready ahead.
var PhaseNames = []string{"queue", "create", "claim", "schedule", "attach", "start", "run", "read_logs", "cleanup"}

// ColdPhaseNames and WarmPhaseNames are the phases a cold execution and a warm one claimed on
// request go through.
var (
	ColdPhaseNames = []string{"queue", "create", "schedule", "start", "run", "read_logs", "cleanup"}
	WarmPhaseNames = []string{"claim", "attach", "start", "run", "read_logs", "cleanup"}
)

// Phases breaks the execution into consecutive phases from Requested on: queue (waiting for a cold
// slot, Options.MaxInFlight), create (ConfigMap and Job accepted), claim (pool Pod claimed), schedule (Pod bound), attach (stream open), start (container
// running, or request delivered), run (end record seen), read_logs, cleanup. A phase not reached,
// or done before Requested, is absent; the next one is measured from the last one seen.
func (t Timings) Phases() map[string]time.Duration {
	marks := []time.Time{t.Admitted, t.Created, t.Claimed, t.Scheduled, t.Attached, t.Started, t.Finished, t.LogsRead, t.CleanedUp}
	out := make(map[string]time.Duration, len(marks))
	prev := t.Requested
	for i, at := range marks {
		if at.IsZero() || prev.IsZero() || at.Before(t.Requested) {
			continue
		}
		out[PhaseNames[i]] = max(at.Sub(prev), 0)
		prev = at
	}
	return out
}
