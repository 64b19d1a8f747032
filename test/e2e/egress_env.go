//go:build integration

package e2e

// The egress stage's surroundings on the local cluster: the stand-in internet (a server Pod and
// its PKI), the relay that lets the gateway Pod reach the API server, and the gkexec image.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/gkexec/gkexec/runner"
)

// internetServer answers every request with what it saw, as JSON, on HTTP and HTTPS: the Host,
// whether TLS, and of the Authorization header's token only its SHA-256, or the token itself when
// it is a placeholder (never a credential: the server must not hand one back).
const internetServer = `import hashlib, http.server, json, ssl, threading
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as most servers; the answer still goes in two writes
    def do_GET(self):
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        doc = {"server": "internet", "host": self.headers.get("Host", ""), "path": self.path,
               "tls": isinstance(self.connection, ssl.SSLSocket),
               "auth_sha256": hashlib.sha256(token.encode()).hexdigest() if token else "",
               "auth_placeholder": token if token.startswith("gkexec-secret:") else ""}
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
plain = http.server.ThreadingHTTPServer(("0.0.0.0", 8080), H)
tls = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain("/pki/server.crt", "/pki/server.key")
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
threading.Thread(target=plain.serve_forever, daemon=True).start()
print("serving", flush=True)
tls.serve_forever()
`

// apiRelay runs beside the gateway on the local cluster only: the pod network reaches nothing but
// Pods, so in-cluster clients cannot reach the API server (test/localcluster); this forwards the
// Pod's 127.0.0.1:6443 to a Unix socket on the host that the test forwards to the API server on
// the host's loopback. On GKE the gateway uses the kubernetes Service as any Pod does.
const apiRelay = `import socket, threading
def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
srv = socket.create_server(("127.0.0.1", 6443))
while True:
    c, _ = srv.accept()
    u = socket.socket(socket.AF_UNIX)
    u.connect("/relay/api.sock")
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
`

// pki is a CA and a server certificate it signed for the internet's names.
type pki struct{ caPEM, certPEM, keyPEM []byte }

func newInternetPKI(t *testing.T) pki {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e internet CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hostAllowed},
		DNSNames:  []string{hostAllowed, "*.wild.example.test", hostWildApex, hostAPI, hostUnbound, hostDenied},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	return pki{
		caPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// startAPIRelay listens on a Unix socket in a fresh host directory and forwards each connection
// to the API server on the host's loopback; it returns the directory. Loopback only.
func startAPIRelay(t *testing.T, adminConfig *rest.Config) string {
	t.Helper()
	u, err := url.Parse(adminConfig.Host)
	if err != nil || !net.ParseIP(u.Hostname()).IsLoopback() {
		t.Fatalf("the API server is at %q; the relay forwards to a loopback address only", adminConfig.Host)
	}
	dir, err := os.MkdirTemp("", "gkexec-e2e-relay-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(sock, 0o666) // the relay container runs as a non-root user
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait(); os.RemoveAll(dir) })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", u.Host, 10*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
				go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return dir
}

// startInternet runs the internet's server Pod under gVisor and returns its IP once it serves.
func startInternet(t *testing.T, admin kubernetes.Interface, ns string, p pki) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "internet"},
		Data: map[string]string{"server.py": internetServer, "server.crt": string(p.certPEM), "server.key": string(p.keyPEM)}}
	if err := createInQuota(func() error {
		_, err := admin.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "internet", Labels: map[string]string{"app": "e2e-internet"}},
		Spec: corev1.PodSpec{
			RuntimeClassName:             ptr.To(runner.DefaultRuntimeClassName),
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65534), RunAsGroup: ptr.To[int64](65534),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "server", Image: runner.DefaultImage, ImagePullPolicy: corev1.PullNever,
				Command:      []string{"python3", "/pki/server.py"},
				VolumeMounts: []corev1.VolumeMount{{Name: "pki", MountPath: "/pki", ReadOnly: true}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}},
			}},
			Volumes: []corev1.Volume{{Name: "pki", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "internet"}, DefaultMode: ptr.To[int32](0o444)}}}},
		},
	}
	if err := createInQuota(func() error {
		_, err := admin.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var ip string
	err := wait.PollUntilContextCancel(ctx, 500*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := admin.CoreV1().Pods(ns).Get(ctx, "internet", metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
			return false, nil
		}
		ip = p.Status.PodIP
		logs, err := admin.CoreV1().Pods(ns).GetLogs("internet", &corev1.PodLogOptions{}).DoRaw(ctx)
		return err == nil && strings.Contains(string(logs), "serving"), nil
	})
	if err != nil {
		t.Fatalf("the internet's server Pod did not serve: %v", err)
	}
	return ip
}

// buildGkexecImage builds the gkexec image (test/images/build.sh) and imports it into the local
// cluster.
func buildGkexecImage(t *testing.T, root string) map[string]string {
	t.Helper()
	cmd := exec.Command("test/images/build.sh", "--import")
	cmd.Dir = root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("test/images/build.sh --import: %v\n%s", err, stderr.String())
	}
	images := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		ref, _, _ := strings.Cut(line, " ")
		repo, _, _ := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
		images[repo] = ref
	}
	if images["gkexec"] == "" {
		t.Fatalf("build.sh printed %q, want the gkexec image", out)
	}
	return images
}
