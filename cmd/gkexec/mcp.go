package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/mcp"
	"github.com/gkexec/gkexec/server"
)

const (
	// The MCP server's listen address and token file have variables of their own, so that a
	// container that runs serve and mcp side by side configures each.
	envMCPListen    = "GKEXEC_MCP_LISTEN"
	envMCPTokenFile = "GKEXEC_MCP_TOKEN_FILE"
	// envMCPToken holds the bearer token itself; --token-file is preferred (see envServeToken).
	envMCPToken = "GKEXEC_MCP_TOKEN"

	// mcpShutdownTimeout bounds the HTTP server's shutdown once the calls in flight are cancelled.
	mcpShutdownTimeout = server.DefaultShutdownTimeout
)

func mcpCommand() *cli.Command {
	return &cli.Command{
		Name:  "mcp",
		Usage: "serve the sandbox as MCP tools (Model Context Protocol), over stdio or streamable HTTP",
		Description: `Serves an MCP server whose tools run code in the sandbox, for any MCP client (ADK's
McpToolset, desktop and coding assistants, agent frameworks):

   run_code           run a program in a fresh sandbox: stdout, stderr, exit code, output
                      files (images as image content); progress notifications stream output
   open_session       start one live interpreter whose variables and files persist
   run_in_session     run code in it; upload_file and download_file move files in and out
   close_session      end it and delete its sandbox
   describe_sandbox   the languages (python, bash, javascript), limits and warm pool state

By default it speaks over standard input and output, for a client that starts it as a
subprocess; the process ends when the client closes its input. With --listen it serves the
streamable HTTP transport at http://ADDRESS/mcp (stateless: any replica answers any call) with
gkexec serve's token rules: listening beyond loopback requires a bearer token; without one,
only requests addressed to a loopback name are served. SIGTERM or SIGINT cancels the calls in
flight, deletes what they made, and exits 0. See docs/integrations.md.

Examples:
   gkexec mcp -n agent-sandbox                                    # stdio, for a client's config
   gkexec mcp -n agent-sandbox --listen 127.0.0.1:8090
   GKEXEC_MCP_TOKEN=$(cat token) gkexec mcp -n agent-sandbox --listen :8090`,
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: flagListen, EnvVars: []string{envMCPListen}, Usage: "serve the streamable HTTP transport on `ADDRESS` (at /mcp) instead of stdio (loopback unless a token is set)"},
			&cli.StringFlag{Name: flagTokenFile, EnvVars: []string{envMCPTokenFile}, TakesFile: true, Usage: "with --listen, require the bearer token in `FILE` (or give the token itself in " + envMCPToken + ")"},
			allowDomainFlag("every sandbox the tools start"),
		}, clusterFlags()...), sandboxFlags()...),
		Action: mcpAction,
	}
}

func mcpAction(c *cli.Context) error {
	stderr := c.App.ErrWriter
	if c.Args().Len() > 0 {
		return usageError("mcp takes no arguments, got %q", c.Args().Slice())
	}
	listen := c.String(flagListen)
	token, err := readToken(c.String(flagTokenFile), envMCPToken)
	switch {
	case err != nil:
		return usageError("%v", err)
	case listen == "" && token != "":
		return usageError("a token guards the HTTP transport: set --%s too, or drop the token for stdio", flagListen)
	case listen != "":
		if err := checkExposure(listen, token, envMCPToken); err != nil {
			return usageError("%v", err)
		}
	}
	r, err := runnerFromFlags(c, stderr)
	if err != nil {
		return err
	}
	defer r.Close()
	s, err := mcp.New(mcp.Options{Runner: r, Version: version, Logger: logger(c, stderr), AllowDomains: c.StringSlice(flagAllowDomain)})
	if err != nil {
		return usageError("%v", err)
	}
	// Before the runner's Close, which waits for the executions in flight: cancel them.
	defer s.Shutdown()
	// Start the watches and the warm refill now, so that the first call finds a sandbox held
	// ready; a failure here is not fatal (the first execution tries again).
	go func() {
		if err := r.Start(c.Context); err != nil && c.Context.Err() == nil {
			fmt.Fprintf(stderr, "gkexec mcp: %v\n", err)
		}
	}()
	if listen == "" {
		// Standard output is the protocol's: only the runner's -v log goes to stderr.
		if err := s.ServeStdio(c.Context, c.App.Reader, c.App.Writer); err != nil && !errors.Is(err, context.Canceled) {
			return cli.Exit(fmt.Sprintf("gkexec mcp: %v", err), exitRunner)
		}
		return nil
	}
	return serveMCPHTTP(c, s, token, listen)
}

// serveMCPHTTP serves s at mcp.PathMCP until c.Context ends, then cancels the calls in flight and
// shuts down.
func serveMCPHTTP(c *cli.Context, s *mcp.Server, token, listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return cli.Exit(fmt.Sprintf("--%s: %v", flagListen, err), exitRunner)
	}
	mux := http.NewServeMux()
	mux.Handle(mcp.PathMCP, s.Handler(token))
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: server.DefaultBodyReadTimeout}
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(c.App.ErrWriter, "gkexec mcp: serving MCP (streamable HTTP) on http://%s%s\n", ln.Addr(), mcp.PathMCP)
	select {
	case err := <-served:
		return cli.Exit(fmt.Sprintf("gkexec mcp: %v", err), exitRunner)
	case <-c.Context.Done():
	}
	// The calls in flight answer canceled, then the server can finish their responses; the runner
	// deletes what they made before the deferred Close returns.
	s.Shutdown()
	ctx, stop := context.WithTimeout(context.Background(), mcpShutdownTimeout)
	defer stop()
	if err := hs.Shutdown(ctx); err != nil {
		return cli.Exit(fmt.Sprintf("gkexec mcp: shutting down: %v", err), exitRunner)
	}
	return nil
}
