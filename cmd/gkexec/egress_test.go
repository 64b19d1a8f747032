package main

import (
	"reflect"
	"strings"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/internal/fakecluster"
)

// --allow-domain narrows the sandbox's egress: run puts it on the Job's Pod, session open on the
// session; a malformed entry is a usage error before anything is created.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestAllowDomainNarrowsTheSandboxesEgress(t *testing.T) {
	fc := fakecluster.New(t, fakecluster.Scenario{Steps: sandboxRuns, Log: endOK(new(fakecluster.Log), 0)})
	var mu sync.Mutex
	var narrowing []string
	fc.Client.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		narrowing = append(narrowing, a.(k8stesting.CreateAction).GetObject().(*batchv1.Job).Spec.Template.Annotations[egress.AnnotationAllow])
		return false, nil, nil
	})
	if code, tr := runOn(t, fc, "--allow-domain", "pypi.org", "--allow-domain", "*.pythonhosted.org:443", "-c", "print(1)"); code != 0 {
		_, _, stderr := tr.snapshot()
		t.Fatalf("exit %d: %s", code, stderr)
	}
	mu.Lock()
	if !reflect.DeepEqual(narrowing, []string{"pypi.org *.pythonhosted.org:443"}) {
		t.Errorf("the Job's Pod narrows egress to %q", narrowing)
	}
	mu.Unlock()

	bad := fakecluster.New(t, fakecluster.Scenario{Steps: sandboxRuns})
	code, tr := runOn(t, bad, "--allow-domain", "*", "-c", "print(1)")
	_, _, stderr := tr.snapshot()
	if code != exitUsage || !strings.Contains(stderr, "AllowDomains") {
		t.Errorf("--allow-domain '*': exit %d stderr %q, want a usage error", code, stderr)
	}
	if created := bad.Created(); len(created) != 0 {
		t.Errorf("a refused narrowing created %v", created)
	}

	fs := &fakeSessions{s: &fakeSession{id: "s1"}}
	if code, _, stderr := onFake(t, fs, "", "open", "--allow-domain", "api.example.com"); code != 0 || len(fs.opened) != 1 || !reflect.DeepEqual(fs.opened[0].AllowDomains, []string{"api.example.com"}) {
		t.Errorf("session open: exit %d stderr %q opened %+v", code, stderr, fs.opened)
	}
}
