package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport"

	"github.com/gkexec/gkexec/internal/wire"
	"github.com/gkexec/gkexec/runner"
)

// AttachProfile is where the time of opening an attach stream to a waiting sandbox goes, each
// step measured apart (the runner's attach phase is all of them at once):
type AttachProfile struct {
	Pod string `json:"pod"`
	// Build: the two executors the runner builds per attach (WebSocket and SPDY fallback).
	Build Series `json:"build"`
	// Connect: the TCP connection to the API server; TLS: its handshake.
	Connect Series `json:"connect"`
	TLS     Series `json:"tls"`
	// Upgrade: the attach request to its 101 answer: the API server authorizes it, dials the
	// kubelet, which has the runtime's streaming server attach to the container's stdio.
	Upgrade Series `json:"upgrade"`
	// FirstPing: the first ping through the new stream and back (the runner's check that it
	// works); Ping: a ping over a stream already open (what a held stream costs).
	FirstPing Series `json:"first_ping"`
	Ping      Series `json:"ping"`
	// Get: a GET of the Pod on a kept-alive connection, an API round trip without the upgrade.
	Get Series `json:"get"`
}

// attachProtocol is the WebSocket subprotocol of a v5 attach: each message starts with its
// channel (0 stdin, 1 stdout), and 255 closes one.
const attachProtocol = "v5.channel.k8s.io"

// ProfileAttach opens n attach streams to pod (an idle pool Pod) one after another, and measures
// each step; it never claims the Pod nor sends it a request, only pings, which change nothing.
// It speaks the WebSocket attach protocol itself, as client-go's executor does, to time the steps
// apart.
func ProfileAttach(ctx context.Context, cfg *rest.Config, namespace, pod string, n int) (*AttachProfile, error) {
	if n <= 0 {
		return nil, fmt.Errorf("%w: attaches to profile must be positive", runner.ErrInvalidOptions)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	u := client.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name(pod).SubResource("attach").
		VersionedParams(&corev1.PodAttachOptions{Container: "sandbox", Stdin: true, Stdout: true}, scheme.ParameterCodec).URL() // the one container of a sandbox Pod
	tlsConfig, err := rest.TLSConfigFor(cfg)
	if err != nil {
		return nil, err
	}
	header, err := authHeader(cfg)
	if err != nil {
		return nil, err
	}
	var build, connect, handshake, upgrade, firstPing, ping, get []time.Duration
	for range n {
		t0 := time.Now()
		if _, err := remotecommand.NewWebSocketExecutor(cfg, "GET", u.String()); err != nil {
			return nil, err
		}
		if _, err := remotecommand.NewSPDYExecutor(cfg, "POST", u); err != nil {
			return nil, err
		}
		build = append(build, time.Since(t0))

		var tcpDone, tlsDone time.Time
		dialer := websocket.Dialer{
			Subprotocols:    []string{attachProtocol},
			TLSClientConfig: tlsConfig,
			NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				tcpDone = time.Now()
				return c, err
			},
			NetDialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if err != nil {
					return nil, err
				}
				tcpDone = time.Now()
				conf := tlsConfig.Clone()
				if conf == nil {
					conf = &tls.Config{}
				}
				if conf.ServerName == "" {
					conf.ServerName, _, _ = net.SplitHostPort(addr)
				}
				tc := tls.Client(c, conf)
				if err := tc.HandshakeContext(ctx); err != nil {
					_ = c.Close()
					return nil, err
				}
				tlsDone = time.Now()
				return tc, nil
			},
		}
		wsURL := *u
		wsURL.Scheme = map[string]string{"https": "wss", "http": "ws"}[u.Scheme]
		start := time.Now()
		conn, resp, err := dialer.DialContext(ctx, wsURL.String(), header)
		if err != nil {
			status := ""
			if resp != nil {
				status = resp.Status
			}
			return nil, fmt.Errorf("%w: attach to %s/%s: %v %s", runner.ErrCluster, namespace, pod, err, status)
		}
		upgraded := time.Now()
		if tlsDone.IsZero() {
			tlsDone = tcpDone // plain HTTP
		}
		connect = append(connect, tcpDone.Sub(start))
		handshake = append(handshake, tlsDone.Sub(tcpDone))
		upgrade = append(upgrade, upgraded.Sub(tlsDone))
		d, err := pingOver(conn)
		if err != nil {
			_ = conn.Close()
			return nil, err
		}
		firstPing = append(firstPing, d)
		for range 3 {
			if d, err = pingOver(conn); err != nil {
				_ = conn.Close()
				return nil, err
			}
			ping = append(ping, d)
		}
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = conn.Close()

		t1 := time.Now()
		if _, err := client.CoreV1().Pods(namespace).Get(ctx, pod, metav1.GetOptions{}); err != nil {
			return nil, err
		}
		get = append(get, time.Since(t1))
	}
	return &AttachProfile{Pod: pod, Build: summarise(build, 0), Connect: summarise(connect, 0), TLS: summarise(handshake, 0),
		Upgrade: summarise(upgrade, 0), FirstPing: summarise(firstPing, 0), Ping: summarise(ping, 0), Get: summarise(get, 0)}, nil
}

// pingOver sends a ping down stdin and waits for the entrypoint's answer on stdout.
func pingOver(conn *websocket.Conn) (time.Duration, error) {
	start := time.Now()
	if err := conn.WriteMessage(websocket.BinaryMessage, append([]byte{0}, wire.Ping...)); err != nil {
		return 0, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out bytes.Buffer
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return 0, fmt.Errorf("reading the ping's answer: %w", err)
		}
		if len(msg) == 0 || msg[0] != 1 { // stdout only
			continue
		}
		out.Write(msg[1:])
		line, err := bufio.NewReader(bytes.NewReader(out.Bytes())).ReadSlice('\n')
		if err == nil && wire.TagPing.Starts(line) {
			return time.Since(start), nil
		}
	}
}

// authHeader is the Authorization header the config sends (bearer token, or basic), for the
// hand-made dial; client certificates travel in the TLS config instead.
func authHeader(cfg *rest.Config) (http.Header, error) {
	tc, err := cfg.TransportConfig()
	if err != nil {
		return nil, err
	}
	h := http.Header{}
	rt, err := transport.HTTPWrappersForConfig(tc, roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		h = r.Header.Clone()
		return nil, errCaptured
	}))
	if err != nil {
		return nil, err
	}
	req, _ := http.NewRequest(http.MethodGet, (&url.URL{Scheme: "https", Host: "x"}).String(), nil)
	if _, err := rt.RoundTrip(req); err != errCaptured {
		return nil, err
	}
	return h, nil
}

var errCaptured = fmt.Errorf("captured")

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// ProfilePoolAttach profiles the attach to one idle, ready Pod of the options' warm pool.
func ProfilePoolAttach(ctx context.Context, opts runner.Options, n int) (*AttachProfile, error) {
	cfg, err := runner.LoadRESTConfig(opts)
	if err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	sel := labels.Set{runner.LabelPool: opts.WarmPool, runner.LabelPoolState: runner.PoolStateIdle}.String()
	pods, err := client.CoreV1().Pods(opts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && readyCount([]corev1.Pod{p}) == 1 {
			return ProfileAttach(ctx, cfg, opts.Namespace, p.Name, n)
		}
	}
	return nil, fmt.Errorf("%w: no idle, ready pod in warm pool %q to profile the attach with", runner.ErrCluster, opts.WarmPool)
}
