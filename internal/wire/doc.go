// Package wire is the framed protocol between the runner and the entrypoint inside a sandbox,
// defined once for both ends: entrypoint.py is the sandbox's end (embedded here as Entrypoint),
// and the Go code here is the runner's — the record tags and their JSON fields (tags.go), the
// request encoder (encode.go), the decoder that turns a sandbox's output into capped stdout,
// stderr, files and the end record (decode.go), the streaming of output as it is decoded
// (stream.go), and a session's framing of one execution within its stream (session.go).
//
// Every record is one line, "<tag>:<base64 payload>\n". The protocol knows nothing of
// Kubernetes: a cold sandbox's records arrive in its container log, a warm or session sandbox's
// over its attach stream, and the tests' fake cluster writes them with Frame.
package wire
