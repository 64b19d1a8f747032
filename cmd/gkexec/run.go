package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

const (
	flagCode      = "code"
	flagInput     = "input"
	flagOutputDir = "output-dir"
	flagJSON      = "json"
	flagID        = "id"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run code (Python, bash or JavaScript) in a new sandbox and print its output",
		ArgsUsage: "[FILE | -]",
		Description: `The code comes from -c, from FILE, or from standard input. It is Python unless --language
or FILE's extension (.sh, .bash: bash; .js, .mjs, .cjs: javascript) says otherwise; bash and
javascript need their interpreter (bash, node) in the sandbox image. Its stdout goes to stdout and its
stderr to stderr as it runs, and gkexec exits with the code's exit status. Files the code writes
under ` + runner.OutputDir + ` are saved to --output-dir. With --json nothing is printed while
it runs: stdout gets one JSON document at the end.

Exit codes of gkexec itself: 2 usage or invalid request, 124 timeout, 125 runner failure
(cluster unreachable, RBAC, API error), 126 the sandbox cannot start (image, RuntimeClass,
no matching node, quota, namespace), 130 interrupted. Everything created is deleted on every
path, Ctrl-C included.

Examples:
   gkexec run -c 'print(1)'
   gkexec run -n agent-sandbox --timeout 30s --input data.csv --output-dir out/ analysis.py
   echo 'import sys; sys.exit(3)' | gkexec run -
   gkexec run -l bash -c 'ls -la; uname -a'
   gkexec run report.js
   gkexec run --json -c 'open("output/r.txt","w").write("hi")'`,
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: flagCode, Aliases: []string{"c"}, Usage: "the code to run"},
			languageFlag("the code's language (default: from FILE's extension, else python)"),
			&cli.StringSliceFlag{Name: flagInput, Aliases: []string{"i"}, Usage: "input file `[NAME=]PATH`, copied to /workspace/NAME (repeatable)", TakesFile: true},
			&cli.StringFlag{Name: flagOutputDir, Aliases: []string{"o"}, Usage: "save output files here (created if missing)", TakesFile: true},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the whole result as one JSON document on stdout"},
			&cli.StringFlag{Name: flagID, Usage: "execution ID (a DNS label, <= 40 chars; default random)"},
		}, clusterFlags()...), sandboxFlags()...),
		Action: runAction,
	}
}

func runAction(c *cli.Context) error { return runWith(c, runnerFromFlags) }

// runWith is the command once a runner can be had: newRunner is runnerFromFlags, or a runner on a
// fake cluster in the tests.
func runWith(c *cli.Context, newRunner func(*cli.Context, io.Writer) (*runner.Runner, error)) error {
	stdout, stderr := c.App.Writer, c.App.ErrWriter
	code, err := readCode(c)
	if err != nil {
		return err
	}
	lang, err := codeLanguage(c, c.Args().First())
	if err != nil {
		return err
	}
	files, outDir, err := inputsAndOutputDir(c)
	if err != nil {
		return err
	}
	r, err := newRunner(c, stderr)
	if err != nil {
		return err
	}
	defer r.Close()

	req := runner.Request{Code: code, Language: lang, Files: files, ExecutionID: c.String(flagID)}
	var term *terminal
	if !c.Bool(flagJSON) {
		// The code's output goes out as the sandbox sends it, not at the end; --json keeps stdout
		// for the one document.
		term = &terminal{stdout: stdout, stderr: stderr}
		req.Output = term.write
	}
	res, execErr := r.Execute(c.Context, req)
	return reportExecution(stdout, stderr, term, res, execErr, outDir)
}

// inputsAndOutputDir reads the --input files and makes the --output-dir, before anything is
// contacted: a bad path is a usage error that leaves nothing in the cluster.
func inputsAndOutputDir(c *cli.Context) (map[string][]byte, string, error) {
	files, err := readInputs(c.StringSlice(flagInput))
	if err != nil {
		return nil, "", err
	}
	outDir := c.String(flagOutputDir)
	if outDir != "" {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return nil, "", usageError("--%s: %v", flagOutputDir, err)
		}
	}
	return files, outDir, nil
}

// reportExecution finishes an execution, one-shot or in a session: output files saved, the JSON
// document (term nil) or gkexec's notes on a line of their own after the streamed output, and
// the exit status.
func reportExecution(stdout, stderr io.Writer, term *terminal, res runner.Result, execErr error, outDir string) error {
	if execErr != nil && res.Timings.Started.IsZero() {
		return cli.Exit(execErr, exitCodeFor(execErr))
	}
	var saveErr error
	if outDir != "" {
		saveErr = saveFiles(outDir, res.Files)
	}
	if term == nil {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return cli.Exit(err, exitRunner)
		}
	} else {
		// Everything the code printed is out already (Output is never called after Execute
		// returns). What gkexec says after it, notes and errors, starts on a line of its own.
		var said bytes.Buffer
		notes(&said, res)
		if said.Len() > 0 || execErr != nil || saveErr != nil {
			term.endLine()
		}
		_, _ = said.WriteTo(stderr)
	}
	switch {
	case execErr != nil:
		return cli.Exit(execErr, exitCodeFor(execErr))
	case saveErr != nil:
		return cli.Exit(saveErr, exitRunner)
	}
	return cli.Exit("", res.ExitCode)
}

