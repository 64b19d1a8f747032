package server

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// errShuttingDown is the cancellation cause of executions interrupted by Serve's shutdown.
var errShuttingDown = errors.New("server shutting down")

// Server serves the API. Create it with New; serve it with Serve, or mount Handler in your own
// http.Server and call Shutdown yourself.
type Server struct {
	opts Options
	run  *runner.Runner
	// sessions is the session API; the runner's, unless a test stands in.
	sessions sessionRunner
	log      *slog.Logger
	sem      chan struct{}
	metrics  *metrics
	ready    *readiness
	token    [sha256.Size]byte

	// stop cancels every in-flight execution's context (with errShuttingDown).
	stopCtx context.Context
	stop    context.CancelCauseFunc

	// mu guards draining and ids, so that no execution starts once Shutdown has begun waiting.
	mu       sync.Mutex
	draining atomic.Bool
	ids      map[string]bool // execution IDs in flight
	inflight sync.WaitGroup
}

// New validates the options and returns a Server.
func New(opts Options) (*Server, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		opts: opts, run: opts.Runner, log: opts.Logger, sessions: runnerSessions{opts.Runner},
		sem:     make(chan struct{}, opts.MaxConcurrent),
		metrics: newMetrics(opts.MaxConcurrent),
		ids:     map[string]bool{},
	}
	s.ready = &readiness{run: opts.Runner, ttl: opts.ReadyCacheTTL, timeout: opts.ReadyTimeout}
	s.token = sha256.Sum256([]byte(opts.Token))
	s.stopCtx, s.stop = context.WithCancelCause(context.Background())
	return s, nil
}

// Handler serves the whole API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("POST "+PathExecutions, s.authenticated(http.HandlerFunc(s.handleExecute)))
	mux.Handle("GET "+PathConfig, s.authenticated(http.HandlerFunc(s.handleConfig)))
	mux.Handle("POST "+PathSessions, s.authenticated(http.HandlerFunc(s.handleOpenSession)))
	mux.Handle("POST "+PathSessions+"/{id}/executions", s.authenticated(http.HandlerFunc(s.handleSessionExecute)))
	mux.Handle("DELETE "+PathSessions+"/{id}", s.authenticated(http.HandlerFunc(s.handleCloseSession)))
	s.probes(mux)
	return mux
}

// ProbeHandler serves only /healthz, /readyz and /metrics, for a second listener on the Pod's
// IP that the kubelet and Prometheus reach while the API itself stays on loopback.
func (s *Server) ProbeHandler() http.Handler {
	mux := http.NewServeMux()
	s.probes(mux)
	return mux
}

func (s *Server) probes(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathHealthz, s.handleHealthz)
	mux.HandleFunc("GET "+PathReadyz, s.handleReadyz)
	mux.HandleFunc("GET "+PathMetrics, s.handleMetrics)
}

// Serve serves the API on api (and the probes on probe, if not nil) until ctx ends, then shuts
// down gracefully: it stops accepting, cancels in-flight executions, waits for the runner to
// delete everything they created, and returns. It does not close the runner.
func (s *Server) Serve(ctx context.Context, api, probe net.Listener) error {
	servers := []*http.Server{s.httpServer(s.Handler())}
	listeners := []net.Listener{api}
	if probe != nil {
		servers = append(servers, s.httpServer(s.ProbeHandler()))
		listeners = append(listeners, probe)
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	s.log.Info("serving", "listen", api.Addr().String(), "probes", addrOf(probe),
		"max_concurrent", s.opts.MaxConcurrent, "auth", s.opts.Token != "")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("serving: %w", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = srv.Shutdown(shutdownCtx)
		}()
	}
	err := s.Shutdown(shutdownCtx)
	wg.Wait()
	return errors.Join(serveErr, err)
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: h,
		// No ReadTimeout or WriteTimeout: an execution legitimately takes minutes, bounded by the
		// runner's StartTimeout and Timeout. The body has its own deadline (BodyReadTimeout).
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// Shutdown makes the server refuse new executions (503) and report not ready, cancels the
// executions in flight and waits until they have returned, which the runner does only after
// deleting what they created. Use it when mounting Handler in your own http.Server: call it
// alongside http.Server.Shutdown, which waits for the handlers but cannot interrupt them.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining.Store(true)
	s.mu.Unlock()
	s.stop(errShuttingDown)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
		s.log.Info("shut down: no execution in flight")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown: executions still in flight after %s; `gkexec gc` removes what they leave: %w",
			s.opts.ShutdownTimeout, ctx.Err())
	}
}
