//go:build integration

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gruntwork-io/terratest/modules/k8s"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/runner"
)

// egressProbeCode runs probes from inside the sandbox and prints one JSON object: for each probe, what
// came back. Kinds: "get" (urllib, through the proxy the environment names, trusting what
// SSL_CERT_FILE names), "connect" (a raw CONNECT to the proxy, to read a refusal's reason), "tcp"
// (a direct connection, bypassing the proxy: only ever to Pods on the local bridge), and "scan"
// (look for needles, known by a 4-character prefix and a SHA-256, in the environment, in every
// /proc/<pid>/environ, cmdline and readable memory, and in every file outside /proc, /sys, /dev).
const egressProbeCode = `import hashlib, json, os, socket, sys, urllib.error, urllib.parse, urllib.request
probes = json.loads(PROBES)
def get(p):
    req = urllib.request.Request(p["url"], headers=p.get("headers", {}))
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return {"status": r.status, "body": r.read(4096).decode(errors="replace")}
    except urllib.error.HTTPError as e:
        return {"status": e.code, "denied": e.headers.get("X-Gkexec-Denied", ""), "body": e.read(4096).decode(errors="replace")}
    except Exception as e:
        return {"error": "%s: %s" % (type(e).__name__, e)}
def connect(p):
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    s = socket.create_connection((proxy.hostname, proxy.port), timeout=30)
    s.sendall(("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (p["target"], p["target"])).encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    head = data.split(b"\r\n\r\n")[0].decode(errors="replace").split("\r\n")
    out = {"status": int(head[0].split()[1]) if head and len(head[0].split()) > 1 else 0, "denied": ""}
    for line in head[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == "x-gkexec-denied":
            out["denied"] = v.strip()
    return out
def tcp(p):
    host, port = p["addr"].rsplit(":", 1)
    outcomes = []
    for _ in range(p.get("attempts", 1)):
        s = socket.socket()
        s.settimeout(p.get("timeout", 3))
        try:
            s.connect((host, int(port)))
            outcomes.append("connected")
        except TimeoutError:
            outcomes.append("timeout")
        except OSError as e:
            outcomes.append("%s(errno %s)" % (type(e).__name__, e.errno))
        finally:
            s.close()
    return {"outcomes": outcomes}
def search(data, needles, where, found):
    for n in needles:
        prefix, i = n["prefix"].encode(), 0
        while True:
            i = data.find(prefix, i)
            if i < 0:
                break
            if hashlib.sha256(data[i:i + n["len"]]).hexdigest() == n["sha256"]:
                found.setdefault(n["name"], []).append(where)
                break
            i += 1
def scan(p):
    needles, found = p["needles"], {}
    search("\n".join("%s=%s" % kv for kv in os.environ.items()).encode(), needles, "env", found)
    for pid in [d for d in os.listdir("/proc") if d.isdigit()]:
        for name in ("environ", "cmdline"):
            try:
                with open("/proc/%s/%s" % (pid, name), "rb") as f:
                    search(f.read(), needles, "/proc/%s/%s" % (pid, name), found)
            except OSError:
                pass
        try:
            with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
                for line in maps:
                    addr, perms = line.split()[:2]
                    if "r" not in perms:
                        continue
                    lo, hi = (int(x, 16) for x in addr.split("-"))
                    if hi - lo > 256 << 20:
                        continue
                    try:
                        mem.seek(lo)
                        search(mem.read(hi - lo), needles, "/proc/%s/mem" % pid, found)
                    except (OSError, ValueError, OverflowError):
                        pass
        except OSError:
            pass
    files = 0
    for root, dirs, names in os.walk("/"):
        if root == "/":
            dirs[:] = [d for d in dirs if d not in ("proc", "sys", "dev")]
        for name in names:
            path = os.path.join(root, name)
            try:
                if not os.path.isfile(path) or os.path.islink(path) or os.path.getsize(path) > 64 << 20:
                    continue
                with open(path, "rb") as f:
                    search(f.read(), needles, path, found)
                files += 1
            except OSError:
                pass
    return {"found": found, "files": files}
out = {}
for name, p in probes.items():
    out[name] = {"get": get, "connect": connect, "tcp": tcp, "scan": scan}[p["kind"]](p)
print(json.dumps(out))
`

