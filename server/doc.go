// Package server is the HTTP/JSON API over a runner.Runner that `gkexec serve` runs, and the
// Client that calls it: a sidecar in the agent's Pod, so that agents in any language run code with
// one POST to 127.0.0.1 and the Kubernetes credentials stay in the sidecar.
//
//	POST /v1/executions  {"code": "...", "files": {"name": "<base64>"}, "execution_id": "..."}
//	GET  /v1/config      the sandbox every execution gets (namespace, image, limits, timeouts)
//	POST   /v1/sessions                 {"session_id": "...", "idle_timeout_seconds": 600, ...}
//	POST   /v1/sessions/{id}/executions the body of POST /v1/executions, in the session's interpreter
//	DELETE /v1/sessions/{id}            ends the session and deletes its sandbox
//	GET  /healthz        the process is alive
//	GET  /readyz         the API server answers and RBAC allows every call the runner makes
//	GET  /metrics        Prometheus text format
//
// A finished execution is always 200 with the runner's Result JSON, whatever the code did:
// non-zero exit, timeout (timed_out: true) and OOM kill are results the agent reads. The one
// exception is an execution that ended its session (the interpreter died, or could not be
// interrupted at its timeout): a 410 whose body carries the Result, since the session's state is
// gone. Everything else is an ErrorBody with a 4xx or 5xx status; see docs/integrations.md for
// the table.
//
// With "Accept: application/x-ndjson" the answer streams instead: a StreamLine per chunk of
// output as the code produces it, then one with the result (or the error, once output has begun).
package server
