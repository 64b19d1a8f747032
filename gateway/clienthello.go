package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"time"
)

// maxClientHelloBytes bounds what the gateway reads looking for a ClientHello. Post-quantum key
// shares make a ClientHello about 1.5 KiB; 64 KiB is the largest a handshake message may
// reasonably be.
const maxClientHelloBytes = 64 << 10

// clientHello is what the gateway learns from a tunnel's first bytes.
type clientHello struct {
	serverName string // SNI, as sent (crypto/tls lower-cases it)
	// encrypted: it carries an Encrypted Client Hello extension, so serverName is only the
	// "public name" of a front and the name that counts is encrypted.
	encrypted bool
}

// extensionECH is the encrypted_client_hello extension's code point (draft-ietf-tls-esni).
const extensionECH = 0xfe0d

// errNotTLS: the first bytes are not a TLS ClientHello.
var errNotTLS = errors.New("the tunnel's first bytes are not a TLS ClientHello")

// errHelloRead stops the handshake once the ClientHello is parsed.
var errHelloRead = errors.New("client hello read")

// readClientHello reads a TLS ClientHello from r without answering it, using crypto/tls's own
// parser (records split across reads and fragmented handshake messages included). It returns
// the hello and every byte it read, which the caller replays to whoever answers the
// handshake: the destination, or the gateway's own TLS server.
func readClientHello(r io.Reader) (clientHello, []byte, error) {
	rec := &recordingConn{r: io.LimitReader(r, maxClientHelloBytes)}
	var hello *clientHello
	err := tls.Server(rec, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			hello = &clientHello{serverName: h.ServerName, encrypted: slices.Contains(h.Extensions, extensionECH)}
			return nil, errHelloRead
		},
	}).Handshake()
	if hello == nil {
		if rec.readErr != nil && !errors.Is(rec.readErr, io.EOF) {
			return clientHello{}, rec.buf.Bytes(), rec.readErr
		}
		return clientHello{}, rec.buf.Bytes(), errors.Join(errNotTLS, err)
	}
	return *hello, rec.buf.Bytes(), nil
}

// recordingConn is the net.Conn crypto/tls reads the ClientHello from: it keeps what it reads
// and writes nothing (the handshake is abandoned before the server would answer).
type recordingConn struct {
	r       io.Reader
	buf     bytes.Buffer
	readErr error
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.buf.Write(p[:n])
	if err != nil && c.readErr == nil {
		c.readErr = err
	}
	return n, err
}

func (c *recordingConn) Write(p []byte) (int, error)      { return 0, errHelloRead }
func (c *recordingConn) Close() error                     { return nil }
func (c *recordingConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *recordingConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *recordingConn) SetDeadline(time.Time) error      { return nil }
func (c *recordingConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordingConn) SetWriteDeadline(time.Time) error { return nil }

// accessDeniedAlert is a TLS fatal access_denied alert (RFC 8446 6.2), in a plaintext record:
// what a tunnel refused after its 200 gets, since no HTTP answer can follow a CONNECT's 200.
var accessDeniedAlert = []byte{21, 3, 3, 0, 2, 2, 49}

// replayConn is a net.Conn read through r: bytes already read from it (a ClientHello, what the
// HTTP server had buffered), then the rest.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite half-closes the underlying connection when it can.
func (c *replayConn) CloseWrite() error { return closeWrite(c.Conn) }

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
