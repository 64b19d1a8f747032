package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/autoscale"
)

// Defaults.
const (
	// DefaultMaxConcurrent bounds executions in flight. The runner's default client rate limit
	// (100 QPS and a burst of 300, ~6 requests a cold execution) starts about eight a second; ten in flight keeps a
	// sidecar well inside that and inside the namespace quota (manifests/base: 50 Jobs).
	DefaultMaxConcurrent = 10
	// DefaultMaxBodyBytes caps a request body. What must fit is one ConfigMap, 1 MiB of code and
	// input files (runner.Runner.CheckRequest checks that exactly, after decoding). On the wire
	// the files are base64 (4/3 of their size) and the code is a JSON string, where newlines,
	// quotes and backslashes take two bytes; 2 MiB covers a full ConfigMap of either, and 64 KiB
	// more covers keys and file names. A body past this is refused before it is read to the end.
	DefaultMaxBodyBytes = 2<<20 + 64<<10
	// DefaultReadyCacheTTL: /readyz makes about a dozen API calls (one SelfSubjectAccessReview
	// per verb); probes every few seconds from several containers share one answer.
	DefaultReadyCacheTTL = 10 * time.Second
	// DefaultReadyTimeout bounds one readiness check.
	DefaultReadyTimeout = 10 * time.Second
	// DefaultRetryAfter is the Retry-After sent with 429 and retryable 503s.
	DefaultRetryAfter = 2 * time.Second
	// DefaultBodyReadTimeout bounds reading a request body; the execution itself is bounded by
	// the runner's StartTimeout and Timeout, not by the HTTP server.
	DefaultBodyReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds writing one line of a streamed answer, or a whole JSON answer: a
	// caller that reads nothing for this long is cut off, so that it never holds a sandbox, a slot
	// or a session's turn past the execution's own timeout.
	DefaultWriteTimeout = 30 * time.Second
	// DefaultShutdownTimeout bounds graceful shutdown: cancelling in-flight executions and the
	// runner's deletions (each retried for the runner's CleanupTimeout, 1 m by default).
	DefaultShutdownTimeout = 45 * time.Second
)

// Options configures a Server. The zero value of each field means its documented default.
type Options struct {
	// Runner executes the code; required. The Server does not close it.
	Runner *runner.Runner
	// Token, if not empty, must be sent as "Authorization: Bearer <token>" on /v1/ requests.
	// /healthz, /readyz and /metrics stay open: probes and scrapers carry no secrets.
	Token string
	// MaxConcurrent bounds executions in flight; past it requests get 429. Default 10.
	MaxConcurrent int
	// MaxBodyBytes caps a request body; past it requests get 413. Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// ReadyCacheTTL is how long a /readyz answer is reused. Default 10s.
	ReadyCacheTTL time.Duration
	// ReadyTimeout bounds one readiness check. Default 10s.
	ReadyTimeout time.Duration
	// RetryAfter is sent with 429 and retryable 503 answers. Default 2s.
	RetryAfter time.Duration
	// BodyReadTimeout bounds reading one request body. Default 30s.
	BodyReadTimeout time.Duration
	// ShutdownTimeout bounds Serve's graceful shutdown. Default 45s.
	ShutdownTimeout time.Duration
	// WriteTimeout bounds writing one line of a streamed answer, or a whole JSON answer, to a
	// caller that does not read. Default 30s.
	WriteTimeout time.Duration
	// Logger receives one line per execution and the lifecycle; default discards.
	Logger *slog.Logger
	// Autoscaler, if set, is the warm pool's autoscaler this process runs: /metrics adds what it
	// saw and did (gkexec_pool_*). The Server neither starts nor stops it.
	Autoscaler *autoscale.Autoscaler
}

func (o *Options) setDefaults() {
	set := func(field *time.Duration, d time.Duration) {
		if *field == 0 {
			*field = d
		}
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = DefaultMaxConcurrent
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	set(&o.ReadyCacheTTL, DefaultReadyCacheTTL)
	set(&o.ReadyTimeout, DefaultReadyTimeout)
	set(&o.RetryAfter, DefaultRetryAfter)
	set(&o.BodyReadTimeout, DefaultBodyReadTimeout)
	set(&o.ShutdownTimeout, DefaultShutdownTimeout)
	set(&o.WriteTimeout, DefaultWriteTimeout)
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// ErrInvalidOptions: Options failed validation; the message names every bad field.
var ErrInvalidOptions = errors.New("invalid server options")

func (o *Options) validate() error {
	var errs []error
	if o.Runner == nil {
		errs = append(errs, errors.New("Runner: required"))
	}
	if o.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrent %d: must be positive", o.MaxConcurrent))
	}
	if o.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxBodyBytes %d: must be positive", o.MaxBodyBytes))
	}
	for _, d := range []struct {
		name  string
		value time.Duration
	}{
		{"ReadyCacheTTL", o.ReadyCacheTTL}, {"ReadyTimeout", o.ReadyTimeout}, {"RetryAfter", o.RetryAfter},
		{"BodyReadTimeout", o.BodyReadTimeout}, {"ShutdownTimeout", o.ShutdownTimeout}, {"WriteTimeout", o.WriteTimeout},
	} {
		if d.value < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must be positive", d.name, d.value))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrInvalidOptions, errors.Join(errs...))
}