type probe map[string]any

type probeResult struct {
	Status   int                 `json:"status"`
	Denied   string              `json:"denied"`
	Body     string              `json:"body"`
	Error    string              `json:"error"`
	Outcomes []string            `json:"outcomes"`
	Found    map[string][]string `json:"found"`
	Files    int                 `json:"files"`
}

// seen is what the internet's server says it was sent.
type seen struct {
	Server          string `json:"server"`
	Host            string `json:"host"`
	TLS             bool   `json:"tls"`
	AuthSHA256      string `json:"auth_sha256"`
	AuthPlaceholder string `json:"auth_placeholder"`
}

func (r probeResult) seen(t *testing.T, name string) seen {
	t.Helper()
	var s seen
	if r.Status != 200 || json.Unmarshal([]byte(r.Body), &s) != nil || s.Server != "internet" {
		t.Errorf("%s: %+v, want 200 from the internet's server", name, r)
	}
	return s
}

func probeRequest(t *testing.T, id string, probes map[string]probe) runner.Request {
	t.Helper()
	b, err := json.Marshal(probes)
	if err != nil {
		t.Fatal(err)
	}
	return runner.Request{Code: strings.Replace(egressProbeCode, "PROBES", pyString(string(b)), 1), ExecutionID: executionID(id), Timeout: 110 * time.Second}
}

func runProbes(t *testing.T, exec func(context.Context, runner.Request) (runner.Result, error), req runner.Request) (map[string]probeResult, runner.Result) {
	t.Helper()
	res, err := exec(context.Background(), req)
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("probes: %v exit %d\nstdout %s\nstderr %s", err, res.ExitCode, res.Stdout, res.Stderr)
	}
	var out map[string]probeResult
	if err := json.Unmarshal(res.Stdout, &out); err != nil {
		t.Fatalf("probes printed %q: %v", res.Stdout, err)
	}
	return out, res
}

func wantDenied(t *testing.T, name string, r probeResult, reason gateway.Reason) {
	t.Helper()
	if r.Status != http.StatusForbidden || r.Denied != string(reason) {
		t.Errorf("%s: %d %q (%s%s), want 403 %s", name, r.Status, r.Denied, r.Error, r.Body, reason)
	}
}

// hasDestination reports whether the execution's egress lists host:port (with reason, for a denial).
func hasDestination(list []runner.EgressDestination, host string, port int, reason gateway.Reason) bool {
	return slices.ContainsFunc(list, func(d runner.EgressDestination) bool {
		return d.Host == host && d.Port == port && d.Reason == reason && d.Count > 0
	})
}

