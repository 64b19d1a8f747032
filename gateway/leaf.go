package gateway

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"sync"
	"time"
)

const (
	// defaultLeafCacheSize bounds the leaf certificates kept: one per intercepted host name.
	defaultLeafCacheSize = 1024
	// leafValidity is how long a leaf is valid; leafRenewBefore, how long before its end a new
	// one replaces it. Short-lived leaves need no revocation.
	leafValidity    = 24 * time.Hour
	leafRenewBefore = time.Hour
)

// leafCache holds the minted leaves, least recently used first out.
type leafCache struct {
	mu      sync.Mutex
	size    int
	entries map[string]*list.Element
	order   *list.List // front: most recently used
	minted  uint64
}

type leafEntry struct {
	name string
	cert *tls.Certificate
}

func newLeafCache(size int) *leafCache {
	return &leafCache{size: size, entries: map[string]*list.Element{}, order: list.New()}
}

// leaf returns a certificate for name signed by the CA, minting one when the cache has none
// valid for another leafRenewBefore. Two callers may mint for the same name at once; the
// later one wins the cache, both certificates are valid.
func (c *CA) leaf(name string, now time.Time) (*tls.Certificate, error) {
	lc := c.leaves
	lc.mu.Lock()
	if e, ok := lc.entries[name]; ok {
		cert := e.Value.(*leafEntry).cert
		if now.Add(leafRenewBefore).Before(cert.Leaf.NotAfter) {
			lc.order.MoveToFront(e)
			lc.mu.Unlock()
			return cert, nil
		}
	}
	lc.mu.Unlock()

	cert, err := c.mint(name, now)
	if err != nil {
		return nil, err
	}
	lc.mu.Lock()
	defer lc.mu.Unlock()
	lc.minted++
	if e, ok := lc.entries[name]; ok {
		e.Value.(*leafEntry).cert = cert
		lc.order.MoveToFront(e)
		return cert, nil
	}
	lc.entries[name] = lc.order.PushFront(&leafEntry{name: name, cert: cert})
	for lc.order.Len() > lc.size {
		oldest := lc.order.Back()
		lc.order.Remove(oldest)
		delete(lc.entries, oldest.Value.(*leafEntry).name)
	}
	return cert, nil
}

// mint signs a new ECDSA P-256 leaf for name, valid for leafValidity (never past the CA).
func (c *CA) mint(name string, now time.Time) (*tls.Certificate, error) {
	if !c.permits(name) {
		return nil, fmt.Errorf("%w: the CA's name constraints do not permit %s", ErrInvalidCA, name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(leafValidity)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: name},
		DNSNames:              []string{name},
		NotBefore:             now.Add(-time.Hour), // the sandbox's clock may lag
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, key.Public(), c.key)
	if err != nil {
		return nil, fmt.Errorf("signing a certificate for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// leafStats reports the cache's size and how many leaves were minted, for /metrics.
func (c *CA) leafStats() (cached int, minted uint64) {
	c.leaves.mu.Lock()
	defer c.leaves.mu.Unlock()
	return c.leaves.order.Len(), c.leaves.minted
}
