package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
)

// Serve serves the proxy on proxy (with the connection limits) and the admin API on admin (if
// not nil) until ctx ends, then shuts down: it stops accepting, lets requests in flight finish
// and tunnels drain for ShutdownTimeout, then cuts what is left. Neither listener can be
// reached through the proxy.
func (g *Gateway) Serve(ctx context.Context, proxy, admin net.Listener) error {
	g.self.add(proxy.Addr())
	servers := []*http.Server{g.httpServer(g)}
	listeners := []net.Listener{newLimitListener(proxy, g.opts.MaxConns, g.opts.MaxConnsPerSource, g.metrics)}
	if admin != nil {
		g.self.add(admin.Addr())
		servers = append(servers, g.httpServer(g.AdminHandler()))
		listeners = append(listeners, admin)
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { errc <- srv.Serve(listeners[i]) }()
	}
	g.log.Info("serving", "proxy", proxy.Addr().String(), "admin", addrOf(admin),
		"allow_rules", g.allow.Len(), "secrets", len(g.opts.Secrets), "max_conns", g.opts.MaxConns)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
		serveErr = fmt.Errorf("serving: %w", serveErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), g.opts.ShutdownTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(shutdownCtx); err != nil {
				_ = srv.Close()
			}
		}()
	}
	wg.Wait()
	err := g.Shutdown(shutdownCtx)
	g.transport.CloseIdleConnections()
	return errors.Join(serveErr, err)
}

// Shutdown waits for the tunnels to end until ctx does, then cuts them; no new tunnel opens
// once it has begun. Call it after http.Server.Shutdown when mounting the Gateway yourself:
// that one neither waits for nor closes hijacked connections.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		g.closeTunnels()
		<-done
		g.log.Info("shut down: tunnels still open were cut")
		return nil
	}
}

func addrOf(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

func (g *Gateway) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: g.opts.ReadHeaderTimeout,
		IdleTimeout:       g.opts.IdleTimeout,
		MaxHeaderBytes:    g.opts.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		// No ReadTimeout or WriteTimeout: a download or a model's streamed answer may take
		// minutes; the destination's own timeouts and TunnelIdleTimeout bound them.
		BaseContext: func(net.Listener) context.Context { return context.Background() },
	}
}
