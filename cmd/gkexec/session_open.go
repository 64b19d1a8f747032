package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

func sessionOpenCommand(d sessionDeps) *cli.Command {
	return &cli.Command{
		Name:  "open",
		Usage: "open a session and print its ID",
		Description: `Opens a session (a warm pool sandbox when one matches, else a Job of its own), prints its ID
on stdout and exits; the session stays open for gkexec session exec, repl and close. --json
prints {"session_id", "sandbox", "pod_name"} instead. The session's interpreter is Python, or the
--language given: a bash session keeps its working directory, variables, functions and exports
from one execution to the next, a javascript (Node.js) one its global bindings.

Examples:
   gkexec session open -n agent-sandbox
   gkexec session open -n agent-sandbox --id analysis-1 --idle-timeout 30m --max-lifetime 4h --json
   gkexec session open -n agent-sandbox --language bash`,
		Flags: append(append(append([]cli.Flag{
			&cli.StringFlag{Name: flagID, Usage: fmt.Sprintf("session ID (a DNS label, <= %d chars; default random)", runner.MaxSessionIDLength)},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the session's ID, sandbox and pod as one JSON document"},
			languageFlag("the session's interpreter (default python)"),
		}, termsFlags()...), clusterFlags()...), sandboxFlags()...),
		Action: d.open,
	}
}

// open opens a session, prints what it is and leaves it open: that is what open is for.
func (d sessionDeps) open(c *cli.Context) error {
	if c.Args().Present() {
		return usageError("open takes no arguments: give the ID with --%s", flagID)
	}
	lang, err := codeLanguage(c, "")
	if err != nil {
		return err
	}
	so := runner.SessionOptions{ID: c.String(flagID), IdleTimeout: c.Duration(flagIdleTimeout), MaxLifetime: c.Duration(flagMaxLifetime), Language: lang}
	if so.ID != "" {
		if err := checkSessionID(so.ID); err != nil {
			return err
		}
	}
	opens := func(ctx context.Context, sr sessionRunner) (liveSession, error) { return sr.OpenSession(ctx, so) }
	return d.withSession(c, opens, func(s liveSession) error {
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
	})
}
