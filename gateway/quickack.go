package gateway

import (
	"net"
	"syscall"
)

// quickAckConn acknowledges what it reads at once instead of letting the kernel delay the ACK.
//
// Why: a peer with Nagle's algorithm on (Python's http.server, many small servers) sends a
// small segment, then holds its next small one until the first is acknowledged. Linux delays
// that ACK by up to 40 ms when the connection looks interactive, which a proxy's always does:
// it has just written the other side's bytes. gVisor's netstack, the sandbox's own stack, ACKs
// at once, so without this every such response through the gateway stalled 40 ms that the
// same request sent directly from the sandbox never waited (docs/performance.md, "Egress
// gateway"). Linux forgets TCP_QUICKACK by itself, so it is set again after every read; that
// also sends at once an ACK the kernel was holding for what was just read.
//
// It embeds net.Conn, not *net.TCPConn: the latter's ReadFrom and WriteTo would let io.Copy
// read around Read.
type quickAckConn struct {
	net.Conn // a *net.TCPConn
	raw      syscall.RawConn
}

// withQuickAck wraps a TCP connection; anything else is returned as it is.
func withQuickAck(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &quickAckConn{Conn: tc, raw: raw}
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		setQuickAck(c.raw)
	}
	return n, err
}

// CloseWrite half-closes, as the tunnel does when one direction ends.
func (c *quickAckConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }
