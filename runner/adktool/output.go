package adktool

// What the model reads back: a Result made into an Output, its output files kept as artifacts.

import (
	"fmt"
	"mime"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/adk/agent"
	"google.golang.org/genai"

	"github.com/gkexec/gkexec/runner"
)

func (t *execTool) output(res runner.Result, took time.Duration) Output {
	out := Output{
		ExitCode: res.ExitCode, ExecutionID: res.ExecutionID,
		CodeSeconds: res.CodeDuration.Seconds(), TotalSeconds: took.Seconds(),
	}
	var notes []string
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
	if out.Stdout, cut = clip(res.Stdout, t.cfg.MaxOutputBytes); cut || res.StdoutTruncated {
		notes = append(notes, "stdout was truncated; print less")
	}
	if out.Stderr, cut = clip(res.Stderr, t.cfg.MaxOutputBytes); cut || res.StderrTruncated {
		notes = append(notes, "stderr was truncated")
	}
	if res.FilesTruncated {
		notes = append(notes, "output files were truncated at the sandbox's size limit")
	}
	budget := 4 * t.cfg.MaxInlineFileBytes
	for _, f := range res.Files {
		of := OutputFile{Path: f.Path, Size: f.Size}
		if n := len(f.Data); n <= t.cfg.MaxInlineFileBytes && n <= budget && !f.Truncated && utf8.Valid(f.Data) {
			of.Content, budget = string(f.Data), budget-n
		}
		out.Files = append(out.Files, of)
	}
	if out.Status == StatusOK && len(notes) == 0 {
		return out
	}
	out.Message = strings.Join(notes, "; ")
	return out
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

func saveArtifacts(ctx agent.ToolContext, files []runner.File, out *Output) error {
	for i, f := range files {
		mt := mime.TypeByExtension(path.Ext(f.Path))
		if mt == "" {
			mt = "application/octet-stream"
		}
		if _, err := ctx.Artifacts().Save(ctx, f.Path, genai.NewPartFromBytes(f.Data, mt)); err != nil {
			return fmt.Errorf("artifact %s: %w", f.Path, err)
		}
		out.Files[i].Artifact = f.Path
	}
	return nil
}
