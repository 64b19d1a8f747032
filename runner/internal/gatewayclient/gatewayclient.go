// Package gatewayclient asks a sandbox namespace's egress gateway what it allowed and refused for
// one sandbox. It finds the gateway where the gateway published itself (the annotations of
// egress.ConfigMapProxy in the sandbox namespace), lists its Pods, and reads each one's admin API
// through a port-forward (the runner may run outside the cluster, where neither the Pods nor the
// Service can be reached), adding up what the replicas saw.
package gatewayclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/internal/egress"
)

// How long what was learnt about the gateway is trusted: whether the namespace has one (it is
// installed rarely) and which Pods it runs (they change on a rollout; a failed read refreshes them).
const (
	discoveryTTL = 30 * time.Second
	podsTTL      = 10 * time.Second
)

// Client reads a sandbox namespace's gateway. Safe for concurrent use.
type Client struct {
	client    kubernetes.Interface
	namespace string
	get       Get

	mu      sync.Mutex
	found   *found
	foundAt time.Time
	pods    []string
	podsAt  time.Time
	now     func() time.Time
}

// found is where the gateway said it is; nil fields when the namespace has none.
type found struct {
	namespace, selector string
	port                int
}

// New returns a client of namespace's gateway; get reaches its admin API (NewPortForwardGet).
func New(client kubernetes.Interface, namespace string, get Get) *Client {
	return &Client{client: client, namespace: namespace, get: get, now: time.Now}
}

// ErrNoGateway: the namespace has no egress gateway (or it has not published itself yet).
var ErrNoGateway = errors.New("the namespace has no egress gateway")

// Stats are the sandbox Pod's counts, all the gateway's replicas together; ErrNoGateway when the
// namespace has none.
func (c *Client) Stats(ctx context.Context, pod string) (gateway.Stats, error) {
	f, err := c.discover(ctx)
	if err != nil {
		return gateway.Stats{}, err
	}
	stats, err := c.read(ctx, f, pod, false)
	if err != nil {
		// The Pods may have changed under a stale list: once more with a fresh one.
		stats, err = c.read(ctx, f, pod, true)
	}
	return stats, err
}

func (c *Client) read(ctx context.Context, f *found, pod string, refresh bool) (gateway.Stats, error) {
	pods, err := c.gatewayPods(ctx, f, refresh)
	if err != nil {
		return gateway.Stats{}, err
	}
	total := gateway.Stats{Sandbox: pod, Allowed: []gateway.Destination{}, Denied: []gateway.Destination{}}
	for _, gw := range pods {
		status, body, err := c.get(ctx, f.namespace, gw, f.port, gateway.PathSandboxes+"/"+url.PathEscape(pod))
		switch {
		case err != nil:
			return gateway.Stats{}, fmt.Errorf("egress gateway pod %s/%s: %w", f.namespace, gw, err)
		case status == http.StatusNotFound:
			continue // this replica saw nothing of it
		case status != http.StatusOK:
			return gateway.Stats{}, fmt.Errorf("egress gateway pod %s/%s: admin API answered %d: %.200s", f.namespace, gw, status, body)
		}
		var v gateway.SandboxView
		if err := json.Unmarshal(body, &v); err != nil {
			return gateway.Stats{}, fmt.Errorf("egress gateway pod %s/%s: admin API answer: %w", f.namespace, gw, err)
		}
		total = total.Plus(v.Stats)
	}
	return total, nil
}

// discover reads where the gateway published itself, at most every discoveryTTL.
func (c *Client) discover(ctx context.Context) (*found, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now().Sub(c.foundAt) < discoveryTTL {
		return c.found, c.noGateway()
	}
	// The runner may list ConfigMaps (gc does); it may not get them.
	list, err := c.client.CoreV1().ConfigMaps(c.namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", egress.ConfigMapProxy).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("finding the egress gateway: list configmaps in namespace %s: %w", c.namespace, err)
	}
	c.found, c.foundAt = nil, c.now()
	for i := range list.Items {
		if list.Items[i].Name == egress.ConfigMapProxy {
			c.found = publication(&list.Items[i])
		}
	}
	return c.found, c.noGateway()
}

func (c *Client) noGateway() error {
	if c.found == nil {
		return ErrNoGateway
	}
	return nil
}

// publication reads the gateway's annotations; nil when it has not published (an installation
// whose gateway never started, or none).
func publication(cm *corev1.ConfigMap) *found {
	a := cm.Annotations
	port, err := strconv.Atoi(a[egress.AnnotationAdminPort])
	if err != nil || port <= 0 || a[egress.AnnotationGatewayNamespace] == "" || cm.Data["HTTPS_PROXY"] == "" {
		return nil
	}
	selector := a[egress.AnnotationGatewaySelector]
	if selector == "" {
		selector = egress.GatewaySelector
	}
	return &found{namespace: a[egress.AnnotationGatewayNamespace], selector: selector, port: port}
}

// gatewayPods are the gateway's running Pods, listed at most every podsTTL unless refresh.
func (c *Client) gatewayPods(ctx context.Context, f *found, refresh bool) ([]string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !refresh && len(c.pods) > 0 && c.now().Sub(c.podsAt) < podsTTL {
		return c.pods, nil
	}
	list, err := c.client.CoreV1().Pods(f.namespace).List(ctx, metav1.ListOptions{LabelSelector: f.selector})
	if err != nil {
		return nil, fmt.Errorf("list pods %q in the egress gateway's namespace %s: %w", f.selector, f.namespace, err)
	}
	var pods []string
	for _, p := range list.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			pods = append(pods, p.Name)
		}
	}
	if len(pods) == 0 {
		return nil, fmt.Errorf("the egress gateway has no running pod in namespace %s (selector %s)", f.namespace, f.selector)
	}
	c.pods, c.podsAt = pods, c.now()
	return pods, nil
}
