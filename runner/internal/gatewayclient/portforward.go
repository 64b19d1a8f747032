package gatewayclient

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// Get is one GET of the gateway's admin API at path, on port of Pod pod in namespace; it
// returns the status and body. NewPortForwardGet makes the real one.
type Get func(ctx context.Context, namespace, pod string, port int, path string) (int, []byte, error)

// maxAdminBody bounds an admin API answer: one sandbox's counts, at most a few hundred
// destinations.
const maxAdminBody = 4 << 20

// NewPortForwardGet reaches the admin API through the API server's port-forward to the gateway
// Pod (pods/portforward): it works wherever the runner runs, outside the cluster included, and
// on clusters whose Pod network the runner's host cannot reach (the local test cluster), since
// the kubelet connects to the port inside the Pod. WebSocket first, SPDY where that fails.
func NewPortForwardGet(cfg *rest.Config) Get {
	cs, csErr := kubernetes.NewForConfig(cfg)
	return func(ctx context.Context, namespace, pod string, port int, path string) (int, []byte, error) {
		if csErr != nil {
			return 0, nil, csErr
		}
		u := cs.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Name(pod).SubResource("portforward").URL()
		ws, err := portforward.NewSPDYOverWebsocketDialer(u, cfg)
		if err != nil {
			return 0, nil, err
		}
		rt, upgrader, err := spdy.RoundTripperFor(cfg)
		if err != nil {
			return 0, nil, err
		}
		dialer := portforward.NewFallbackDialer(ws, spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u),
			func(err error) bool { return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err) })
		conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		if err != nil {
			return 0, nil, fmt.Errorf("port-forward to pod %s/%s: %w", namespace, pod, err)
		}
		defer conn.Close()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		return getOver(conn, port, path)
	}
}

// getOver sends one HTTP/1.1 GET over a new pair of port-forward streams.
func getOver(conn httpstream.Connection, port int, path string) (int, []byte, error) {
	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		return 0, nil, fmt.Errorf("port-forward error stream: %w", err)
	}
	errStream.Close() // nothing is written to it
	remoteErr := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(errStream, 4096))
		remoteErr <- strings.TrimSpace(string(b))
	}()
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		return 0, nil, fmt.Errorf("port-forward data stream: %w", err)
	}
	defer data.Close()
	req := "GET " + path + " HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\nAccept: application/json\r\n\r\n"
	if _, err := io.WriteString(data, req); err != nil {
		return 0, nil, fmt.Errorf("port-forward: sending the request: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(data), nil)
	if err != nil {
		select {
		case msg := <-remoteErr:
			if msg != "" {
				return 0, nil, fmt.Errorf("port-forward to port %d: %s", port, msg)
			}
		default:
		}
		return 0, nil, fmt.Errorf("port-forward to port %d: reading the answer: %w", port, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody))
	if err != nil {
		return 0, nil, fmt.Errorf("port-forward to port %d: reading the answer: %w", port, err)
	}
	return resp.StatusCode, body, nil
}
