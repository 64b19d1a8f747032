package gateway

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// limitListener bounds the connections open from all sources and from each source address.
// A connection past a bound is answered 503 too-many-connections, so the code reads why, and
// closed; it does not wait in the backlog.
type limitListener struct {
	net.Listener
	max, perSource int
	m              *metrics

	mu       sync.Mutex
	open     int
	bySource map[netip.Addr]int
}

func newLimitListener(l net.Listener, maxConns, perSource int, m *metrics) *limitListener {
	return &limitListener{Listener: l, max: maxConns, perSource: perSource, m: m, bySource: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(c)
		l.mu.Lock()
		full := l.open >= l.max || l.bySource[src] >= l.perSource
		if !full {
			l.open++
			l.bySource[src]++
		}
		l.mu.Unlock()
		if full {
			l.m.connsRefused.Add(1)
			go refuseConn(c)
			continue
		}
		l.m.connsOpen.Add(1)
		l.m.connsTotal.Add(1)
		return &limitedConn{Conn: withQuickAck(c), release: func() { l.release(src) }}, nil
	}
}

func (l *limitListener) release(src netip.Addr) {
	l.mu.Lock()
	l.open--
	if l.bySource[src]--; l.bySource[src] <= 0 {
		delete(l.bySource, src)
	}
	l.mu.Unlock()
	l.m.connsOpen.Add(-1)
}

func sourceOf(c net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

var tooMany = deny(ReasonTooManyConnections, "the gateway's connection limit for this sandbox, or for all, is reached; retry later").raw()

func refuseConn(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(tooMany)
	_ = c.Close()
}

// limitedConn gives its slot back once, when closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

func (c *limitedConn) CloseWrite() error { return closeWrite(c.Conn) }
