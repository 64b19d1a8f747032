package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

func sessionREPLCommand(d sessionDeps) *cli.Command {
	// The REPL's --keep keeps the session open; the sandbox flag of that name (keep objects for
	// debugging) would make closing it delete nothing.
	replFlags := append(append(append([]cli.Flag{
		&cli.BoolFlag{Name: flagKeep, Usage: "leave the session the REPL opened open at exit, for `gkexec session exec` or another repl"},
	}, termsFlags()...), clusterFlags()...), dropFlags(sandboxFlags(), flagKeep)...)
	return &cli.Command{
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
	}
}

// repl resumes session ID or opens one, runs the REPL (repl.go) in it, and at the end closes the
// session it opened or leaves it open.
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
