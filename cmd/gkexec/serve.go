package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/server"
)

const (
	flagListen        = "listen"
	flagProbeListen   = "probe-listen"
	flagTokenFile     = "token-file"
	flagMaxConcurrent = "max-concurrent"
	flagMaxBodyBytes  = "max-body-bytes"

	// envServeToken holds the bearer token itself, for platforms that inject secrets as
	// variables; --token-file is preferred (a variable shows in `ps e` and crash dumps).
	envServeToken = "GKEXEC_SERVE_TOKEN"
)

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve an HTTP/JSON API that runs code in the sandbox, as a sidecar for agents in any language",
		Description: `Runs until SIGTERM or SIGINT, then stops accepting, cancels the executions in flight, waits
until everything they created is deleted, and exits 0. Listens on loopback by default: in a
sidecar the agent's containers share the Pod's loopback, and the Kubernetes credentials stay in
this container. Listening elsewhere requires a token; without one, only requests addressed to
a loopback name are served.

   POST /v1/executions  {"code": "print(1)", "files": {"data.csv": "<base64>"}}  -> the result JSON
                        (with Accept: application/x-ndjson: output lines as the code writes, then the result)
   POST /v1/sessions    {"idle_timeout_seconds": 600}  -> 201 {"session_id", "sandbox", "pod_name"}
   POST /v1/sessions/{id}/executions   as /v1/executions, in the session's live interpreter
   DELETE /v1/sessions/{id}            ends the session and deletes its sandbox (204)
   GET  /v1/config      the sandbox every execution gets (namespace, image, limits, timeouts)
   GET  /healthz        the process is alive
   GET  /readyz         the API server answers and RBAC allows every call the runner makes
   GET  /metrics        Prometheus: executions by outcome, latency by phase, in flight, the warm pool

When the warm pool's Deployment asks to be sized by demand (the module's warm_pool.autoscale,
manifests/components/warm-pool-autoscale), serve sizes it as gkexec pool autoscale does: every
replica follows the demand, the one holding the Lease writes the size (--pool-autoscale=false: never).

A finished execution is always 200, whatever the code did (exit_code, timed_out, oom_killed);
400/413/415 bad request, 401 token, 409 execution_id in flight or session busy, 404 no such
session, 410 session ended, 429 --max-concurrent reached,
403 RBAC, 503 the sandbox cannot run (image, RuntimeClass, node, quota, API server) or shutting
down, 504 the sandbox did not start in --start-timeout. See docs/integrations.md.

Examples:
   gkexec serve -n agent-sandbox
   GKEXEC_SERVE_TOKEN=$(cat token) gkexec serve -n agent-sandbox --listen 127.0.0.1:8080 --max-concurrent 4
   gkexec serve -n agent-sandbox --probe-listen :8081 --token-file /var/run/gkexec/token
   curl -s 127.0.0.1:8080/v1/executions -H 'Content-Type: application/json' -d '{"code": "print(6*7)"}'`,
		Flags: append(append([]cli.Flag{
			&cli.StringFlag{Name: flagListen, Value: "127.0.0.1:8080", EnvVars: env(flagListen), Usage: "`ADDRESS` for the API (loopback unless a token is set)"},
			&cli.StringFlag{Name: flagProbeListen, EnvVars: env(flagProbeListen), Usage: "also serve only /healthz, /readyz and /metrics on this `ADDRESS` (e.g. :8081, for kubelet probes and Prometheus)"},
			&cli.StringFlag{Name: flagTokenFile, EnvVars: env(flagTokenFile), TakesFile: true, Usage: "require the bearer token in `FILE` on /v1/ (or give the token itself in " + envServeToken + ")"},
			&cli.IntFlag{Name: flagMaxConcurrent, Value: server.DefaultMaxConcurrent, EnvVars: env(flagMaxConcurrent), Usage: "executions in flight at most; past it requests get 429"},
			&cli.Int64Flag{Name: flagMaxBodyBytes, Value: server.DefaultMaxBodyBytes, EnvVars: env(flagMaxBodyBytes), Usage: "largest request body; past it requests get 413"},
			&cli.BoolFlag{Name: flagPoolAutoscale, Value: true, EnvVars: env(flagPoolAutoscale), Usage: "size the warm pool by demand when its Deployment asks for it (gkexec.dev/autoscale-max), one serve process at a time (see gkexec pool autoscale)"},
		}, clusterFlags()...), sandboxFlags()...),
		Action: serveAction,
	}
}

