package mcp

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

func TestDescribeSandboxSaysWhatTheNamespaceOffers(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{MemoryLimit: "1Gi", SessionIdleTimeout: 2 * time.Minute})
	c.warmPod("ready-1")
	c.warmPod("ready-2")
	c.warmPod("starting")
	starting, _ := c.fc.Client.CoreV1().Pods(c.opts.Namespace).Get(context.Background(), "starting", metav1.GetOptions{})
	starting.Status.Conditions = nil
	if _, err := c.fc.Client.CoreV1().Pods(c.opts.Namespace).UpdateStatus(context.Background(), starting, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, cs := c.client(nil)
	res := call(t, cs, ToolDescribeSandbox, map[string]any{})
	var d Description
	structured(t, res, &d)
	if res.IsError {
		t.Fatalf("describe_sandbox: %s", text(res))
	}
	if len(d.Languages) != 3 || d.Languages[0].Name != "python" {
		t.Errorf("languages %+v, want the runner's three, python first", d.Languages)
	}
	if d.Namespace != fakecluster.Namespace || d.Limits.MemoryLimit != "1Gi" || d.Limits.TimeoutSeconds != 300 || d.Sessions.IdleTimeoutSeconds != 120 || d.RuntimeClass != "gvisor" {
		t.Errorf("description %+v, want the runner's options", d)
	}
	if wp := d.WarmPool; !wp.Enabled || wp.Idle != 3 || wp.Ready != 2 || wp.Claimed != 0 || wp.Error != "" {
		t.Errorf("warm pool %+v, want 3 idle of which 2 ready", wp)
	}
}
