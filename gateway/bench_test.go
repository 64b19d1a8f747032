package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The gateway's cost on loopback (docs/performance.md, "Egress gateway"): each request measured
// with the gateway and without it, the same client, server and connection reuse; the difference
// of the medians is what the gateway adds. Run with
//
//	go test -run '^$' -bench . -benchtime 2000x ./gateway/
//
// Reported: p50-us and p99-us per request (ns/op is the mean, tail included).

func BenchmarkRequest(b *testing.B) {
	h := newHarness(b, harnessOptions{})
	// The clients ACK what they read at once, as a sandbox's netstack (gVisor) does; a Linux
	// client's delayed ACK would stall a Nagle-on server by itself (the nagle-server cases).
	quickAckDial := func(d *net.Dialer) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return withQuickAck(c), nil
		}
	}
	tlsDirect := func(keepAlive bool) *http.Client {
		dial := quickAckDial(&net.Dialer{})
		return &http.Client{Transport: &http.Transport{
			// Every name is the test upstream on loopback, as the gateway's hosts map says.
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dial(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
			TLSClientConfig: &tls.Config{RootCAs: h.roots}, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1,
		}}
	}
	proxied := func(keepAlive bool) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: addrWide.AsSlice()}}
		return &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: h.proxy}), DialContext: quickAckDial(d),
			TLSClientConfig: &tls.Config{RootCAs: h.roots}, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 1,
		}}
	}
	for _, c := range []struct {
		name   string
		client *http.Client
		url    string
	}{
		// Plain HTTP on a kept-alive connection: the gateway reads, judges and forwards each request.
		{"http/direct", tlsDirect(true), h.url("http", "allowed.test") + "/bench"},
		{"http/gateway", proxied(true), h.url("http", "allowed.test") + "/bench"},
		// HTTPS on a new connection each time: TCP, CONNECT (judged, dialled, ClientHello checked)
		// and the TLS handshake with the destination through the tunnel.
		{"https-new-connection/direct", tlsDirect(false), h.url("https", "allowed.test") + "/bench"},
		{"https-new-connection/gateway", proxied(false), h.url("https", "allowed.test") + "/bench"},
		// HTTPS in a kept-alive tunnel: the gateway only copies bytes.
		{"https-keep-alive/direct", tlsDirect(true), h.url("https", "allowed.test") + "/bench"},
		{"https-keep-alive/gateway", proxied(true), h.url("https", "allowed.test") + "/bench"},
		// HTTPS in a kept-alive tunnel to a server with Nagle's algorithm on that writes its
		// answer in two pieces (Python's http.server does): the second waits for the ACK of the
		// first, which the gateway must not delay (quickack.go).
		{"https-keep-alive-nagle-server/direct", tlsDirect(true), h.url("https", "allowed.test") + "/bench-nagle"},
		{"https-keep-alive-nagle-server/gateway", proxied(true), h.url("https", "allowed.test") + "/bench-nagle"},
		// HTTPS to a host secrets are bound to: intercepted, each request read, judged, given the
		// secret and sent on over the gateway's own TLS connection; the response scrubbed.
		{"https-intercepted-keep-alive/gateway", proxied(true), h.url("https", "api.test") + "/bench"},
	} {
		b.Run(c.name, func(b *testing.B) {
			header := http.Header{"Authorization": {"Bearer " + Placeholder(secretName)}}
			do := func() {
				req, _ := http.NewRequest(http.MethodGet, c.url, nil)
				req.Header = header.Clone()
				resp, err := c.client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", c.url, resp.StatusCode)
				}
			}
			do() // warm: a kept-alive connection, a cached leaf certificate
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				do()
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			c.client.CloseIdleConnections() // else the gateway's shutdown waits for its tunnels
			reportPercentiles(b, lat)
		})
	}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))]) / float64(time.Microsecond) }
	b.ReportMetric(at(0.5), "p50-us")
	b.ReportMetric(at(0.99), "p99-us")
}

// envBenchChild makes the test binary a gateway process of its own (TestMain), so that its memory
// is measured apart from the clients and servers of the benchmark.
const envBenchChild = "GKEXEC_GATEWAY_BENCH_CHILD"

func TestMain(m *testing.M) {
	if port := os.Getenv(envBenchChild); port != "" {
		os.Exit(benchChild(port))
	}
	os.Exit(m.Run())
}

// benchChild serves a gateway that lets 127.0.0.2 reach bench.test (127.0.0.1:port), prints its
// address and serves until its stdin closes.
func benchChild(portText string) int {
	port, _ := strconv.Atoi(portText)
	dir, _ := NewStaticDirectory([]Sandbox{{ID: "bench", Addr: addrWide}})
	gw, err := New(Options{
		Allow:     []Rule{{Host: "bench.test", Ports: []int{port}, AllowPrivate: true}},
		Directory: dir, Resolver: HostsResolver{"bench.test": {netip.MustParseAddr("127.0.0.1")}},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(l.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	if err := gw.Serve(ctx, l, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// BenchmarkMemory100Connections: the gateway's resident memory with 100 sandboxes' connections
// open at once, each an HTTPS tunnel with its TLS session established and idle, measured on a
// gateway process of its own (VmRSS), against the same process idle.
func BenchmarkMemory100Connections(b *testing.B) {
	const conns = 100
	h := newHarness(b, harnessOptions{})
	for range b.N {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envBenchChild+"="+strconv.Itoa(h.tlsServer.port))
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		addr, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		addr = strings.TrimSpace(addr)
		idle := rssOf(b, cmd.Process.Pid)
		var open []net.Conn
		for range conns {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: addrWide.AsSlice()}}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			target := net.JoinHostPort("bench.test", strconv.Itoa(h.tlsServer.port))
			fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Fatalf("CONNECT: %v %v", resp, err)
			}
			tc := tls.Client(&bufferedConn{Conn: c, r: br}, &tls.Config{ServerName: "bench.test", RootCAs: h.roots})
			if err := tc.Handshake(); err != nil {
				b.Fatal(err)
			}
			open = append(open, tc)
		}
		time.Sleep(200 * time.Millisecond) // let the gateway's goroutines settle
		busy := rssOf(b, cmd.Process.Pid)
		b.ReportMetric(float64(idle)/(1<<20), "idle-MiB")
		b.ReportMetric(float64(busy)/(1<<20), "100conns-MiB")
		b.ReportMetric(float64(busy-idle)/conns/1024, "KiB/conn")
		for _, c := range open {
			c.Close()
		}
		stdin.Close()
		_ = cmd.Wait()
	}
}

// rssOf is a process's resident set size, from /proc.
func rssOf(b *testing.B, pid int) int64 {
	b.Helper()
	s, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(s), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024
		}
	}
	b.Fatal("no VmRSS")
	return 0
}
