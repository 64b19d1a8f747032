package main

import (
	"github.com/urfave/cli/v2"
)

func sessionCloseCommand(d sessionDeps) *cli.Command {
	return &cli.Command{
		Name:      "close",
		Usage:     "end a session and delete its sandbox",
		ArgsUsage: "ID",
		Flags:     clusterFlags(),
		Action:    d.close,
	}
}

// close ends a session, whoever opened it, and deletes its sandbox.
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
