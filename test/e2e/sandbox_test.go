//go:build integration || gke

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gkexec/gkexec/runner"
)

// probeCode looks at the sandbox from inside and prints what it sees as one JSON document. It
// only reads local state: it never opens a connection to anything.
const probeCode = `import ctypes, errno, json, os, socket, subprocess

facts = {}
facts["proc_version"] = open("/proc/version").read().strip()
try:
    facts["dmesg"] = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=10).stdout
except Exception as e:
    # No dmesg binary: read the kernel log with syslog(2) (SYSLOG_ACTION_READ_ALL).
    buf = ctypes.create_string_buffer(1 << 16)
    n = ctypes.CDLL(None, use_errno=True).klogctl(3, buf, len(buf))
    facts["dmesg"] = buf.raw[:max(n, 0)].decode(errors="replace")
facts["uid"], facts["euid"], facts["gid"], facts["egid"] = os.getuid(), os.geteuid(), os.getgid(), os.getegid()
facts["groups"] = os.getgroups()

def try_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        os.unlink(path)
        return "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))

facts["write"] = {p: try_write(p) for p in ["/var/tmp/gkexec-probe", "/etc/gkexec-probe", "/gkexec-probe", "/gkexec/code/probe", "/tmp/probe", "/workspace/probe"]}
facts["var_tmp_mode"] = oct(os.stat("/var/tmp").st_mode & 0o7777)
facts["root_mount_options"] = [line.split()[3] for line in open("/proc/self/mounts") if line.split()[1] == "/"]

status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
facts["caps"] = {k: status[k].strip() for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] if k in status}
facts["no_new_privs"] = status.get("NoNewPrivs", "").strip()

# Anything that looks like a Kubernetes credential, anywhere in the filesystem.
facts["var_run_secrets_exists"] = os.path.exists("/var/run/secrets") or os.path.exists("/run/secrets")
hits, scanned = [], 0
# Built at run time so that this program's own source does not match.
jwt, pem = b"eyJhbGci" + b"Oi", b"BEGIN " + b"CERTIFICATE"
for root, dirs, files in os.walk("/", onerror=lambda e: None):
    if root == "/":
        dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
    for name in files:
        path = os.path.join(root, name)
        if "serviceaccount" in path or name in ("token", "ca.crt", "namespace") and "secrets" in path:
            hits.append(path)
        try:
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > (1 << 20):
                continue
            with open(path, "rb") as f:
                data = f.read()
            scanned += 1
            if jwt in data or pem in data and not path.startswith(("/etc/ssl/", "/usr/share/ca-certificates/", "/usr/lib/python3")):
                hits.append(path)
        except OSError:
            pass
facts["credential_hits"], facts["files_scanned"] = hits, scanned
facts["mounts"] = open("/proc/self/mounts").read().splitlines()
facts["env_kubernetes"] = sorted(k for k in os.environ if k.startswith("KUBERNETES_"))

facts["interfaces"] = sorted(name for _, name in socket.if_nameindex())
routes = open("/proc/net/route").read().splitlines()[1:]
facts["routes"] = [r.split() for r in routes if r.strip()]
try:
    facts["routes6"] = [r.split() for r in open("/proc/net/ipv6_route").read().splitlines() if r.strip()]
except OSError:
    facts["routes6"] = []
print(json.dumps(facts))
`

// sandboxFacts is what probeCode reports.
type sandboxFacts struct {
	ProcVersion         string            `json:"proc_version"`
	Dmesg               string            `json:"dmesg"`
	UID                 int               `json:"uid"`
	EUID                int               `json:"euid"`
	GID                 int               `json:"gid"`
	EGID                int               `json:"egid"`
	Groups              []int             `json:"groups"`
	Write               map[string]string `json:"write"`
	VarTmpMode          string            `json:"var_tmp_mode"`
	RootMountOptions    []string          `json:"root_mount_options"`
	Caps                map[string]string `json:"caps"`
	NoNewPrivs          string            `json:"no_new_privs"`
	VarRunSecretsExists bool              `json:"var_run_secrets_exists"`
	CredentialHits      []string          `json:"credential_hits"`
	FilesScanned        int               `json:"files_scanned"`
	Mounts              []string          `json:"mounts"`
	EnvKubernetes       []string          `json:"env_kubernetes"`
	Interfaces          []string          `json:"interfaces"`
	Routes              [][]string        `json:"routes"`
	Routes6             [][]string        `json:"routes6"`
}