// netpolEnforced: the local cluster's NetworkPolicy enforcer answers on the host's loopback
// (test/localcluster). Without it, a NetworkPolicy is an object nothing applies, and what a direct
// connection from a sandbox reaches says nothing of the policy.
func netpolEnforced() bool {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://127.0.0.1:10265/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// testEgress is the egress stage: a sandbox namespace with the egress gateway (installed from
// manifests/), a stand-in internet on the bridge, and what a sandbox's code can and cannot reach,
// with a secret that the internet receives and the sandbox never holds.
func testEgress(t *testing.T, root, kubeconfig, bin string, admin kubernetes.Interface, adminConfig *rest.Config, adminKubectl *k8s.KubectlOptions) {
	st := standUpEgress(t, root, kubeconfig, bin, admin, adminConfig, adminKubectl)
	tg := st.tg
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway log:\n%s", st.gatewayLogs(admin))
		}
	})
	cold := tg.options()
	cold.WarmPoolReady = -1
	cold.NoWarmPool = true
	r := tg.newRunner(t, cold)
	placeholder := gateway.Placeholder(secretName)
	bearer := map[string]string{"Authorization": "Bearer " + placeholder}
	https := func(host, path string) string { return fmt.Sprintf("https://%s:%d%s", host, internetHTTPS, path) }
	http_ := func(host, path string) string { return fmt.Sprintf("http://%s:%d%s", host, internetHTTP, path) }
	at := func(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }
	enforced := netpolEnforced()

	tg.step(t, "reach_and_refuse", func(t *testing.T) {
		control := randomHex(t, 24) // proves the scan finds what is there
		needle := func(name, v string) map[string]any {
			return map[string]any{"name": name, "prefix": v[:4], "sha256": sha256Hex(v), "len": len(v)}
		}
		req := probeRequest(t, "eg-reach", map[string]probe{
			"allowed_https":    {"kind": "get", "url": https(hostAllowed, "/a")},
			"allowed_http":     {"kind": "get", "url": http_(hostAllowed, "/b")},
			"denied_http":      {"kind": "get", "url": http_(hostDenied, "/")},
			"denied_https":     {"kind": "connect", "target": at(hostDenied, internetHTTPS)},
			"wildcard":         {"kind": "get", "url": https(hostWildcard, "/")},
			"wildcard_apex":    {"kind": "connect", "target": at(hostWildApex, internetHTTPS)},
			"secret_bound":     {"kind": "get", "url": https(hostAPI, "/secret"), "headers": bearer},
			"secret_unbound":   {"kind": "get", "url": https(hostUnbound, "/secret"), "headers": bearer},
			"secret_plaintext": {"kind": "get", "url": http_(hostAPI, "/secret"), "headers": bearer},
			"admin_via_proxy":  {"kind": "get", "url": fmt.Sprintf("http://%s/metrics", at(st.gatewayIP, egress.AdminPort))},
			"admin_connect":    {"kind": "connect", "target": at(st.gatewayIP, egress.AdminPort)},
			"other_pod_http":   {"kind": "get", "url": fmt.Sprintf("http://%s/", at(st.internetIP, internetHTTP))},
			"raw_ip_https":     {"kind": "connect", "target": at(st.internetIP, internetHTTPS)},
			"api_server_ip":    {"kind": "connect", "target": "10.96.0.1:443"},
			"api_server_name":  {"kind": "connect", "target": "kubernetes.default.svc:443"},
			"gateway_direct":   {"kind": "tcp", "addr": at(st.gatewayIP, egress.ProxyPort)},
			"admin_direct":     {"kind": "tcp", "addr": at(st.gatewayIP, egress.AdminPort), "attempts": 2},
			"other_pod_direct": {"kind": "tcp", "addr": at(st.internetIP, internetHTTP), "attempts": 2},
			// Last (the probes run in name order): after the secret was used.
			"zz_scan": {"kind": "scan", "needles": []any{needle("secret", st.secret), needle("control", control)}},
		})
		req.Files = map[string][]byte{"control.txt": []byte(control)}
		got, res := runProbes(t, r.Execute, req)

		if s := got["allowed_https"].seen(t, "allowed_https"); !s.TLS || s.Host != at(hostAllowed, internetHTTPS) {
			t.Errorf("allowed_https: the server saw %+v", s)
		}
		got["allowed_http"].seen(t, "allowed_http")
		got["wildcard"].seen(t, "wildcard")
		wantDenied(t, "denied_http", got["denied_http"], gateway.ReasonNotAllowed)
		wantDenied(t, "denied_https", got["denied_https"], gateway.ReasonNotAllowed)
		wantDenied(t, "wildcard_apex", got["wildcard_apex"], gateway.ReasonNotAllowed)
		// The secret reaches its host, over TLS the gateway intercepted with the namespace's CA.
		if s := got["secret_bound"].seen(t, "secret_bound"); s.AuthSHA256 != sha256Hex(st.secret) || s.AuthPlaceholder != "" {
			t.Errorf("secret_bound: the server got %+v, want the secret's value", s)
		}
		// Not to any other host, nor over plain HTTP to its own.
		for _, name := range []string{"secret_unbound", "secret_plaintext"} {
			if s := got[name].seen(t, name); s.AuthPlaceholder != placeholder || s.AuthSHA256 == sha256Hex(st.secret) {
				t.Errorf("%s: the server got %+v, want the placeholder untouched", name, s)
			}
		}
		for _, name := range []string{"admin_via_proxy", "admin_connect", "other_pod_http", "raw_ip_https", "api_server_ip"} {
			wantDenied(t, name, got[name], gateway.ReasonRawIP)
		}
		wantDenied(t, "api_server_name", got["api_server_name"], gateway.ReasonNotAllowed)
		if o := got["gateway_direct"].Outcomes; len(o) != 1 || o[0] != "connected" {
			t.Errorf("gateway_direct: %v, want the gateway's proxy port reachable", o)
		}
		// The local cluster enforces NetworkPolicy (kube-network-policies): without its enforcer the
		// stage cannot judge what a direct connection reaches, and says so rather than pass.
		if !enforced {
			t.Errorf("the local cluster's NetworkPolicy enforcer does not answer on 127.0.0.1:10265/healthz (see test/localcluster/README.md; `test/localcluster/cluster.sh restart kube-network-policies`): direct connections were not judged (admin %v, other pod %v)",
				got["admin_direct"].Outcomes, got["other_pod_direct"].Outcomes)
		}
		for _, name := range []string{"admin_direct", "other_pod_direct"} {
			for _, o := range got[name].Outcomes {
				if o != "timeout" {
					t.Errorf("%s: %v, want every attempt dropped by the NetworkPolicy", name, got[name].Outcomes)
					break
				}
			}
		}
		scan := got["zz_scan"]
		if where := scan.Found["secret"]; len(where) > 0 {
			t.Errorf("the secret's value is in the sandbox: %v", where)
		}
		if where := scan.Found["control"]; !slices.Contains(where, "/workspace/control.txt") || scan.Files < 1000 {
			t.Errorf("the scan found the control value in %v after %d files: it does not look where it claims", where, scan.Files)
		}

		// What the gateway did, in the Result.
		e := res.Egress
		if e == nil || e.Error != "" {
			t.Fatalf("Result.Egress %+v, want the gateway's counts", e)
		}
		for _, d := range []struct {
			host string
			port int
		}{{hostAllowed, internetHTTPS}, {hostAllowed, internetHTTP}, {hostWildcard, internetHTTPS}, {hostAPI, internetHTTPS}, {hostUnbound, internetHTTPS}} {
			if !hasDestination(e.Allowed, d.host, d.port, "") {
				t.Errorf("Result.Egress.Allowed %+v lacks %s:%d", e.Allowed, d.host, d.port)
			}
		}
		for _, d := range []struct {
			host   string
			port   int
			reason gateway.Reason
		}{
			{hostDenied, internetHTTP, gateway.ReasonNotAllowed}, {hostDenied, internetHTTPS, gateway.ReasonNotAllowed},
			{hostWildApex, internetHTTPS, gateway.ReasonNotAllowed}, {st.gatewayIP, egress.AdminPort, gateway.ReasonRawIP},
			{st.internetIP, internetHTTPS, gateway.ReasonRawIP}, {"10.96.0.1", 443, gateway.ReasonRawIP},
		} {
			if !hasDestination(e.Denied, d.host, d.port, d.reason) {
				t.Errorf("Result.Egress.Denied %+v lacks %s:%d %s", e.Denied, d.host, d.port, d.reason)
			}
		}

		// And in the gateway's own metrics.
		metrics := st.adminGet(t, adminConfig, gateway.PathMetrics)
		for _, want := range []string{`reason="raw-ip"`, `reason="not-allowed"`, `gkexec_gateway_secret_substitutions_total{secret="` + secretName + `"}`} {
			if !strings.Contains(metrics, want) {
				t.Errorf("the gateway's /metrics lacks %s:\n%s", want, metrics)
			}
		}
		if strings.Contains(metrics, st.secret) || strings.Contains(st.gatewayLogs(admin), st.secret) {
			t.Error("the secret's value is in the gateway's metrics or log")
		}
	})

	tg.step(t, "narrowed", func(t *testing.T) {
		req := probeRequest(t, "eg-narrow", map[string]probe{
			"kept":    {"kind": "get", "url": https(hostAllowed, "/")},
			"port":    {"kind": "get", "url": http_(hostAllowed, "/")},
			"host":    {"kind": "connect", "target": at(hostWildcard, internetHTTPS)},
			"widened": {"kind": "get", "url": http_(hostDenied, "/")},
		})
		req.AllowDomains = []string{at(hostAllowed, internetHTTPS), at(hostDenied, internetHTTP)}
		got, res := runProbes(t, r.Execute, req)
		got["kept"].seen(t, "kept")
		wantDenied(t, "port", got["port"], gateway.ReasonNarrowed)
		wantDenied(t, "host", got["host"], gateway.ReasonNarrowed)
		// A narrowing never widens: the namespace does not allow this host.
		wantDenied(t, "widened", got["widened"], gateway.ReasonNotAllowed)
		if e := res.Egress; e == nil || !hasDestination(e.Denied, hostWildcard, internetHTTPS, gateway.ReasonNarrowed) {
			t.Errorf("Result.Egress %+v, want %s narrowed", e, hostWildcard)
		}
	})

	tg.step(t, "warm", func(t *testing.T) {
		warm := tg.options()
		warm.WarmPoolReady = -1
		rw := tg.newRunner(t, warm)
		got, res := runProbes(t, rw.Execute, probeRequest(t, "eg-warm", map[string]probe{
			"allowed": {"kind": "get", "url": https(hostAllowed, "/")},
			"secret":  {"kind": "get", "url": https(hostAPI, "/"), "headers": bearer},
		}))
		if res.Sandbox != runner.SandboxWarm {
			t.Errorf("ran %s, want warm", res.Sandbox)
		}
		got["allowed"].seen(t, "allowed")
		if s := got["secret"].seen(t, "secret"); s.AuthSHA256 != sha256Hex(st.secret) {
			t.Errorf("warm: the server got %+v, want the secret", s)
		}
		if e := res.Egress; e == nil || !hasDestination(e.Allowed, hostAllowed, internetHTTPS, "") {
			t.Errorf("Result.Egress %+v", e)
		}
		tg.waitPoolReady(t, 1)
	})

	tg.step(t, "session", func(t *testing.T) {
		s := openSession(t, r, runner.SessionOptions{ID: executionID("eg-session"), AllowDomains: []string{at(hostAPI, internetHTTPS)}})
		first, res1 := runProbes(t, s.Execute, probeRequest(t, "eg-s1", map[string]probe{"secret": {"kind": "get", "url": https(hostAPI, "/"), "headers": bearer}}))
		if s := first["secret"].seen(t, "secret"); s.AuthSHA256 != sha256Hex(st.secret) {
			t.Errorf("session: the server got %+v", s)
		}
		second, res2 := runProbes(t, s.Execute, probeRequest(t, "eg-s2", map[string]probe{"other": {"kind": "connect", "target": at(hostAllowed, internetHTTPS)}}))
		wantDenied(t, "session other", second["other"], gateway.ReasonNarrowed)
		if e := res1.Egress; e == nil || len(e.Allowed) != 1 || len(e.Denied) != 0 {
			t.Errorf("first execution's egress %+v, want its one request", e)
		}
		if e := res2.Egress; e == nil || len(e.Allowed) != 0 || !hasDestination(e.Denied, hostAllowed, internetHTTPS, gateway.ReasonNarrowed) {
			t.Errorf("second execution's egress %+v, want only its own refusal", e)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})

	// Not a timed test: figures for docs/performance.md, logged.
	tg.step(t, "latency", func(t *testing.T) { st.measureLatency(t, r) })

	tg.step(t, "cli", func(t *testing.T) {
		code := `import urllib.request; print(urllib.request.urlopen("` + https(hostAllowed, "/") + `", timeout=30).status)`
		out := tg.gkexec(t, 3*time.Minute, nil, "run", "--json", "--no-warm-pool", "--allow-domain", at(hostAllowed, internetHTTPS), "-c", code)
		var res runner.Result
		if out.exitCode != 0 || json.Unmarshal(out.stdout, &res) != nil || string(res.Stdout) != "200\n" {
			t.Fatalf("gkexec run --allow-domain: %s", out)
		}
		if res.Egress == nil || !hasDestination(res.Egress.Allowed, hostAllowed, internetHTTPS, "") {
			t.Errorf("--json egress %+v", res.Egress)
		}
	})
}

