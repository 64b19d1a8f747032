// Command gkexec is the command line over the runner library: it runs untrusted code in
// gVisor-sandboxed Kubernetes Pods (run, session open|exec|close|repl), serves the HTTP API and
// the MCP tools that do the same (serve, mcp), checks, cleans and measures the cluster (doctor,
// gc, bench), sizes the warm pool by demand (pool autoscale) and serves the egress gateway and
// makes its CA (gateway, gateway ca). Each subcommand has a file of its own that maps its flags
// onto the library and the library's errors onto the exit codes of exitcodes.go; main only builds
// the app and exits with the code it decides.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args)
	stop()
	os.Exit(code)
}
