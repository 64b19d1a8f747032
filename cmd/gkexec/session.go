package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

const (
	flagIdleTimeout = "idle-timeout"
	flagMaxLifetime = "max-lifetime"
)

// sessionRunner is what the session commands need of a runner: *runner.Runner through
// librarySessions; the tests give a fake, since sessions talk to their sandbox over pods/attach,
// which client-go's fake clientset cannot serve.
type sessionRunner interface {
	OpenSession(ctx context.Context, so runner.SessionOptions) (liveSession, error)
	Session(ctx context.Context, id string) (liveSession, error)
	CloseSession(ctx context.Context, id string) error
	Close() error
}

// liveSession is an open session, as *runner.Session is.
type liveSession interface {
	ID() string
	Sandbox() string
	PodName() string
	Execute(ctx context.Context, req runner.Request) (runner.Result, error)
	Close() error
	Detach()
}

// librarySessions is the runner as a sessionRunner.
type librarySessions struct{ *runner.Runner }

func (l librarySessions) OpenSession(ctx context.Context, so runner.SessionOptions) (liveSession, error) {
	s, err := l.Runner.OpenSession(ctx, so)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (l librarySessions) Session(ctx context.Context, id string) (liveSession, error) {
	s, err := l.Runner.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// sessionDeps are what the session commands get from outside: a runner, and the signals that
// interrupt the REPL's executions. The tests replace both.
type sessionDeps struct {
	newSessions func(c *cli.Context, stderr io.Writer) (sessionRunner, error)
	signals     func() (<-chan os.Signal, func())
}

func sessionCommand() *cli.Command {
	return sessionCommandWith(sessionDeps{newSessions: sessionsFromFlags, signals: notifySignals})
}

func sessionCommandWith(d sessionDeps) *cli.Command {
	termsFlags := func() []cli.Flag {
		return []cli.Flag{
			&cli.DurationFlag{Name: flagIdleTimeout, Usage: "end the session after this long without an execution (default: --" + flagSessionIdle + ")"},
			&cli.DurationFlag{Name: flagMaxLifetime, Usage: "end the session this long after it opened (default: --" + flagSessionLifetime + ")"},
		}
	}
	// exec shapes one execution; the session's sandbox was shaped when it opened.
	execFlags := append([]cli.Flag{
		&cli.StringFlag{Name: flagCode, Aliases: []string{"c"}, Usage: "the code to run"},
		&cli.StringSliceFlag{Name: flagInput, Aliases: []string{"i"}, Usage: "input file `[NAME=]PATH`, copied to /workspace/NAME (repeatable)", TakesFile: true},
		&cli.StringFlag{Name: flagOutputDir, Aliases: []string{"o"}, Usage: "save the output files this execution wrote or changed here (created if missing)", TakesFile: true},
		&cli.BoolFlag{Name: flagJSON, Usage: "print the whole result as one JSON document on stdout"},
	}, pickFlags(sandboxFlags(), flagTimeout, flagMaxOutputBytes, flagMaxFileBytes)...)
	// The REPL's --keep keeps the session open; the sandbox flag of that name (keep objects for
	// debugging) would make closing it delete nothing.
	replFlags := append(append(append([]cli.Flag{
		&cli.BoolFlag{Name: flagKeep, Usage: "leave the session the REPL opened open at exit, for `gkexec session exec` or another repl"},
	}, termsFlags()...), clusterFlags()...), dropFlags(sandboxFlags(), flagKeep)...)
	return &cli.Command{
		Name:  "session",
		Usage: "keep one live Python interpreter in a sandbox across executions",
		Description: `A session is one sandbox whose interpreter lives on between executions: variables, imports and
files under ` + runner.WorkDir + ` persist from one to the next, and nothing crosses to another session.
It is addressed by its ID, so any gkexec process (or library caller) can run code in it, one
execution at a time. It ends when closed, after its idle timeout without executions, or at its
maximum lifetime; then its sandbox is deleted. Flags go before the session ID.

Exit codes besides those of gkexec run: 121 no open session has that ID (closed, expired or never
opened), 122 the session is busy with another process's execution (try again when it is done),
123 the session ended (closed, expired, or its interpreter died; its sandbox is deleted: open a
new one).

Examples:
   id=$(gkexec session open -n agent-sandbox --idle-timeout 30m)
   gkexec session exec -n agent-sandbox -c 'import math; r = math.pi' "$id"
   gkexec session exec -n agent-sandbox -c 'print(round(r, 2))' "$id"      # 3.14
   gkexec session close -n agent-sandbox "$id"
   gkexec session repl -n agent-sandbox`,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usageError("no session command %q: open, exec, close or repl (see gkexec session --help)", c.Args().First())
			}
			return cli.ShowSubcommandHelp(c)
		},
		Subcommands: []*cli.Command{
			{
				Name:  "open",
				Usage: "open a session and print its ID",
				Description: `Opens a session (a warm pool sandbox when one matches, else a Job of its own), prints its ID
on stdout and exits; the session stays open for gkexec session exec, repl and close. --json
prints {"session_id", "sandbox", "pod_name"} instead.

Examples:
   gkexec session open -n agent-sandbox
   gkexec session open -n agent-sandbox --id analysis-1 --idle-timeout 30m --max-lifetime 4h --json`,
				Flags: append(append(append([]cli.Flag{
					&cli.StringFlag{Name: flagID, Usage: fmt.Sprintf("session ID (a DNS label, <= %d chars; default random)", runner.MaxSessionIDLength)},
					&cli.BoolFlag{Name: flagJSON, Usage: "print the session's ID, sandbox and pod as one JSON document"},
				}, termsFlags()...), clusterFlags()...), sandboxFlags()...),
				Action: d.open,
			},
			{
				Name:      "exec",
				Usage:     "run code in an open session and print its output",
				ArgsUsage: "ID [FILE | -]",
				Description: `Runs the code from -c, FILE or standard input in session ID, from any process: what earlier
executions defined is there. Its stdout and stderr stream to gkexec's as it runs, and gkexec
exits with the code's exit status (an exception is 1, and the session goes on). At --timeout the
code is interrupted (exit 124) and the session goes on if the interpreter could be interrupted.

Examples:
   gkexec session exec -n agent-sandbox -c 'x = 41' "$id"
   gkexec session exec -n agent-sandbox --input data.csv --output-dir out/ "$id" step2.py
   echo 'print(x + 1)' | gkexec session exec -n agent-sandbox "$id"`,
				Flags:  append(execFlags, clusterFlags()...),
				Action: d.exec,
			},
			{
				Name:      "close",
				Usage:     "end a session and delete its sandbox",
				ArgsUsage: "ID",
				Flags:     clusterFlags(),
				Action:    d.close,
			},
			{
				Name:      "repl",
				Usage:     "an interactive Python prompt in a session",
				ArgsUsage: "[ID]",
				Description: `Reads code from standard input and runs it in session ID, or in a session it opens (and closes
at exit, unless --keep). The prompt is ">>> " on stderr, "... " inside a block. A line that does
not open a block (end with ':' or '\', start a decorator, leave a bracket or a triple-quoted
string open) runs at once; a block runs at the first empty line. Each runs as a script: print()
what you want to see, a bare expression prints nothing. Ctrl-C interrupts the code running (the
session goes on) or discards the block being typed; Ctrl-D ends the REPL. Standard input may be
a pipe.

Examples:
   gkexec session repl -n agent-sandbox
   gkexec session repl -n agent-sandbox --keep --idle-timeout 1h
   printf 'x = 41\nprint(x + 1)\n' | gkexec session repl -n agent-sandbox "$id"`,
				Flags:  replFlags,
				Action: d.repl,
			},
		},
	}
}

// pickFlags are the named flags of flags, in their order there.
func pickFlags(flags []cli.Flag, names ...string) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		for _, n := range names {
			if f.Names()[0] == n {
				out = append(out, f)
			}
		}
	}
	return out
}

// dropFlags are flags without the named ones.
func dropFlags(flags []cli.Flag, names ...string) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if len(pickFlags([]cli.Flag{f}, names...)) == 0 {
			out = append(out, f)
		}
	}
	return out
}

// sessionsFromFlags builds the runner the flags describe, as runnerFromFlags does, adjusted for
// sessions.
func sessionsFromFlags(c *cli.Context, stderr io.Writer) (sessionRunner, error) {
	opts, err := optionsFromFlags(c, stderr)
	if err != nil {
		return nil, usageError("%v", err)
	}
	// A session claims a sandbox of its own; one held ready ahead would only take a pool Pod
	// from other callers, and be deleted at exit.
	opts.WarmPoolReady = -1
	if !hasFlag(c, flagImage) && hasFlag(c, flagTimeout) {
		// exec: only the flags that shape one execution (optionsFromFlags reads the full set only).
		opts.Timeout = c.Duration(flagTimeout)
		opts.MaxOutputBytes, opts.MaxFileBytes = c.Int64(flagMaxOutputBytes), c.Int64(flagMaxFileBytes)
		if opts.Timeout <= 0 {
			return nil, usageError("--%s must be positive", flagTimeout)
		}
	}
	if c.Command.Name == "repl" {
		opts.KeepObjects = false // its --keep keeps the session open, not objects for debugging
	}
	if hasFlag(c, flagIdleTimeout) {
		// A session's own terms above the default ceilings raise them: on the command line the
		// caller is the operator. A ceiling set explicitly (flag or GKEXEC_*) stays one.
		if d := c.Duration(flagIdleTimeout); d > opts.SessionIdleTimeout && !c.IsSet(flagSessionIdle) {
			opts.SessionIdleTimeout = d
		}
		if d := c.Duration(flagMaxLifetime); d > opts.SessionMaxLifetime && !c.IsSet(flagSessionLifetime) {
			opts.SessionMaxLifetime = d
		}
	}
	r, err := runner.New(opts)
	if err != nil {
		return nil, cli.Exit(err, exitCodeFor(err))
	}
	return librarySessions{r}, nil
}

func notifySignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}

// checkSessionID refuses an ID no session can have, before anything is contacted: a usage error,
// not a session that is never found.
func checkSessionID(id string) error {
	if problems := runner.SessionIDProblems(id); len(problems) > 0 {
		return usageError("session ID %q: %s", id, strings.Join(problems, "; "))
	}
	return nil
}

// sessionArgs splits the arguments into the session ID and up to most more. Flags
// after the ID are not parsed (the flag parser stops at the first argument): say so rather than
// take them for a file name.
func sessionArgs(c *cli.Context, optional bool, most int) (string, []string, error) {
	args := c.Args().Slice()
	usage := fmt.Sprintf("gkexec session %s [flags] %s", c.Command.Name, c.Command.ArgsUsage)
	if len(args) == 0 {
		if optional {
			return "", nil, nil
		}
		return "", nil, usageError("which session? %s", usage)
	}
	for _, a := range args {
		if len(a) > 1 && strings.HasPrefix(a, "-") {
			return "", nil, usageError("flags go before the session ID: %q came after it (%s)", a, usage)
		}
	}
	if len(args) > most+1 {
		return "", nil, usageError("too many arguments: %s (%s)", strings.Join(args, " "), usage)
	}
	if err := checkSessionID(args[0]); err != nil {
		return "", nil, err
	}
	return args[0], args[1:], nil
}

func (d sessionDeps) open(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("open takes no arguments: give the ID with --%s", flagID)
	}
	so := runner.SessionOptions{ID: c.String(flagID), IdleTimeout: c.Duration(flagIdleTimeout), MaxLifetime: c.Duration(flagMaxLifetime)}
	if so.ID != "" {
		if err := checkSessionID(so.ID); err != nil {
			return err
		}
	}
	sr, err := d.newSessions(c, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer sr.Close()
	s, err := sr.OpenSession(c.Context, so)
	if err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	defer s.Detach() // the session stays open: that is what open is for
	if !c.Bool(flagJSON) {
		fmt.Fprintln(c.App.Writer, s.ID())
		return nil
	}
	enc := json.NewEncoder(c.App.Writer)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]string{"session_id": s.ID(), "sandbox": s.Sandbox(), "pod_name": s.PodName()}); err != nil {
		return cli.Exit(err, exitRunner)
	}
	return nil
}

