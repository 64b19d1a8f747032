// Package agent holds the end-to-end tests of gkexec's agent integrations on the local gVisor
// cluster (build tag integration; `make e2e`, `make test`):
//
//   - the ADK for Go tool (runner/adktool) through ADK's real agent loop, with a scripted model,
//     one-shot and stateful (one session per ADK session);
//   - `gkexec serve`: every endpoint, sessions included, the limits, bad bodies, graceful shutdown
//     with executions in flight, and its latency overhead over the runner;
//   - the ADK for Python executor (examples/adk-python), whose unittest suite runs against a real
//     `gkexec serve`;
//   - an agent Pod: the gkexec and adk-go-agent images (test/images), a `gkexec serve` sidecar and
//     the example agent, running code with the namespace's agent ServiceAccount;
//   - `gkexec mcp` over stdio and streamable HTTP with the Go SDK's client, and with the
//     TypeScript SDK's (test/mcpclient).
//
// Everything runs as the agent ServiceAccount of a fresh namespace set up from manifests/, and the
// suite ends by checking that nothing labelled app.kubernetes.io/managed-by=gkexec is left.
// Without the tag the package is empty.
package agent
