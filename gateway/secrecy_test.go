package gateway

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// What the gateway says when the CA's key or a secret is wrong names the file and the
// problem, never the material: errors end up in logs, events and CI output.
func TestErrorsHoldNoKeyNorSecret(t *testing.T) {
	t.Parallel()
	now := time.Now()
	certPEM, keyPEM, err := GenerateCA(CAOptions{}, now)
	must(t, err)
	block, _ := pem.Decode(keyPEM)
	der := block.Bytes
	leaks := func(msg string, material []byte) bool {
		for _, enc := range []string{string(material), hex.EncodeToString(material), base64.StdEncoding.EncodeToString(material)} {
			for i := 0; i+12 <= len(enc); i += 4 { // any 12-character run of it
				if strings.Contains(msg, enc[i:i+12]) {
					return true
				}
			}
		}
		return false
	}
	for name, key := range map[string][]byte{
		"truncated key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der[:len(der)/2]}),
		"key as RSA":     pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: der}),
		"corrupted key":  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: append([]byte{0x30, 0x03}, der[2:]...)}),
		"unknown header": pem.EncodeToMemory(&pem.Block{Type: "SECRET KEY", Bytes: der}),
	} {
		_, err := LoadCA(certPEM, key, now)
		if err == nil {
			t.Fatalf("%s: loaded", name)
		}
		if leaks(err.Error(), der) {
			t.Errorf("%s: the error holds key material: %v", name, err)
		}
	}

	dir := t.TempDir()
	const value = "zz-0123456789-secret-with\nline"
	must(t, os.WriteFile(filepath.Join(dir, "api-key"), []byte(value), 0o600))
	must(t, os.WriteFile(filepath.Join(dir, "short"), []byte("zq7&"), 0o600))
	_, err = LoadSecretsDir(dir)
	if err == nil {
		t.Fatal("bad secrets loaded")
	}
	if strings.Contains(err.Error(), "0123456789") || strings.Contains(err.Error(), "zq7&") {
		t.Errorf("the error holds a secret value: %v", err)
	}
	_, err = New(Options{Allow: []Rule{{Host: "api.test"}}, Directory: &StaticDirectory{},
		Secrets:      []SecretBinding{{Name: "k", Hosts: []string{"api.test", "elsewhere.test"}}},
		SecretValues: StaticSecrets{"k": "sh0rt-v"}})
	if err == nil || strings.Contains(err.Error(), "sh0rt-v") {
		t.Errorf("binding errors: %v; want them refused without the value", err)
	}
}