// testSandbox is stage 4: the code, looking around from inside, finds itself in a gVisor sandbox
// with no identity, no privileges, no credentials and no way out.
func testSandbox(t *testing.T, tg *target) {
	r := tg.newRunner(t, tg.options())
	id := executionID("probe")
	res, err := r.Execute(context.Background(), runner.Request{Code: probeCode, ExecutionID: id})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probe: err %v, exit %d, stderr %s", err, res.ExitCode, res.Stderr)
	}
	var f sandboxFacts
	if err := json.Unmarshal(res.Stdout, &f); err != nil {
		t.Fatalf("probe output: %v\n%s", err, res.Stdout)
	}
	t.Logf("kernel: %s; interfaces %v; routes %v; %d files scanned", f.ProcVersion, f.Interfaces, f.Routes, f.FilesScanned)

	t.Run("gvisor_kernel", func(t *testing.T) {
		if !strings.Contains(f.Dmesg, "gVisor") {
			t.Errorf("dmesg does not come from gVisor:\n%s", f.Dmesg)
		}
		// gVisor reports a made-up Linux version; on the local cluster the node is this machine,
		// whose kernel must not show through.
		if !tg.gke {
			if host := hostKernelRelease(t); strings.Contains(f.ProcVersion, host) {
				t.Errorf("/proc/version shows the host kernel %s: %s", host, f.ProcVersion)
			}
		}
	})

	t.Run("non_root", func(t *testing.T) {
		want := int(runner.DefaultRunAsUser)
		if f.UID != want || f.EUID != want || f.GID != want || f.EGID != want {
			t.Errorf("uid %d euid %d gid %d egid %d, want all %d", f.UID, f.EUID, f.GID, f.EGID, want)
		}
		for _, g := range f.Groups {
			if g == 0 {
				t.Errorf("supplementary groups %v include root", f.Groups)
			}
		}
	})

	t.Run("read_only_root_filesystem", func(t *testing.T) {
		if len(f.RootMountOptions) != 1 || !slices.Contains(strings.Split(f.RootMountOptions[0], ","), "ro") {
			t.Errorf("/ is mounted %v, want ro", f.RootMountOptions)
		}
		// /var/tmp is world-writable and on the root filesystem: only a read-only mount stops the write.
		if got := f.Write["/var/tmp/gkexec-probe"]; got != "EROFS" {
			t.Errorf("writing /var/tmp (mode %s, on the root filesystem): %s, want EROFS", f.VarTmpMode, got)
		}
		// Elsewhere on / the non-root user is refused first (EACCES) or the filesystem (EROFS).
		for _, p := range []string{"/etc/gkexec-probe", "/gkexec-probe", "/gkexec/code/probe"} {
			if got := f.Write[p]; got != "EROFS" && got != "EACCES" {
				t.Errorf("writing %s: %s, want EROFS or EACCES", p, got)
			}
		}
		for _, p := range []string{"/tmp/probe", "/workspace/probe"} {
			if got := f.Write[p]; got != "ok" {
				t.Errorf("writing %s: %s, want ok (scratch space)", p, got)
			}
		}
	})

	t.Run("tmp_size_limited", func(t *testing.T) { testScratchLimit(t, tg, r) })

	t.Run("no_service_account_token", func(t *testing.T) {
		if f.VarRunSecretsExists {
			t.Error("/var/run/secrets exists in the sandbox")
		}
		if len(f.CredentialHits) > 0 {
			t.Errorf("credential-looking files in the sandbox: %v", f.CredentialHits)
		}
		for _, m := range f.Mounts {
			if strings.Contains(m, "serviceaccount") || strings.Contains(m, "secrets") {
				t.Errorf("mount %q", m)
			}
		}
		if f.FilesScanned < 100 {
			t.Errorf("only %d files scanned: the search did not cover the filesystem", f.FilesScanned)
		}
	})

	t.Run("no_capabilities", func(t *testing.T) {
		for _, k := range []string{"CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"} {
			v, ok := f.Caps[k]
			if k == "CapAmb" && !ok {
				continue
			}
			if strings.Trim(v, "0") != "" || v == "" {
				t.Errorf("%s = %q, want all zero", k, v)
			}
		}
		if f.NoNewPrivs != "1" {
			t.Errorf("NoNewPrivs = %q, want 1 (allowPrivilegeEscalation: false)", f.NoNewPrivs)
		}
	})

	t.Run("no_route_out", func(t *testing.T) {
		if tg.gke {
			// GKE Pods have a default route; there the default-deny NetworkPolicy (Dataplane V2)
			// is what keeps the sandbox in, so try the one address every Pod knows.
			testNoAPIServerFromSandbox(t, tg, r)
			return
		}
		var pod []string
		for _, name := range f.Interfaces {
			if name != "lo" {
				pod = append(pod, name)
			}
		}
		if len(pod) != 1 || len(f.Interfaces) != 2 {
			t.Errorf("interfaces %v, want lo and one pod interface", f.Interfaces)
		}
		for _, r := range f.Routes {
			// Iface Destination Gateway ...: a default route has destination 00000000.
			if len(r) > 2 && r[1] == "00000000" {
				t.Errorf("default route in /proc/net/route: %v", r)
			}
		}
		for _, r := range f.Routes6 {
			if len(r) > 1 && r[0] == strings.Repeat("0", 32) && r[1] == "00" && (len(r) < 10 || r[9] != "lo") {
				t.Errorf("IPv6 default route: %v", r)
			}
		}
	})

	if tg.gke {
		t.Run("no_metadata_server", func(t *testing.T) { testNoMetadataServer(t, r) })
	}
}

