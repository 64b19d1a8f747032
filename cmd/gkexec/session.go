package main

import (
	"context"
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

// sessionCommandWith is `gkexec session`, whose subcommands each have a file of their own:
// session_open.go, session_exec.go, session_close.go and session_repl.go.
func sessionCommandWith(d sessionDeps) *cli.Command {
	return &cli.Command{
		Name:  "session",
		Usage: "keep one live Python interpreter in a sandbox across executions",
		Description: `A session is one sandbox whose interpreter lives on between executions: variables, imports and
files under ` + runner.WorkDir + ` persist from one to the next, and nothing crosses to another session.
It is addressed by its ID, so any gkexec process (or library caller) can run code in it, one
execution at a time. It ends when closed, after its idle timeout without executions, or at its
maximum lifetime; then its sandbox goes: deleted by any gkexec process alive in the namespace
(or gkexec gc), else stopped by its own deadline. Flags go before the session ID.

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
			sessionOpenCommand(d),
			sessionExecCommand(d),
			sessionCloseCommand(d),
			sessionREPLCommand(d),
		},
	}
}

// termsFlags are a session's own terms, for the subcommands that open one.
func termsFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: flagIdleTimeout, Usage: "end the session after this long without an execution (default: --" + flagSessionIdle + ")"},
		&cli.DurationFlag{Name: flagMaxLifetime, Usage: "end the session this long after it opened (default: --" + flagSessionLifetime + ")"},
	}
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

// withSession is the shape of a subcommand that runs in one session and leaves it open: it
// builds the runner, gets the session from find (which opens or resumes one), hands it to use,
// then detaches from it and closes the runner. A session not had is an error with its exit code.
func (d sessionDeps) withSession(c *cli.Context, find func(context.Context, sessionRunner) (liveSession, error), use func(liveSession) error) error {
	sr, err := d.newSessions(c, c.App.ErrWriter)
	if err != nil {
		return err
	}
	defer sr.Close()
	s, err := find(c.Context, sr)
	if err != nil {
		return cli.Exit(err, exitCodeFor(err))
	}
	defer s.Detach() // the session stays open: another process may use it
	return use(s)
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