func (d sessionDeps) exec(c *cli.Context) error {
	id, rest, err := sessionArgs(c, false, 1)
	if err != nil {
		return err
	}
	code, err := sessionCode(c, rest)
	if err != nil {
		return err
	}
	files, outDir, err := inputsAndOutputDir(c)
	if err != nil {
		return err
	}
	sr, err := d.newSessions(c, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer sr.Close()
	s, err := sr.Session(c.Context, id)
	if err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	defer s.Detach()
	req := runner.Request{Code: code, Files: files}
	var term *terminal
	if !c.Bool(flagJSON) {
		term = &terminal{stdout: c.App.Writer, stderr: c.App.ErrWriter}
		req.Output = term.write
	}
	res, execErr := s.Execute(c.Context, req)
	return reportExecution(c.App.Writer, c.App.ErrWriter, term, res, execErr, outDir)
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

func (d sessionDeps) close(c *cli.Context) error {
	id, _, err := sessionArgs(c, false, 0)
	if err != nil {
		return err
	}
	sr, err := d.newSessions(c, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer sr.Close()
	if err := sr.CloseSession(c.Context, id); err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	return nil
}

func (d sessionDeps) repl(c *cli.Context) error {
	id, _, err := sessionArgs(c, true, 0)
	if err != nil {
		return err
	}
	stderr := c.App.ErrWriter
	sigs, stop := d.signals()
	defer stop()
	// The REPL answers signals itself: Ctrl-C interrupts one execution, not the REPL, so its
	// work does not end with the root context (which the first SIGINT cancels).
	ctx := context.WithoutCancel(c.Context)
	sr, err := d.newSessions(c, stderr)
	if err != nil {
		return err
	}
	defer sr.Close()
	var s liveSession
	sig := interruptible(ctx, sigs, func(ctx context.Context) {
		if id != "" {
			s, err = sr.Session(ctx, id)
			return
		}
		s, err = sr.OpenSession(ctx, runner.SessionOptions{IdleTimeout: c.Duration(flagIdleTimeout), MaxLifetime: c.Duration(flagMaxLifetime)})
	})
	owned, keep := id == "", id != "" || c.Bool(flagKeep)
	switch {
	case err != nil && sig != nil:
		return cli.Exit(fmt.Sprintf("interrupted: %v", err), exitInterrupted)
	case err != nil:
		return cli.Exit(err, exitCodeFor(err))
	case sig != nil:
		// Interrupted as it opened: give it up.
		return endREPL(stderr, s, owned && !keep, cli.Exit("interrupted", exitInterrupted))
	}
	how := "opened"
	if !owned {
		how = "resumed"
	}
	at := "Ctrl-D closes it"
	if keep {
		at = "Ctrl-D leaves it open"
	}
	fmt.Fprintf(stderr, "gkexec: session %s %s (%s sandbox, pod %s). An empty line ends a block, Ctrl-C interrupts the code, %s.\n",
		s.ID(), how, s.Sandbox(), s.PodName(), at)
	stopReading := make(chan struct{})
	defer close(stopReading)
	p := &repl{s: s, term: &terminal{stdout: c.App.Writer, stderr: stderr}, signals: sigs}
	return endREPL(stderr, s, owned && !keep, p.run(ctx, readLines(c.App.Reader, stopReading)))
}

// endREPL closes the session (closeIt) or leaves it open, once the REPL ended with err.
func endREPL(stderr io.Writer, s liveSession, closeIt bool, err error) error {
	var ec cli.ExitCoder
	if errors.As(err, &ec) && ec.ExitCode() == exitSessionEnded {
		return err // its sandbox is deleted already
	}
	if !closeIt {
		s.Detach()
		fmt.Fprintf(stderr, "gkexec: session %s stays open: gkexec session exec [flags] %s, gkexec session close %s\n", s.ID(), s.ID(), s.ID())
		return err
	}
	if cerr := s.Close(); cerr != nil {
		if err != nil {
			fmt.Fprintln(stderr, "gkexec:", cerr)
			return err
		}
		return cli.Exit(cerr, exitCodeFor(cerr))
	}
	return err
}

// interruptible runs f with a context that the first signal to come cancels, and returns that
// signal, or nil if none came.
func interruptible(ctx context.Context, sigs <-chan os.Signal, f func(context.Context)) os.Signal {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	got := make(chan os.Signal, 1)
	go func() {
		defer close(got)
		select {
		case sig := <-sigs:
			got <- sig
			cancel()
		case <-done:
		}
	}()
	f(ctx)
	close(done)
	return <-got
}

// replInput is standard input, line by line. A line is read only once the previous one was
// taken, so what a person types while code runs waits its turn.
type replInput struct {
	lines chan string
	err   error // why reading stopped, if not at EOF; set before lines is closed
}

func readLines(r io.Reader, stop <-chan struct{}) *replInput {
	in := &replInput{lines: make(chan string)}
	go func() {
		defer close(in.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxCodeBytes) // no line of code is longer than a request
		for sc.Scan() {
			select {
			case in.lines <- sc.Text():
			case <-stop:
				return
			}
		}
		in.err = sc.Err()
	}()
	return in
}

// repl reads submissions and runs each as one execution in the session.
type repl struct {
	s       liveSession
	term    *terminal
	signals <-chan os.Signal
	block   []string // the lines of a block being typed
}

// run reads and runs until standard input ends, a SIGTERM or the end of the session.
func (p *repl) run(ctx context.Context, in *replInput) error {
	stderr := p.term.stderr
	for {
		prompt := ">>> "
		if len(p.block) > 0 {
			prompt = "... "
		}
		p.term.endLine()
		fmt.Fprint(stderr, prompt)
		select {
		case sig := <-p.signals:
			fmt.Fprintln(stderr)
			if sig != os.Interrupt {
				return cli.Exit("terminated", exitInterrupted)
			}
			fmt.Fprintln(stderr, "KeyboardInterrupt")
			p.block = nil
		case line, ok := <-in.lines:
			if !ok {
				fmt.Fprintln(stderr)
				if in.err != nil {
					return usageError("reading standard input: %v", in.err)
				}
				if len(p.block) > 0 { // input ended inside a block: run what was typed
					return p.submit(ctx, strings.Join(p.block, "\n")+"\n")
				}
				return nil
			}
			if code, ready := p.add(line); ready {
				if err := p.submit(ctx, code); err != nil {
					return err
				}
			}
		}
	}
}

// add takes one line and returns the code to run once a submission is complete.
func (p *repl) add(line string) (string, bool) {
	blank := strings.TrimSpace(line) == ""
	switch {
	case len(p.block) == 0 && blank:
		return "", false
	case len(p.block) == 0 && !opensBlock(line):
		return line + "\n", true
	case !blank:
		p.block = append(p.block, line)
		return "", false
	}
	code := strings.Join(p.block, "\n") + "\n"
	p.block = nil
	return code, true
}

// opensBlock says whether a first line needs more lines: it ends with ':' (a compound statement)
// or '\', is a decorator, or leaves a bracket or a triple-quoted string open. It skips comments
// and strings; what it misjudges costs one empty line to submit, or a SyntaxError to retype.
func opensBlock(line string) bool {
	if strings.HasPrefix(strings.TrimSpace(line), "@") {
		return true
	}
	depth, last := 0, byte(0) // last: the last character outside strings, comments and blanks
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; ch {
		case '#':
			i = len(line)
		case '"', '\'':
			if triple := strings.Repeat(string(ch), 3); strings.HasPrefix(line[i:], triple) {
				end := strings.Index(line[i+3:], triple)
				if end < 0 {
					return true
				}
				i += 3 + end + 2
			} else {
				for i++; i < len(line) && line[i] != ch; i++ {
					if line[i] == '\\' {
						i++
					}
				}
			}
			last = ch
		case '(', '[', '{':
			depth++
			last = ch
		case ')', ']', '}':
			depth--
			last = ch
		case ' ', '\t':
		default:
			last = ch
		}
	}
	return depth > 0 || last == ':' || last == '\\'
}

// submit runs code as one execution, its output streamed; Ctrl-C cancels it, which interrupts
// the code, and the REPL goes on. It returns an error only when the REPL must end.
func (p *repl) submit(ctx context.Context, code string) error {
	var res runner.Result
	var err error
	sig := interruptible(ctx, p.signals, func(ctx context.Context) {
		res, err = p.s.Execute(ctx, runner.Request{Code: code, Output: p.term.write})
	})
	var said bytes.Buffer
	notes(&said, res)
	if said.Len() > 0 || err != nil || sig != nil {
		p.term.endLine()
	}
	_, _ = said.WriteTo(p.term.stderr)
	switch {
	case errors.Is(err, runner.ErrSessionEnded):
		return cli.Exit(err, exitSessionEnded)
	case sig != nil && sig != os.Interrupt:
		return cli.Exit("terminated", exitInterrupted)
	case sig != nil && err != nil:
		fmt.Fprintln(p.term.stderr, "KeyboardInterrupt (the session goes on)")
	case err != nil:
		fmt.Fprintln(p.term.stderr, "gkexec:", err)
	}
	return nil
}
