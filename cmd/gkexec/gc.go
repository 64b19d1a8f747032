package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

const (
	flagOlderThan = "older-than"
	flagDryRun    = "dry-run"
)

func gcCommand() *cli.Command {
	return &cli.Command{
		Name:  "gc",
		Usage: "delete Jobs and ConfigMaps that gkexec left behind (a caller crashed or was killed)",
		Description: `Finds objects labelled app.kubernetes.io/managed-by=gkexec older than --older-than and deletes
them; each Job's Pod goes with it. Running executions are younger than their timeout, so an
--older-than above your longest timeout never touches live work.

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
			found, err := runner.CollectGarbage(c.Context, client, opts.Namespace, c.Duration(flagOlderThan), c.Bool(flagDryRun))
			verb := "deleted"
			if c.Bool(flagDryRun) {
				verb = "would delete"
			}
			for _, l := range found {
				fmt.Fprintf(c.App.Writer, "%s %s/%s %s (age %s)\n", verb, opts.Namespace, l.Name, l.Kind, l.Age.Round(time.Second))
			}
			if err != nil {
				return cli.Exit(err, exitCodeFor(err))
			}
			if len(found) == 0 {
				fmt.Fprintf(c.App.ErrWriter, "nothing older than %s in namespace %s\n", c.Duration(flagOlderThan), opts.Namespace)
			}
			return nil
		},
	}
}
