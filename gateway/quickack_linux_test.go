package gateway

import (
	"context"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// Both of the gateway's sockets, the sandbox's (accepted) and the destination's (dialled),
// acknowledge what the gateway has read at once. The effect (a Nagle-on server's answer in two
// writes: 44 ms p50 through the gateway without it, 0.1 ms with it) is measured by
// BenchmarkRequest/https-keep-alive-nagle-server; this test holds the mechanism in place.
func TestGatewaySocketsAcknowledgeAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	ll := newLimitListener(l, 10, 10, newMetrics())
	d := &dialer{timeout: 5 * time.Second}

	dialled := make(chan net.Conn, 1)
	go func() {
		c, err := d.dial(context.Background(), []netip.AddrPort{netip.MustParseAddrPort(l.Addr().String())})
		if err != nil {
			t.Error(err)
		}
		dialled <- c
	}()
	accepted, err := ll.Accept()
	must(t, err)
	defer accepted.Close()
	out := <-dialled
	if out == nil {
		t.FailNow()
	}
	defer out.Close()

	for _, side := range []struct {
		name     string
		from, to net.Conn
	}{
		{"accepted (the sandbox's)", out, accepted.(*limitedConn).Conn},
		{"dialled (the destination's)", accepted, out},
	} {
		q, ok := side.to.(*quickAckConn)
		if !ok {
			t.Errorf("%s connection is a %T, want a *quickAckConn", side.name, side.to)
			continue
		}
		// Put the socket in the kernel's interactive (delayed-ACK) mode: it writes right
		// after it has read, as a proxy does.
		for range 3 {
			_, err := side.from.Write([]byte("x"))
			must(t, err)
			_, err = q.Read(make([]byte, 8))
			must(t, err)
			_, err = q.Write([]byte("y"))
			must(t, err)
			_, err = side.from.Read(make([]byte, 8))
			must(t, err)
		}
		_, err := side.from.Write([]byte("z"))
		must(t, err)
		_, err = q.Read(make([]byte, 8))
		must(t, err)
		if v := quickAckOption(t, q.Conn.(*net.TCPConn)); v != 1 {
			t.Errorf("%s connection: TCP_QUICKACK reads %d after a read, want 1 (the ACK sent at once)", side.name, v)
		}
	}
	if c := withQuickAck(pipeEnd(t)); func() bool { _, ok := c.(*quickAckConn); return ok }() {
		t.Error("withQuickAck wrapped a connection that is not TCP")
	}
}

func quickAckOption(t *testing.T, c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	must(t, err)
	var v int
	var gerr error
	must(t, raw.Control(func(fd uintptr) {
		v, gerr = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK)
	}))
	must(t, gerr)
	return v
}

func pipeEnd(t *testing.T) net.Conn {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return a
}
