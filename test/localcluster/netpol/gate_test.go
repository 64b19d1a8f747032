package main

import (
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

func pod(ns, name, node, ip string, phase v1.PodPhase, labels map[string]string) *v1.Pod {
	p := &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       v1.PodSpec{NodeName: node},
		Status:     v1.PodStatus{Phase: phase},
	}
	if ip != "" {
		p.Status.PodIPs = []v1.PodIP{{IP: ip}}
	}
	return p
}

func policy(ns string, selector map[string]string) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p"},
		Spec:       networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: selector}},
	}
}

func TestReadyIPs(t *testing.T) {
	sandbox := map[string]string{"app": "sandbox"}
	pods := []*v1.Pod{
		pod("sandboxes", "judged", "vm", "10.244.0.2", v1.PodRunning, sandbox),
		pod("sandboxes", "new", "vm", "10.244.0.3", v1.PodRunning, sandbox),
		pod("sandboxes", "unselected", "vm", "10.244.0.4", v1.PodRunning, map[string]string{"app": "other"}),
		pod("servers", "server", "vm", "10.244.0.5", v1.PodRunning, nil),
		pod("servers", "starting", "vm", "", v1.PodPending, nil),
		pod("servers", "done", "vm", "10.244.0.6", v1.PodSucceeded, nil),
		pod("servers", "elsewhere", "other-node", "10.244.1.7", v1.PodRunning, nil),
	}
	hostNet := pod("servers", "host", "vm", "192.0.2.2", v1.PodRunning, nil)
	hostNet.Spec.HostNetwork = true
	pods = append(pods, hostNet)
	policies := []*networkingv1.NetworkPolicy{policy("sandboxes", sandbox), policy("elsewhere", nil)}

	ready, waiting := readyIPs(pods, policies, "vm", sets.New("10.244.0.2"))
	if want := []string{"10.244.0.2", "10.244.0.4", "10.244.0.5"}; !slices.Equal(sets.List(ready), want) {
		t.Errorf("ready %v, want %v", sets.List(ready), want)
	}
	if want := []string{"sandboxes/new 10.244.0.3"}; !slices.Equal(waiting, want) {
		t.Errorf("waiting %v, want %v", waiting, want)
	}

	// An empty selector selects every Pod of its namespace; with nothing judged yet, none is ready.
	ready, waiting = readyIPs(pods, []*networkingv1.NetworkPolicy{policy("servers", nil)}, "vm", sets.New[string]())
	if want := []string{"10.244.0.2", "10.244.0.3", "10.244.0.4"}; !slices.Equal(sets.List(ready), want) {
		t.Errorf("ready %v, want %v", sets.List(ready), want)
	}
	if len(waiting) != 1 || waiting[0] != "servers/server 10.244.0.5" {
		t.Errorf("waiting %v, want servers/server", waiting)
	}
}