// terminal writes the code's output to gkexec's stdout and stderr as it arrives, and remembers
// whether it left a line open, so that gkexec's own messages after it start on a line of their own.
type terminal struct {
	stdout, stderr io.Writer
	openLine       bool // the last byte written was not a newline
}

// write is the runner's Request.Output: one goroutine at a time, never after Execute returns.
func (t *terminal) write(s runner.Stream, p []byte) {
	w := t.stdout
	if s == runner.Stderr {
		w = t.stderr
	}
	if len(p) == 0 {
		return
	}
	_, _ = w.Write(p)
	t.openLine = p[len(p)-1] != '\n'
}

// endLine ends a line the code left open, on stderr, where gkexec's notes and errors go: on a
// terminal they would otherwise run on from the code's last line. It is called only when gkexec
// has something to say, so that the code's own output stays byte for byte what it wrote.
func (t *terminal) endLine() {
	if t.openLine {
		fmt.Fprintln(t.stderr)
		t.openLine = false
	}
}

// notes tells the user, on stderr, what the streams themselves do not show.
func notes(w io.Writer, res runner.Result) {
	if res.OOMKilled {
		fmt.Fprintln(w, "gkexec: the code was killed: out of memory (raise --memory-limit)")
	}
	for _, s := range []struct {
		cut  bool
		what string
	}{{res.StdoutTruncated, "stdout"}, {res.StderrTruncated, "stderr"}, {res.FilesTruncated, "output files"}} {
		if s.cut {
			fmt.Fprintf(w, "gkexec: %s truncated at the size cap\n", s.what)
		}
	}
	if len(res.LeftBehind) > 0 {
		fmt.Fprintf(w, "gkexec: cleanup could not delete %s; run `gkexec gc` to remove it\n", strings.Join(res.LeftBehind, ", "))
	}
}

// maxCodeBytes is what a ConfigMap holds (the API server's limit on its data): the code must fit in one.
const maxCodeBytes = 1 << 20

func readCode(c *cli.Context) (string, error) {
	code, args := c.String(flagCode), c.Args()
	switch {
	case c.IsSet(flagCode) && args.Len() > 0:
		return "", usageError("give the code with -c or as FILE, not both")
	case args.Len() > 1:
		return "", usageError("one FILE at most, got %d: %s", args.Len(), strings.Join(args.Slice(), " "))
	case c.IsSet(flagCode):
		return code, nil
	case args.Len() == 1 && args.First() != "-":
		f, err := os.Open(args.First())
		if err != nil {
			return "", usageError("%v", err)
		}
		defer f.Close()
		return readCodeFrom(f, args.First())
	}
	if f, ok := c.App.Reader.(*os.File); ok && args.Len() == 0 {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "", usageError("no code: use -c CODE, a FILE, or pipe it on stdin (see gkexec run --help)")
		}
	}
	return readCodeFrom(c.App.Reader, "stdin")
}

// readCodeFrom reads at most one byte more than fits, so that a flood (or /dev/zero) is refused
// at once instead of read into memory.
func readCodeFrom(r io.Reader, what string) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxCodeBytes+1))
	if err != nil {
		return "", usageError("reading %s: %v", what, err)
	}
	if len(b) > maxCodeBytes {
		return "", usageError("%v: %v: the code is larger than 1 MiB (read from %s); code and input files must fit in one ConfigMap",
			runner.ErrInvalidRequest, runner.ErrRequestTooLarge, what)
	}
	return string(b), nil
}

// readInputs reads --input [NAME=]PATH flags; NAME defaults to the file's base name.
func readInputs(specs []string) (map[string][]byte, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	files := make(map[string][]byte, len(specs))
	for _, spec := range specs {
		name, path, ok := strings.Cut(spec, "=")
		if !ok {
			name, path = filepath.Base(spec), spec
		}
		if _, dup := files[name]; dup {
			return nil, usageError("--%s: two inputs named %q", flagInput, name)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, usageError("--%s: %v", flagInput, err)
		}
		files[name] = b
	}
	return files, nil
}

// saveFiles writes output files under dir, each through a temporary file and a rename, so that a
// failure never leaves a half-written file; paths that would leave dir are refused.
func saveFiles(dir string, files []runner.File) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("--%s: %w", flagOutputDir, err)
	}
	defer root.Close()
	var errs []error
	for _, f := range files {
		rel := filepath.FromSlash(f.Path)
		if !filepath.IsLocal(rel) {
			errs = append(errs, fmt.Errorf("output file %q: path leaves the output directory; skipped", f.Path))
			continue
		}
		if err := writeAtomic(root, rel, f.Data); err != nil {
			errs = append(errs, fmt.Errorf("output file %q: %w", f.Path, err))
		}
	}
	return errors.Join(errs...)
}

func writeAtomic(root *os.Root, rel string, data []byte) error {
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	tmp := rel + ".gkexec-partial"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = root.Remove(tmp)
		return err
	}
	if err := root.Rename(tmp, rel); err != nil {
		_ = root.Remove(tmp)
		return err
	}
	return nil
}
