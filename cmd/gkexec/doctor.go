package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner/doctor"
)

const flagSmoke = "smoke"

func doctorCommand() *cli.Command {
	return &cli.Command{
		Name:  "doctor",
		Usage: "check that a namespace is ready for the runner, with the runner's own identity",
		Description: `Checks, as the identity gkexec runs with: the API server answers, the namespace exists, RBAC
allows every verb the runner uses (SelfSubjectAccessReview), the RuntimeClass exists, a
schedulable gVisor node exists, the ResourceQuota has room, and (--smoke, on by default) a real
execution reports gVisor's kernel. Checks this identity may not perform (cluster-scoped reads)
are warnings, not failures. Exits 1 if any check fails.

Examples:
   gkexec doctor -n agent-sandbox
   gkexec doctor -n agent-sandbox --smoke=false --json`,
		Flags: append(append([]cli.Flag{
			&cli.BoolFlag{Name: flagSmoke, Value: true, Usage: "run a real execution in the sandbox"},
			&cli.BoolFlag{Name: flagJSON, Usage: "print the checks as JSON"},
		}, clusterFlags()...), sandboxFlags()...),
		Action: func(c *cli.Context) error {
			r, err := runnerFromFlags(c, c.App.ErrWriter)
			if err != nil {
				return err
			}
			defer r.Close()
			checks := doctor.Run(c.Context, r, doctor.Options{Smoke: c.Bool(flagSmoke)})
			failed := 0
			for _, ch := range checks {
				if ch.Status == doctor.Fail {
					failed++
				}
			}
			if c.Bool(flagJSON) {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				_ = enc.Encode(checks)
			} else {
				printChecks(c.App.Writer, checks, c.Bool(flagSmoke))
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("%d check(s) failed in namespace %s", failed, r.Options().Namespace), 1)
			}
			return nil
		},
	}
}

// printChecks prints the checklist; without the smoke execution it says so, since the checks
// above it cannot show that the sandbox really runs code.
func printChecks(w io.Writer, checks []doctor.Check, smoke bool) {
	for _, ch := range checks {
		mark := map[doctor.Status]string{doctor.Pass: "[ok]  ", doctor.Warn: "[warn]", doctor.Fail: "[FAIL]"}[ch.Status]
		fmt.Fprintf(w, "%s %s: %s\n", mark, ch.Name, ch.Detail)
		if ch.Fix != "" && ch.Status != doctor.Pass {
			fmt.Fprintf(w, "       fix: %s\n", ch.Fix)
		}
	}
	if !smoke {
		fmt.Fprintf(w, "[skip] smoke execution in the sandbox: not run (--%s=false); nothing above ran code in the sandbox\n", flagSmoke)
	}
}
