package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/gc"
)

const (
	flagOlderThan = "older-than"
	flagDryRun    = "dry-run"
)

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "delete Jobs, ConfigMaps and claimed warm Pods that gkexec left behind (a caller crashed or was killed)",
		Description: `Finds what is labelled app.kubernetes.io/managed-by=gkexec and older than --older-than, and
deletes it: the Jobs (each Job's Pod goes with it) and ConfigMaps of one-shot executions, the
claimed warm pool Pods of one-shot executions (aged from when the execution took the Pod), and
the markers of sessions that have no sandbox. A one-shot execution runs no longer than
StartTimeout + Timeout + 30 s (7.5 min at the defaults), so the default 15m never touches the
live work of runners with the default timeouts; raise it for runners with longer ones.

Sandboxes that ended by themselves go whatever their age, judged by their Pod's status, never by
a timestamp another machine wrote: a claimed warm pool Pod whose container left and was
restarted (nobody deleted it after its execution, the runner holding it ready stopped pinging it,
its session ended) or whose deadline passed; a cold session's finished Job. A claimed Pod held
ready or a session's stays while it runs, however old; idle pool Pods belong to their
Deployment and stay. Every runner deletes the sandboxes that ended by themselves while it lives
too; gc is for when none does.

Examples:
   gkexec gc -n agent-sandbox --dry-run
   gkexec gc -n agent-sandbox --older-than 1h`,
		Flags: append([]cli.Flag{
			&cli.DurationFlag{Name: flagOlderThan, Value: 15 * time.Minute, Usage: "only objects at least this old"},
			&cli.BoolFlag{Name: flagDryRun, Usage: "list what would be deleted, delete nothing"},
		}, clusterFlags()...),
		Action: func(c *cli.Context) error {
			opts, err := optionsFromFlags(c, c.App.ErrWriter)
			if err != nil {
				return usageError("%v", err)
			}
			client, err := runner.NewClient(opts)
			if err != nil {
				return cli.Exit(err, exitCodeFor(err))
			}
			found, err := gc.Collect(c.Context, client, opts.Namespace, c.Duration(flagOlderThan), c.Bool(flagDryRun))
			return reportGC(c.App.Writer, c.App.ErrWriter, opts.Namespace, found, err, c.Bool(flagDryRun), c.Duration(flagOlderThan))
		},
	}
}

// reportGC prints what gc did, object by object: on stdout what it deleted (or would delete), on
// stderr what it could not delete and why. Anything left makes a non-zero exit.
func reportGC(stdout, stderr io.Writer, ns string, found []gc.Leftover, err error, dryRun bool, olderThan time.Duration) error {
	var deleted, gone, failed int
	for _, l := range found {
		obj := fmt.Sprintf("%s/%s %s (age %s)", ns, l.Name, l.Kind, l.Age.Round(time.Second))
		switch {
		case dryRun:
			fmt.Fprintln(stdout, "would delete", obj)
		case l.Deleted:
			deleted++
			fmt.Fprintln(stdout, "deleted", obj)
		case l.Gone:
			gone++
			fmt.Fprintln(stdout, "already gone", obj)
		case l.Err != nil:
			failed++
			fmt.Fprintf(stderr, "not deleted: %s: %v\n", obj, l.Err)
		}
	}
	if err != nil {
		// err joins every failure; those of objects were printed above, a failed list was not.
		var lines []string
		if !dryRun {
			lines = append(lines, fmt.Sprintf("%d deleted, %d already gone, %d not deleted (still there, see above)", deleted, gone, failed))
		}
		for _, e := range joined(err) {
			if !slices.ContainsFunc(found, func(l gc.Leftover) bool { return l.Err == e }) {
				lines = append(lines, e.Error())
			}
		}
		return cli.Exit(strings.Join(lines, "\n"), exitCodeFor(err))
	}
	if len(found) == 0 {
		fmt.Fprintf(stderr, "nothing older than %s in namespace %s\n", olderThan, ns)
	}
	return nil
}

// joined lists the errors errors.Join put together (or err alone).
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
