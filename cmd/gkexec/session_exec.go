package main

import (
	"context"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

func sessionExecCommand(d sessionDeps) *cli.Command {
	// exec shapes one execution; the session's sandbox was shaped when it opened.
	execFlags := append([]cli.Flag{
		&cli.StringFlag{Name: flagCode, Aliases: []string{"c"}, Usage: "the code to run"},
		languageFlag("the code's language, which must be the session's (default: from FILE's extension, else the session's)"),
		&cli.StringSliceFlag{Name: flagInput, Aliases: []string{"i"}, Usage: "input file `[NAME=]PATH`, copied to /workspace/NAME (repeatable)", TakesFile: true},
		&cli.StringFlag{Name: flagOutputDir, Aliases: []string{"o"}, Usage: "save the output files this execution wrote or changed here (created if missing)", TakesFile: true},
		&cli.BoolFlag{Name: flagJSON, Usage: "print the whole result as one JSON document on stdout"},
	}, pickFlags(sandboxFlags(), flagTimeout, flagMaxOutputBytes, flagMaxFileBytes)...)
	return &cli.Command{
		Name:      "exec",
		Usage:     "run code in an open session and print its output",
		ArgsUsage: "ID [FILE | -]",
		Description: `Runs the code from -c, FILE or standard input in session ID, from any process: what earlier
executions defined is there. Its stdout and stderr stream to gkexec's as it runs, and gkexec
exits with the code's exit status (an exception is 1, and the session goes on). At --timeout the
code is interrupted (exit 124) and the session goes on if the interpreter could be interrupted.
The code is in the session's language (session open --language); code in another is refused.

Examples:
   gkexec session exec -n agent-sandbox -c 'x = 41' "$id"
   gkexec session exec -n agent-sandbox --input data.csv --output-dir out/ "$id" step2.py
   echo 'print(x + 1)' | gkexec session exec -n agent-sandbox "$id"`,
		Flags:  append(execFlags, clusterFlags()...),
		Action: d.exec,
	}
}

// exec runs one execution in an open session and reports it as `gkexec run` does.
func (d sessionDeps) exec(c *cli.Context) error {
	id, rest, err := sessionArgs(c, false, 1)
	if err != nil {
		return err
	}
	code, err := sessionCode(c, rest)
	if err != nil {
		return err
	}
	var file string
	if len(rest) == 1 {
		file = rest[0]
	}
	lang, err := codeLanguage(c, file)
	if err != nil {
		return err
	}
	files, outDir, err := inputsAndOutputDir(c)
	if err != nil {
		return err
	}
	resumes := func(ctx context.Context, sr sessionRunner) (liveSession, error) { return sr.Session(ctx, id) }
	return d.withSession(c, resumes, func(s liveSession) error {
		req := runner.Request{Code: code, Language: lang, Files: files}
		var term *terminal
		if !c.Bool(flagJSON) {
			term = &terminal{stdout: c.App.Writer, stderr: c.App.ErrWriter}
			req.Output = term.write
		}
		res, execErr := s.Execute(c.Context, req)
		return reportExecution(c.App.Writer, c.App.ErrWriter, term, res, execErr, outDir)
	})
}

// sessionCode reads the code as `gkexec run` does (readCode), from the arguments after the ID.
func sessionCode(c *cli.Context, args []string) (string, error) {
	switch {
	case c.IsSet(flagCode) && len(args) > 0:
		return "", usageError("give the code with -c or as FILE, not both")
	case c.IsSet(flagCode):
		return c.String(flagCode), nil
	case len(args) == 1 && args[0] != "-":
		f, err := os.Open(args[0])
		if err != nil {
			return "", usageError("%v", err)
		}
		defer f.Close()
		return readCodeFrom(f, args[0])
	}
	if f, ok := c.App.Reader.(*os.File); ok && len(args) == 0 {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return "", usageError("no code: use -c CODE, a FILE, or pipe it on stdin (or try gkexec session repl)")
		}
	}
	return readCodeFrom(c.App.Reader, "stdin")
}
