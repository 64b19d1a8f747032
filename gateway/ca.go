package gateway

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// CA signs the leaf certificates the gateway presents to a sandbox for the hosts it
// intercepts (those secrets are bound to). One per namespace: its certificate is what the
// namespace's sandboxes trust (mounted in them, with the system's roots); its key is read by
// the gateway alone. Create it with GenerateCA (or any CA tool) and load it with LoadCA.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     crypto.Signer
	leaves  *leafCache
}

// CAOptions shape a new CA.
type CAOptions struct {
	// CommonName of the CA; default "gkexec egress gateway CA".
	CommonName string
	// Validity; default 2 years. Rotating means mounting a new certificate in sandboxes.
	Validity time.Duration
	// PermittedDomains, if set, name-constrains the CA (RFC 5280 4.2.1.10, critical): clients
	// accept its certificates for these domains and their subdomains only, so even its key,
	// were it stolen, could not impersonate any other host to a sandbox. List the domains
	// secrets are bound to.
	PermittedDomains []string
}

// GenerateCA makes a new CA: an ECDSA P-256 key and a self-signed certificate, both PEM.
func GenerateCA(o CAOptions, now time.Time) (certPEM, keyPEM []byte, err error) {
	if o.CommonName == "" {
		o.CommonName = "gkexec egress gateway CA"
	}
	if o.Validity == 0 {
		o.Validity = 2 * 365 * 24 * time.Hour
	}
	if o.Validity < 0 {
		return nil, nil, fmt.Errorf("%w: validity %s: must be positive", ErrInvalidCA, o.Validity)
	}
	var permitted []string
	for _, d := range o.PermittedDomains {
		t, err := parseHost(strings.TrimPrefix(d, "*."))
		if err != nil || t.isIP() {
			return nil, nil, fmt.Errorf("%w: permitted domain %q: a DNS name", ErrInvalidCA, d)
		}
		permitted = append(permitted, t.name)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:                randomSerial(),
		Subject:                     pkix.Name{CommonName: o.CommonName, Organization: []string{"gkexec"}},
		NotBefore:                   now.Add(-time.Hour),
		NotAfter:                    now.Add(o.Validity),
		KeyUsage:                    x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid:       true,
		IsCA:                        true,
		MaxPathLenZero:              true, // signs leaves only (x509 derives the key IDs)
		PermittedDNSDomains:         permitted,
		PermittedDNSDomainsCritical: len(permitted) > 0,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// LoadCA reads a CA's PEM certificate and key (PKCS #8, or SEC 1 "EC PRIVATE KEY", or PKCS #1
// "RSA PRIVATE KEY") and checks that they match and can sign certificates now.
func LoadCA(certPEM, keyPEM []byte, now time.Time) (*CA, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: the certificate is not a PEM CERTIFICATE", ErrInvalidCA)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidCA, err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	var errs []error
	if !cert.IsCA || !cert.BasicConstraintsValid {
		errs = append(errs, errors.New("the certificate is not a CA (basic constraints)"))
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		errs = append(errs, errors.New("the certificate's key usage does not include certificate signing"))
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		errs = append(errs, fmt.Errorf("the certificate is valid from %s to %s only", cert.NotBefore.Format(time.RFC3339), cert.NotAfter.Format(time.RFC3339)))
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		errs = append(errs, errors.New("the key is not the certificate's"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidCA, err)
	}
	return &CA{cert: cert, certPEM: bytes.Clone(certPEM), key: key, leaves: newLeafCache(defaultLeafCacheSize)}, nil
}

func parseKey(keyPEM []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: the key is not PEM", ErrInvalidCA)
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: key PEM type %q: want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", ErrInvalidCA, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: key: %w", ErrInvalidCA, err)
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
		return k.(crypto.Signer), nil
	}
	return nil, fmt.Errorf("%w: key type %T is not supported", ErrInvalidCA, key)
}

// CertificatePEM is the CA certificate: what sandboxes trust.
func (c *CA) CertificatePEM() []byte { return bytes.Clone(c.certPEM) }

// Certificate is the parsed CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// permits reports whether the CA's name constraints let it sign for name.
func (c *CA) permits(name string) bool {
	if len(c.cert.PermittedDNSDomains) == 0 {
		return !inDomains(c.cert.ExcludedDNSDomains, name)
	}
	return inDomains(c.cert.PermittedDNSDomains, name) && !inDomains(c.cert.ExcludedDNSDomains, name)
}

// inDomains reports whether name is one of domains or below one (RFC 5280 DNS
// name constraints; a leading '.' means subdomains only).
func inDomains(domains []string, name string) bool {
	for _, d := range domains {
		d = strings.ToLower(d)
		switch {
		case strings.HasPrefix(d, "."):
			if strings.HasSuffix(name, d) {
				return true
			}
		case name == d || strings.HasSuffix(name, "."+d):
			return true
		}
	}
	return false
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n.Add(n, big.NewInt(1))
}
