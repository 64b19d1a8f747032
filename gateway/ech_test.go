package gateway

import (
	"crypto/ecdh"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// Encrypted Client Hello hides the real server name inside an encrypted extension and puts a
// "public name" in the clear SNI: a tunnel whose clear SNI is an allowed host on a CDN could
// carry, encrypted, a ClientHello for any other site of that CDN. The gateway cannot read the
// inner name, so it refuses a ClientHello that carries the extension at all.
func TestConnectRefusesEncryptedClientHello(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	before := h.tlsServer.count()
	resp, c, br := h.connect(t, addrWide, "allowed.test:"+strconv.Itoa(h.tlsServer.port), "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT: %d", resp.StatusCode)
	}
	cfg := &tls.Config{
		ServerName:                     "denied.test", // the inner, encrypted name
		RootCAs:                        h.roots,
		MinVersion:                     tls.VersionTLS13,
		EncryptedClientHelloConfigList: echConfigList(t, "allowed.test"), // the clear SNI
	}
	err := tls.Client(&bufferedConn{Conn: c, r: br}, cfg).Handshake()
	if err == nil || !strings.Contains(err.Error(), "access denied") {
		t.Errorf("handshake: %v; want the access_denied alert", err)
	}
	if h.tlsServer.count() != before {
		t.Error("the destination was reached")
	}
	if st, _ := h.gw.Stats("wide"); !hasDenied(st, "allowed.test", ReasonSNIEncrypted) {
		t.Errorf("stats: %+v; want a denial %s", st.Denied, ReasonSNIEncrypted)
	}
}

// echConfigList is an ECHConfigList (draft-ietf-tls-esni, section 4) of one X25519 /
// HKDF-SHA256 / AES-128-GCM config whose public name is publicName.
func echConfigList(t *testing.T, publicName string) []byte {
	t.Helper()
	key, err := ecdh.X25519().GenerateKey(rand.Reader)
	must(t, err)
	u16 := func(b []byte, v int) []byte { return binary.BigEndian.AppendUint16(b, uint16(v)) }
	var c []byte
	c = append(c, 1)   // config_id
	c = u16(c, 0x0020) // KEM: DHKEM(X25519, HKDF-SHA256)
	pub := key.PublicKey().Bytes()
	c = u16(c, len(pub))
	c = append(c, pub...)
	c = u16(c, 4)      // cipher suites
	c = u16(c, 0x0001) // HKDF-SHA256
	c = u16(c, 0x0001) // AES-128-GCM
	c = append(c, 0)   // maximum_name_length
	c = append(c, byte(len(publicName)))
	c = append(c, publicName...)
	c = u16(c, 0) // no extensions
	cfg := u16(u16(nil, 0xfe0d), len(c))
	cfg = append(cfg, c...)
	return append(u16(nil, len(cfg)), cfg...)
}