func serveAction(c *cli.Context) error {
	stderr := c.App.ErrWriter
	if c.Args().Len() > 0 {
		return usageError("serve takes no arguments, got %q", c.Args().Slice())
	}
	token, err := readToken(c.String(flagTokenFile), envServeToken)
	if err != nil {
		return usageError("%v", err)
	}
	if err := checkExposure(c.String(flagListen), token, envServeToken); err != nil {
		return usageError("%v", err)
	}
	if c.Int(flagMaxConcurrent) <= 0 || c.Int64(flagMaxBodyBytes) <= 0 {
		return usageError("--%s and --%s must be positive", flagMaxConcurrent, flagMaxBodyBytes)
	}
	r, err := runnerFromFlags(c, stderr)
	if err != nil {
		return err
	}
	defer r.Close()
	log := serveLogger(c, stderr)
	s, err := server.New(server.Options{
		Runner: r, Token: token,
		MaxConcurrent: c.Int(flagMaxConcurrent), MaxBodyBytes: c.Int64(flagMaxBodyBytes),
		Logger: log, Autoscaler: startAutoscaler(c, r, log),
	})
	if err != nil {
		return usageError("%v", err)
	}

	api, err := net.Listen("tcp", c.String(flagListen))
	if err != nil {
		return cli.Exit(fmt.Sprintf("--%s: %v", flagListen, err), exitRunner)
	}
	// Start the watches and the warm refill now, so that the first request finds a sandbox held
	// ready; a failure here is not fatal (the first execution tries again, /readyz reports it).
	go func() {
		if err := r.Start(c.Context); err != nil {
			fmt.Fprintf(stderr, "gkexec serve: %v\n", err)
		}
	}()
	var probe net.Listener
	if addr := c.String(flagProbeListen); addr != "" {
		if probe, err = net.Listen("tcp", addr); err != nil {
			_ = api.Close()
			return cli.Exit(fmt.Sprintf("--%s: %v", flagProbeListen, err), exitRunner)
		}
	}
	// SIGTERM and SIGINT end c.Context (main's signal.NotifyContext); Serve then shuts down.
	if err := s.Serve(c.Context, api, probe); err != nil {
		return cli.Exit(err, exitRunner)
	}
	return nil
}

// readToken takes the token from the file, else from the variable envName; both set is ambiguous.
func readToken(file, envName string) (string, error) {
	fromEnv := os.Getenv(envName)
	switch {
	case file != "" && fromEnv != "":
		return "", fmt.Errorf("both --%s and %s are set; use one", flagTokenFile, envName)
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", flagTokenFile, err)
		}
		token := strings.TrimSpace(string(b))
		if token == "" {
			return "", fmt.Errorf("--%s %s is empty", flagTokenFile, file)
		}
		return token, nil
	}
	return strings.TrimSpace(fromEnv), nil
}

// checkExposure refuses to serve the API beyond loopback without a token: whoever reaches it
// runs code with this identity's Kubernetes permissions.
func checkExposure(listen, token, envName string) error {
	if token != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--%s %q: %w", flagListen, listen, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return errors.New("--" + flagListen + " " + listen + " is not a loopback address: anything that reaches it could run code as this identity; " +
		"set a token (--" + flagTokenFile + " or " + envName + ") or listen on 127.0.0.1")
}

// serveLogger: a server logs every execution, so it logs at Info without -v; -v adds the
// runner's phases.
func serveLogger(c *cli.Context, stderr io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if c.Bool(flagVerbose) {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}
