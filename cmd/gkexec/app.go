package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// run builds the app, runs it and returns the process exit code: the one place it is decided.
func run(ctx context.Context, args []string) int {
	return runApp(ctx, newApp(os.Stdin, os.Stdout, os.Stderr), args)
}

func runApp(ctx context.Context, app *cli.App, args []string) int {
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	var ec cli.ExitCoder
	if errors.As(err, &ec) {
		if msg := err.Error(); msg != "" {
			fmt.Fprintln(app.ErrWriter, "gkexec:", msg)
		}
		return ec.ExitCode()
	}
	// Anything else comes from flag parsing: a usage error.
	fmt.Fprintln(app.ErrWriter, "gkexec:", err)
	return exitUsage
}

func newApp(stdin io.Reader, stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "gkexec",
		Usage:   "run untrusted code in gVisor-sandboxed Kubernetes Pods",
		Version: version,
		Description: "gkexec takes a pre-started Pod of the warm pool, or creates a ConfigMap with the code and a Job whose Pod\n" +
			"runs it, under gVisor with a hardened security context; returns stdout, stderr, exit code and output files;\n" +
			"and deletes everything it made.",
		Reader:    stdin,
		Writer:    stdout,
		ErrWriter: stderr,
		// Exit codes are decided in runApp; the default handler would call os.Exit from inside.
		ExitErrHandler:         func(*cli.Context, error) {},
		UseShortOptionHandling: true,
		Suggest:                true,
		Commands: []*cli.Command{
			runCommand(),
			gcCommand(),
			doctorCommand(),
			serveCommand(),
			mcpCommand(),
			benchCommand(),
			sessionCommand(),
			gatewayCommand(),
			poolCommand(),
		},
	}
	for _, cmd := range app.Commands {
		cmd.Before = routeKlog(stderr)
		for _, sub := range cmd.Subcommands {
			sub.Before = routeKlog(stderr) // the subcommand has the -v flag
		}
	}
	return app
}
