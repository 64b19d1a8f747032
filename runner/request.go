package runner

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// Request is one execution.
type Request struct {
	// Code is the program to run, with /workspace as its working directory: by default Python, as
	// main.py (`python3 -u main.py`).
	Code string
	// Language is Code's: one of Languages ("python", "bash", "javascript"); empty is Python.
	// Bash runs main.sh with `bash --noprofile --norc`, JavaScript main.js with `node`; their
	// interpreter must be on the sandbox image's PATH (Python is the entrypoint's own), and a
	// sandbox without it refuses the request (ErrInvalidRequest) before running anything. In a
	// session, empty means the session's language, and another is refused.
	Language string
	// Files are input files: slash-separated relative paths to contents. The code finds them,
	// writable, under its working directory (/workspace/<path>).
	Files map[string][]byte
	// ExecutionID names the objects (gkexec-<id>) and labels them; it must be a DNS label of at
	// most 40 characters. Empty means a random one.
	ExecutionID string
	// Timeout, if set, bounds this execution's run time below Options.Timeout, which stays the
	// operator's ceiling: a longer one is refused.
	Timeout time.Duration
	// Output, if set, receives the code's output while it runs: each chunk of stdout or stderr as
	// the sandbox sends it, in order within each stream, byte for byte, within the same caps as
	// Result.Stdout and Result.Stderr (the chunks of a stream add up to exactly the Result's
	// bytes, and none is delivered twice, even when a broken stream is read again). It is called
	// from a goroutine of the runner's, one call at a time, behind a queue of 64 chunks; p is
	// valid only during the call. A slow callback backs the stream up once the queue is full, but
	// never holds the execution: at the runner's deadline, the caller's cancellation or an
	// infrastructure error the runner stops delivering and Execute returns without waiting for a
	// call in progress (one may still be starting); the chunks delivered then add up to less than
	// the Result's bytes. Once the result is in, what is queued is delivered before Execute
	// returns, but not past the deadline. The Result is the same with or without it.
	Output func(s Stream, p []byte)
}

// Stream is one of the code's two output streams.
type Stream = wire.Stream

const (
	Stdout = wire.Stdout // 1
	Stderr = wire.Stderr // 2
)

// timeout is the run-time bound in force for req.
func (req Request) timeout(o *Options) time.Duration {
	if req.Timeout > 0 {
		return req.Timeout
	}
	return o.Timeout
}

// OutputDir is where the code writes files it wants returned: every regular file below it comes
// back in Result.Files, path order, until Options.MaxFileBytes are spent.
const OutputDir = podspec.OutputDir // "/workspace/output"

// WorkDir is the code's working directory; input files are copied into it.
const WorkDir = podspec.WorkDir // "/workspace"

const maxExecutionIDLength = 40

// validate checks the request and returns it normalised (an execution ID filled in).
func (req Request) validate(o *Options, newID func() string) (Request, error) {
	var problems []string
	if req.Timeout < 0 || req.Timeout > o.Timeout {
		problems = append(problems, fmt.Sprintf("Timeout %s: must be between 0 (the runner's %s) and the runner's %s", req.Timeout, o.Timeout, o.Timeout))
	}
	if strings.TrimSpace(req.Code) == "" {
		problems = append(problems, "Code is empty")
	}
	if why := languageProblem(req.Language); why != "" {
		problems = append(problems, why)
	}
	if req.ExecutionID == "" {
		req.ExecutionID = newID()
	} else {
		if len(req.ExecutionID) > maxExecutionIDLength {
			problems = append(problems, fmt.Sprintf("ExecutionID %q is longer than %d characters", req.ExecutionID, maxExecutionIDLength))
		}
		for _, msg := range validation.IsDNS1123Label(req.ExecutionID) {
			problems = append(problems, fmt.Sprintf("ExecutionID %q: %s", req.ExecutionID, msg))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(req.Files)) {
		if why := checkFilePath(name); why != "" {
			problems = append(problems, fmt.Sprintf("input file %q: %s", name, why))
		}
	}
	if len(problems) > 0 {
		return req, fmt.Errorf("%w: %s", ErrInvalidRequest, strings.Join(problems, "; "))
	}
	return req, nil
}

// Languages are the languages code may be in (Request.Language, SessionOptions.Language), sorted.
func Languages() []string {
	return slices.Sorted(maps.Keys(wire.Languages))
}

func languageProblem(lang string) string {
	if _, ok := wire.Languages[lang]; ok || lang == "" {
		return ""
	}
	return fmt.Sprintf("Language %q: gkexec runs %s (empty is python)", lang, strings.Join(Languages(), ", "))
}

// outputDirName is OutputDir relative to WorkDir.
const outputDirName = "output"

func checkFilePath(name string) string {
	switch {
	case name == "":
		return "empty name"
	case strings.HasPrefix(name, "/"):
		return "must be a relative path"
	case path.Clean(name) != name:
		return "must be a clean path (no //, ./ or trailing /)"
	case name == ".." || strings.HasPrefix(name, "../"):
		return "must stay inside the working directory"
	case len(name) > 1024:
		return "path longer than 1024 characters"
	case strings.ContainsAny(name, "\x00\n\r"):
		return "contains a NUL or newline"
	case name == outputDirName || strings.HasPrefix(name, outputDirName+"/"):
		return "output/ is where the code leaves the files it returns; put inputs elsewhere"
	}
	for _, part := range strings.Split(name, "/") {
		if strings.HasPrefix(part, "..") {
			return "path elements may not start with '..' (reserved by ConfigMap volumes)"
		}
	}
	return ""
}

func describeSize(n int) string {
	return fmt.Sprintf("%.1f KiB", float64(n)/1024)
}
