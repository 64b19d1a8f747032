package gateway

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tunnelConn is a hijacked connection the gateway tracks, to cut it at shutdown.
type tunnelConn struct {
	net.Conn
	once sync.Once
}

func (c *tunnelConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() { err = c.Conn.Close() })
	return err
}

func (c *tunnelConn) CloseWrite() error { return closeWrite(c.Conn) }

// track registers a hijacked connection; false (and the connection closed) when the gateway is
// shutting down.
func (g *Gateway) track(c net.Conn) (*tunnelConn, bool) {
	tc := &tunnelConn{Conn: c}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		_ = c.Close()
		return nil, false
	}
	g.tunnels[tc] = struct{}{}
	g.wg.Add(1)
	g.metrics.tunnelsOpen.Add(1)
	return tc, true
}

func (g *Gateway) untrack(tc *tunnelConn) {
	_ = tc.Close()
	g.mu.Lock()
	delete(g.tunnels, tc)
	g.mu.Unlock()
	g.metrics.tunnelsOpen.Add(-1)
	g.wg.Done()
}

// closeTunnels cuts every tunnel.
func (g *Gateway) closeTunnels() {
	g.mu.Lock()
	open := make([]*tunnelConn, 0, len(g.tunnels))
	for tc := range g.tunnels {
		open = append(open, tc)
	}
	g.mu.Unlock()
	for _, tc := range open {
		_ = tc.Close()
	}
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// splice copies both ways between the sandbox and the destination until both directions end,
// either side fails, or nothing has passed for TunnelIdleTimeout. A direction that ends
// cleanly half-closes the other side, so request-then-response protocols finish.
func (g *Gateway) splice(client, upstream net.Conn) {
	var last atomic.Int64
	touch := func() { last.Store(time.Now().UnixNano()) }
	touch()
	stop := func() { _ = client.Close(); _ = upstream.Close() }

	done := make(chan struct{})
	go func() {
		idle := g.opts.TunnelIdleTimeout
		tick := time.NewTicker(max(idle/4, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case now := <-tick.C:
				if now.Sub(time.Unix(0, last.Load())) > idle {
					stop()
					return
				}
			}
		}
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, err := copyTouching(upstream, client, touch)
		g.metrics.bytesUp.Add(uint64(n))
		if err != nil {
			stop()
			return
		}
		_ = closeWrite(upstream)
	}()
	n, err := copyTouching(client, upstream, touch)
	g.metrics.bytesDown.Add(uint64(n))
	if err != nil {
		stop()
	} else {
		_ = closeWrite(client)
	}
	wg.Wait()
	close(done)
	stop()
}

// copyTouching copies src to dst, calling touch after every read and write; a clean end of
// src is a nil error.
func copyTouching(dst io.Writer, src io.Reader, touch func()) (int64, error) {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var total int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			touch()
			w, werr := dst.Write(buf[:n])
			total += int64(w)
			if werr != nil {
				return total, werr
			}
			touch()
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				return total, nil
			}
			return total, rerr
		}
	}
}
