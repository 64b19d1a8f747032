package mcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"

	"github.com/google/jsonschema-go/jsonschema"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/server"
)

// Defaults.
const (
	// DefaultName is the server's name in the MCP handshake.
	DefaultName = "gkexec"
	// DefaultMaxOutputBytes bounds stdout and stderr, each, in an answer: the sandbox returns up to
	// 1 MiB of each, far more than is useful in a model's context. The whole output streams as
	// progress notifications while the code runs.
	DefaultMaxOutputBytes = 32 << 10
	// PathMCP is where `gkexec mcp --listen` serves the streamable HTTP transport.
	PathMCP = "/mcp"
)

// Options configures a Server. The zero value of each field means its documented default.
type Options struct {
	// Runner runs the code; required. The Server does not close it.
	Runner *runner.Runner
	// Name and Version identify the server in the MCP handshake. Default "gkexec" and "dev".
	Name, Version string
	// MaxOutputBytes bounds stdout and stderr, each, in a tool's answer. Default 32 KiB.
	MaxOutputBytes int
	// Logger receives the SDK's and the server's messages; default discards. Over stdio it must
	// not write to stdout, which is the protocol's.
	Logger *slog.Logger
	// AllowDomains narrows the namespace's egress allow-list for every sandbox the tools start
	// (run_code's, open_session's): runner.Request.AllowDomains. It is the operator's, never the
	// model's: no tool takes a list, since a model steered by what it read would choose its own.
	AllowDomains []string
}

func (o *Options) setDefaults() {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.MaxOutputBytes == 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// ErrInvalidOptions: Options failed validation; the message names every bad field.
var ErrInvalidOptions = errors.New("invalid mcp server options")

func (o *Options) validate() error {
	var errs []error
	if o.Runner == nil {
		errs = append(errs, errors.New("Runner: required"))
	}
	if o.MaxOutputBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxOutputBytes %d: must be positive", o.MaxOutputBytes))
	}
	if o.Runner != nil && len(o.AllowDomains) > 0 {
		// The runner's own check, once, so that a bad entry fails at start and not on each call.
		if err := o.Runner.CheckRequest(runner.Request{Code: "-", AllowDomains: o.AllowDomains}); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
}

// Server is the MCP server: the tools, bound to one runner.
type Server struct {
	opts Options
	run  *runner.Runner
	log  *slog.Logger
	mcp  *sdk.Server
	// stopping ends every request's context once Shutdown is called.
	stopping context.Context
	stop     context.CancelFunc
}

// New validates the options and returns a Server with every tool registered.
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	opts.AllowDomains = slices.Clone(opts.AllowDomains) // the caller's slice may change; ours may not
	s := &Server{opts: opts, run: opts.Runner, log: opts.Logger}
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.mcp = sdk.NewServer(&sdk.Implementation{Name: opts.Name, Title: "gkexec: code in gVisor sandboxes on Kubernetes", Version: opts.Version},
		&sdk.ServerOptions{Logger: opts.Logger, Instructions: s.instructions()})
	s.mcp.AddReceivingMiddleware(s.stoppable)
	if err := s.addTools(); err != nil {
		return nil, err
	}
	return s, nil
}

// Shutdown cancels every call in flight and every call after it: their executions end (the
// runner deletes what they made; close the runner to wait for that) and they answer the tool
// error canceled. A transport's own shutdown does not reach the calls of every transport (the
// streamable HTTP transport's stateless requests outlive their HTTP server's base context).
func (s *Server) Shutdown() { s.stop() }

// stoppable gives every request a context that Shutdown ends.
func (s *Server) stoppable(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.stopping, cancel)()
		return next(ctx, method, req)
	}
}

// MCP is the SDK's server, for transports this package does not serve.
func (s *Server) MCP() *sdk.Server { return s.mcp }

// ServeStdio serves one client over newline-delimited JSON-RPC on in and out, the stdio
// transport, until the client closes in (nil) or ctx ends (ctx's error).
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	return s.mcp.Run(ctx, &sdk.IOTransport{Reader: io.NopCloser(in), Writer: nopWriteCloser{out}})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Handler serves the streamable HTTP transport, stateless (any replica answers any request:
// the tools keep no state of their own, and sessions are the runner's, addressed by ID), behind
// gkexec serve's token rules (server.RequireToken): with a token, only requests bearing it;
// without one, only requests addressed to a loopback name.
func (s *Server) Handler(token string) http.Handler {
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return s.mcp }, &sdk.StreamableHTTPOptions{
		Stateless: true,
		// server.RequireToken applies serve's rule for the Host header; the SDK's own would also
		// refuse a token holder that names the server otherwise.
		DisableLocalhostProtection:   true,
		MaxRequestBodyBytes:          server.DefaultMaxBodyBytes,
		PropagateRequestCancellation: true,
		Logger:                       s.log,
	})
	return server.RequireToken(token, h)
}

func (s *Server) instructions() string {
	o := s.run.Options()
	return fmt.Sprintf("Runs code in isolated gVisor sandboxes on Kubernetes (namespace %s). run_code runs a complete program in a fresh sandbox; "+
		"for state across calls, open_session, then run_in_session (close_session when done). Languages: %s. "+
		"Programs read input files from their working directory %s and return files by writing them under %s. "+
		"describe_sandbox lists the languages, limits and warm pool.", o.Namespace, languageList(), runner.WorkDir, runner.OutputDir)
}

// inputSchema is the schema inferred from In, with the language enum and the timeout's bound
// set from what this server offers.
func inputSchema[In any](s *Server) (*jsonschema.Schema, error) {
	schema, err := jsonschema.For[In](nil)
	if err != nil {
		return nil, err
	}
	notNullable(schema)
	if p := schema.Properties["language"]; p != nil {
		p.Enum = languageNames()
		p.Default = []byte(pyString(languages[0].Name))
	}
	if p := schema.Properties["timeout_seconds"]; p != nil {
		limit := s.run.Options().Timeout.Seconds()
		p.Minimum, p.Maximum = ptr(0.0), &limit
		p.Description += fmt.Sprintf(" At most %g, the server's limit, which is also the default.", limit)
	}
	return schema, nil
}

// notNullable makes the optional arrays inferred as ["null", "array"] plain arrays: an omitted
// argument is absent, not null, and some clients (Gemini's function declarations among them)
// take only one type per property.
func notNullable(s *jsonschema.Schema) {
	if len(s.Types) == 2 && s.Types[0] == "null" {
		s.Type, s.Types = s.Types[1], nil
	}
	for _, p := range s.Properties {
		notNullable(p)
	}
	if s.Items != nil {
		notNullable(s.Items)
	}
}

func ptr[T any](v T) *T { return &v }