// adminGet reads the gateway's admin API through a port-forward, as admin: the test's own
// connection is to its loopback.
func (st *egressStack) adminGet(t *testing.T, cfg *rest.Config, path string) string {
	t.Helper()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(fmt.Sprintf("%s/api/v1/namespaces/%s/pods/%s/portforward", strings.TrimSuffix(cfg.Host, "/"), st.gatewayNS, st.gatewayPod))
	if err != nil {
		t.Fatal(err)
	}
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	defer close(stop)
	pf, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:" + strconv.Itoa(egress.AdminPort)}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- pf.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-errc:
		t.Fatalf("port-forward to the gateway: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("port-forward to the gateway: not ready in a minute")
	}
	ports, err := pf.GetPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("port-forward ports %v: %v", ports, err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(fmt.Sprintf("http://127.0.0.1:%d%s", ports[0].Local, path))
	if err != nil {
		t.Fatalf("GET %s on the gateway's admin API: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// latencyCode times requests from inside a sandbox, straight to the internet's server and through
// the gateway, HTTP and HTTPS, on a kept-alive connection and on a new one each time, and prints
// the medians and 99th percentiles. The server is Python's http.server: Nagle's algorithm on, the
// answer in two writes (what the gateway's immediate ACKs are for, gateway/quickack.go).
const latencyCode = `import http.client, json, os, ssl, time
def timed(conn, path, n, fresh=False):
    out = []
    for _ in range(n + 10):
        if fresh:
            conn.close()  # the next request connects (and through the gateway, CONNECTs) again
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        assert r.status == 200, r.status
        out.append(time.perf_counter() - t)
    out = sorted(out[10:])
    return {"p50_ms": out[n // 2] * 1000, "p99_ms": out[int(n * 0.99)] * 1000}
ip, gw, host = INTERNET, GATEWAY, "allowed.example.test"
ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
direct_tls = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
direct_tls.check_hostname = False  # the address, not the name: the chain is still verified
def tunnel():
    c = http.client.HTTPSConnection(gw, 3128, timeout=30, context=ctx)
    c.set_tunnel(host, 8443)
    return c
res = {}
for mode, n, fresh in (("", 300, False), ("new_", 100, True)):
    res[mode + "http_direct"] = timed(http.client.HTTPConnection(ip, 8080, timeout=30), "/bench", n, fresh)
    res[mode + "http_gateway"] = timed(http.client.HTTPConnection(gw, 3128, timeout=30), "http://%s:8080/bench" % host, n, fresh)
    res[mode + "https_direct"] = timed(http.client.HTTPSConnection(ip, 8443, timeout=30, context=direct_tls), "/bench", n, fresh)
    res[mode + "https_gateway"] = timed(tunnel(), "/bench", n, fresh)
print(json.dumps(res))
`

// measureLatency lets the sandboxes reach the internet's server directly for a moment (a second
// NetworkPolicy, removed after), and logs what the gateway adds to a request from a sandbox.
func (st *egressStack) measureLatency(t *testing.T, r *runner.Runner) {
	ctx := context.Background()
	np := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "e2e-direct-to-internet"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{runner.LabelManagedBy: runner.ManagedByValue}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{To: []networkingv1.NetworkPolicyPeer{{
				IPBlock: &networkingv1.IPBlock{CIDR: st.internetIP + "/32"}}}}},
		},
	}
	if _, err := st.tg.admin.NetworkingV1().NetworkPolicies(st.sandboxNS).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = st.tg.admin.NetworkingV1().NetworkPolicies(st.sandboxNS).Delete(ctx, np.Name, metav1.DeleteOptions{})
	}()
	code := strings.NewReplacer("INTERNET", pyString(st.internetIP), "GATEWAY", pyString(st.gatewayIP)).Replace(latencyCode)
	res, err := r.Execute(ctx, runner.Request{Code: code, ExecutionID: executionID("eg-latency"), Timeout: 110 * time.Second})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("latency: %v exit %d\n%s%s", err, res.ExitCode, res.Stdout, res.Stderr)
	}
	var got map[string]struct {
		P50 float64 `json:"p50_ms"`
		P99 float64 `json:"p99_ms"`
	}
	if err := json.Unmarshal(res.Stdout, &got); err != nil {
		t.Fatalf("latency printed %q: %v", res.Stdout, err)
	}
	for _, mode := range []struct{ key, name string }{{"", "keep-alive"}, {"new_", "new connection each time"}} {
		for _, proto := range []string{"http", "https"} {
			d, g := got[mode.key+proto+"_direct"], got[mode.key+proto+"_gateway"]
			t.Logf("egress latency from a sandbox, %s, %s: direct p50 %.2f ms p99 %.2f ms; through the gateway p50 %.2f ms p99 %.2f ms; added p50 %.2f ms",
				proto, mode.name, d.P50, d.P99, g.P50, g.P99, g.P50-d.P50)
		}
	}
}
