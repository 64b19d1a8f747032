package gatewayclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/gkexec/gkexec/gateway"
	"github.com/gkexec/gkexec/internal/egress"
)

func published(ns string) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: egress.ConfigMapProxy, Namespace: ns, Annotations: map[string]string{
			egress.AnnotationGatewayNamespace: ns + "-egress", egress.AnnotationAdminPort: "9090",
			egress.AnnotationGatewaySelector: egress.GatewaySelector,
		}},
		Data: map[string]string{"HTTPS_PROXY": "http://10.0.0.9:3128"},
	}
}

func gatewayPod(ns, name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{
			"app.kubernetes.io/name": egress.GatewayName, "app.kubernetes.io/component": egress.ComponentGateway}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning},
	}
}

// replicaAnswers serves each gateway Pod's admin API from canned views.
func replicaAnswers(views map[string]*gateway.SandboxView, calls *[]string) Get {
	return func(_ context.Context, ns, pod string, port int, path string) (int, []byte, error) {
		*calls = append(*calls, fmt.Sprintf("%s/%s:%d%s", ns, pod, port, path))
		v, ok := views[pod]
		if !ok {
			return 0, nil, errors.New("connection refused")
		}
		if v == nil {
			return http.StatusNotFound, []byte("no sandbox"), nil
		}
		body := fmt.Sprintf(`{"known":true,"id":%q,"stats":{"sandbox":%q,"allowed":[{"host":"pypi.org","port":443,"count":%d}],"denied":[],"allowed_total":%d,"denied_total":0}}`,
			v.ID, v.ID, v.Stats.AllowedTotal, v.Stats.AllowedTotal)
		return http.StatusOK, []byte(body), nil
	}
}

func TestStatsAddsUpTheReplicas(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset(published("sbx"), gatewayPod("sbx-egress", "gw-a"), gatewayPod("sbx-egress", "gw-b"), gatewayPod("sbx-egress", "gw-c"))
	var calls []string
	get := replicaAnswers(map[string]*gateway.SandboxView{
		"gw-a": {ID: "pod-1", Stats: gateway.Stats{AllowedTotal: 2}},
		"gw-b": {ID: "pod-1", Stats: gateway.Stats{AllowedTotal: 3}},
		"gw-c": nil, // saw nothing of it
	}, &calls)
	c := New(client, "sbx", get)
	stats, err := c.Stats(context.Background(), "pod-1")
	if err != nil {
		t.Fatal(err)
	}
	if stats.AllowedTotal != 5 || len(stats.Allowed) != 1 || stats.Allowed[0].Count != 5 || stats.Denied == nil {
		t.Errorf("stats %+v, want pypi.org:443 five times", stats)
	}
	if len(calls) != 3 || calls[0] != "sbx-egress/gw-a:9090/v1/sandboxes/pod-1" {
		t.Errorf("calls %v", calls)
	}
}

func TestStatsWithoutAGateway(t *testing.T) {
	t.Parallel()
	unpublished := published("sbx")
	unpublished.Annotations, unpublished.Data = nil, nil // created empty by the installation; the gateway never started
	for name, client := range map[string]*fake.Clientset{
		"no ConfigMap":    fake.NewClientset(),
		"never published": fake.NewClientset(unpublished),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var calls []string
			c := New(client, "sbx", replicaAnswers(nil, &calls))
			if _, err := c.Stats(context.Background(), "pod-1"); !errors.Is(err, ErrNoGateway) {
				t.Errorf("err %v, want ErrNoGateway", err)
			}
			if len(calls) != 0 {
				t.Errorf("asked a gateway that is not there: %v", calls)
			}
		})
	}
}

func TestStatsRefreshesAStalePodList(t *testing.T) {
	t.Parallel()
	client := fake.NewClientset(published("sbx"), gatewayPod("sbx-egress", "gw-old"))
	var calls []string
	views := map[string]*gateway.SandboxView{"gw-old": {ID: "p", Stats: gateway.Stats{AllowedTotal: 1}}}
	c := New(client, "sbx", replicaAnswers(views, &calls))
	if _, err := c.Stats(context.Background(), "p"); err != nil {
		t.Fatal(err)
	}
	// A rollout replaced the Pod: the cached name fails, the fresh list finds the new one.
	ctx := context.Background()
	_ = client.CoreV1().Pods("sbx-egress").Delete(ctx, "gw-old", metav1.DeleteOptions{})
	_, _ = client.CoreV1().Pods("sbx-egress").Create(ctx, gatewayPod("sbx-egress", "gw-new"), metav1.CreateOptions{})
	delete(views, "gw-old")
	views["gw-new"] = &gateway.SandboxView{ID: "p", Stats: gateway.Stats{AllowedTotal: 4}}
	stats, err := c.Stats(ctx, "p")
	if err != nil || stats.AllowedTotal != 4 {
		t.Errorf("after the rollout: %+v, %v", stats, err)
	}
	// No gateway Pod at all is an error that says so.
	_ = client.CoreV1().Pods("sbx-egress").Delete(ctx, "gw-new", metav1.DeleteOptions{})
	delete(views, "gw-new")
	if _, err := c.Stats(ctx, "p"); err == nil || errors.Is(err, ErrNoGateway) {
		t.Errorf("no running gateway pod: %v, want an error naming it", err)
	}
}