// testScratchLimit fills /tmp past the scratch size (ScratchSizeLimit, 128Mi by default) and
// expects the write to fail with ENOSPC near the limit, not to succeed or kill the sandbox.
func testScratchLimit(t *testing.T, tg *target, r *runner.Runner) {
	code := `import errno, os
written, err = 0, "none"
chunk = b"\0" * (1 << 20)
try:
    with open("/tmp/fill", "wb") as f:
        while written < (400 << 20):
            f.write(chunk)
            f.flush()
            written += len(chunk)
except OSError as e:
    err = errno.errorcode.get(e.errno, str(e.errno))
print(written >> 20, err)
`
	id := executionID("scratch")
	res, err := r.Execute(context.Background(), runner.Request{Code: code, ExecutionID: id})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	t.Logf("filling /tmp: exit %d, oom %v, stdout %q, stderr %s", res.ExitCode, res.OOMKilled, res.Stdout, quoteShort(res.Stderr))
	var mib int
	var errName string
	if _, err := fmt.Sscan(string(res.Stdout), &mib, &errName); err != nil {
		t.Fatalf("filling /tmp did not report (exit %d, oom %v): %q", res.ExitCode, res.OOMKilled, res.Stdout)
	}
	scratch := resource.MustParse(r.Options().ScratchSizeLimit)
	limit := int(scratch.Value() >> 20)
	if errName != "ENOSPC" && errName != "EFBIG" && errName != "EDQUOT" {
		t.Errorf("wrote %d MiB to /tmp (scratch size %d MiB) and the last write failed with %s; want ENOSPC at the limit", mib, limit, errName)
	}
	if mib > limit {
		t.Errorf("wrote %d MiB to /tmp, more than the scratch size %d MiB", mib, limit)
	}
}

func hostKernelRelease(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// connectProbe tries one TCP connection to a host and port, formatted in with %q and %d.
const connectProbe = `import socket, sys
host, port = %q, %d
try:
    socket.create_connection((host, port), timeout=5).close()
    print("reached")
except OSError as e:
    print("blocked", type(e).__name__, e)
`

// testNoAPIServerFromSandbox (GKE only): the sandbox cannot open a connection to the cluster's
// own API server Service, which every Pod network can route to.
func testNoAPIServerFromSandbox(t *testing.T, tg *target, r *runner.Runner) {
	svc, err := tg.admin.CoreV1().Services("default").Get(context.Background(), "kubernetes", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Execute(context.Background(), runner.Request{Code: fmt.Sprintf(connectProbe, svc.Spec.ClusterIP, 443), ExecutionID: executionID("egress")})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if out := string(res.Stdout); !strings.HasPrefix(out, "blocked") {
		t.Errorf("the sandbox opened a connection to the API server at %s:443: %s", svc.Spec.ClusterIP, out)
	}
}

// metadataProbe asks the GCE metadata server for the node's token, the way a stolen-credential
// attack would. Only the GKE tier runs it (the local cluster has no metadata server, and the local
// suite never connects to anything outside the pod).
const metadataProbe = `import urllib.request
req = urllib.request.Request("http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token",
                             headers={"Metadata-Flavor": "Google"})
try:
    with urllib.request.urlopen(req, timeout=5) as r:
        print("reached", r.status, r.read(200))
except Exception as e:
    print("blocked", type(e).__name__, e)
`

// testNoMetadataServer: the sandbox cannot reach the metadata server (GKE Sandbox and the
// default-deny NetworkPolicy both stand in the way).
func testNoMetadataServer(t *testing.T, r *runner.Runner) {
	res, err := r.Execute(context.Background(), runner.Request{Code: metadataProbe, ExecutionID: executionID("metadata")})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if out := string(res.Stdout); !strings.HasPrefix(out, "blocked") {
		t.Errorf("the sandbox reached the metadata server: %s", out)
	}
}
