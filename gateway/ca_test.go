package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"testing"
	"time"
)

func TestCAMintsLeavesClientsVerify(t *testing.T) {
	t.Parallel()
	now := time.Now()
	certPEM, keyPEM, err := GenerateCA(CAOptions{PermittedDomains: []string{"example.com", "*.api.test"}}, now)
	must(t, err)
	ca, err := LoadCA(certPEM, keyPEM, now)
	must(t, err)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertificatePEM())
	for _, name := range []string{"example.com", "www.example.com", "api.test", "x.api.test"} {
		leaf, err := ca.leaf(name, now)
		must(t, err)
		if _, err := leaf.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		again, _ := ca.leaf(name, now)
		if again != leaf {
			t.Errorf("%s: minted twice; the cache must serve it", name)
		}
	}
	// Outside the name constraints: the gateway refuses to mint, and a client would refuse it.
	if _, err := ca.leaf("evil.example", now); !errors.Is(err, ErrInvalidCA) {
		t.Errorf("evil.example: %v", err)
	}
	// A leaf near its end is replaced.
	old, _ := ca.leaf("example.com", now)
	renewed, _ := ca.leaf("example.com", now.Add(leafValidity-leafRenewBefore/2))
	if renewed == old {
		t.Error("a leaf about to expire was served")
	}
	cached, minted := ca.leafStats()
	if cached != 4 || minted != 5 {
		t.Errorf("cached %d minted %d", cached, minted)
	}
}

func TestLoadCARefusesWhatCannotSign(t *testing.T) {
	t.Parallel()
	now := time.Now()
	certPEM, keyPEM, err := GenerateCA(CAOptions{Validity: time.Hour}, now)
	must(t, err)
	otherCert, otherKey, err := GenerateCA(CAOptions{}, now)
	must(t, err)
	_ = otherCert
	for name, tc := range map[string]struct {
		cert, key []byte
		at        time.Time
	}{
		"key of another CA": {certPEM, otherKey, now},
		"expired":           {certPEM, keyPEM, now.Add(2 * time.Hour)},
		"not PEM":           {[]byte("nope"), keyPEM, now},
		"key not PEM":       {certPEM, []byte("nope"), now},
	} {
		if _, err := LoadCA(tc.cert, tc.key, tc.at); !errors.Is(err, ErrInvalidCA) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A leaf (not a CA) is refused.
	ca, err := LoadCA(certPEM, keyPEM, now)
	must(t, err)
	leaf, err := ca.mint("x.example", now)
	must(t, err)
	leafPEM := pemCert(leaf.Certificate[0])
	leafKey := pemKey(t, leaf)
	if _, err := LoadCA(leafPEM, leafKey, now); !errors.Is(err, ErrInvalidCA) {
		t.Errorf("a leaf as CA: %v", err)
	}
}

func TestClientHelloIsReadAndReplayed(t *testing.T) {
	t.Parallel()
	for _, sni := range []string{"api.example.com", ""} {
		client, server := net.Pipe()
		go func() {
			cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: sni == ""}
			_ = tls.Client(client, cfg).Handshake()
			client.Close()
		}()
		hello, raw, err := readClientHello(server)
		server.Close()
		if err != nil || hello.serverName != sni {
			t.Errorf("SNI %q: got %q, %v", sni, hello.serverName, err)
		}
		if len(raw) < 5 || raw[0] != 22 {
			t.Errorf("SNI %q: raw bytes %x... are not the handshake record", sni, raw[:min(len(raw), 5)])
		}
	}
	client, server := net.Pipe()
	go func() { _, _ = client.Write([]byte("GET / HTTP/1.1\r\n\r\n")); client.Close() }()
	if _, _, err := readClientHello(server); !errors.Is(err, errNotTLS) {
		t.Errorf("plain HTTP: %v", err)
	}
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(t *testing.T, c *tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	must(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
