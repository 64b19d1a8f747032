package runner

import (
	"context"
	"errors"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
)

func TestDoctorNamesTheMissingVerbAndQuotaShortage(t *testing.T) {
	t.Parallel()
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "sandbox", Namespace: "sandbox"},
		Status: corev1.ResourceQuotaStatus{
			Hard: corev1.ResourceList{"pods": resource.MustParse("10"), "limits.memory": resource.MustParse("5Gi")},
			Used: corev1.ResourceList{"pods": resource.MustParse("10"), "limits.memory": resource.MustParse("1Gi")},
		},
	}
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "gvisor"}, Handler: "runsc"}
	fc := newFakeCluster(t, scenario{}, quota, rc)
	fc.client.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		attr := review.Spec.ResourceAttributes
		review.Status.Allowed = !(attr.Resource == "pods" && attr.Subresource == "log")
		return true, review, nil
	})
	r := fc.runner(Options{})
	checks := r.Doctor(context.Background(), DoctorOptions{})
	byName := map[string]Check{}
	for _, c := range checks {
		byName[c.Name] = c
	}
	rbac := byName["RBAC allows every call the runner makes"]
	if rbac.Status != CheckFail || !strings.Contains(rbac.Detail, "get pods/log") || strings.Contains(rbac.Detail, "create jobs") {
		t.Errorf("RBAC check = %+v, want a failure naming only get pods/log", rbac)
	}
	q := byName["resource quota has room for an execution"]
	if q.Status != CheckFail || !strings.Contains(q.Detail, "pods: 10 of 10 used") {
		t.Errorf("quota check = %+v, want pods exhausted", q)
	}
	if c := byName["RuntimeClass gvisor exists"]; c.Status != CheckPass || c.Detail != "handler runsc" {
		t.Errorf("RuntimeClass check = %+v", c)
	}
	if c := byName["a schedulable gVisor node exists"]; c.Status != CheckFail {
		t.Errorf("node check = %+v, want a failure without sandbox nodes", c)
	}
}

// A least-privilege identity cannot read RuntimeClasses or nodes; those warnings point at the
// smoke execution only when it ran, and say what it showed.
func TestDoctorWarningsPointAtTheSmokeCheckOnlyWhenItRan(t *testing.T) {
	t.Parallel()
	gvisor := new(framed).out("Linux version 4.4.0 #1 SMP Sun Jan 10 15:06:54 PST 2016\ngvisor\n").end(endRecord{})
	cases := []struct {
		name      string
		smoke     bool
		sc        scenario
		wantSmoke CheckStatus // "": no smoke check in the list
		wantFix   string      // in the Fix of both warnings
		wantNot   string      // in neither
	}{
		{"smoke off", false, scenario{}, "", "run `gkexec doctor` with --smoke", "smoke execution proved"},
		{"smoke passed", true, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running}, log: gvisor}, CheckPass,
			"the smoke execution below proved", "did not prove"},
		{"smoke failed", true, scenario{steps: []func(*corev1.Pod){scheduledOn("n"), running},
			log: new(framed).err("boom").end(endRecord{ExitCode: 1})}, CheckFail, "the smoke execution below did not prove", "below proved"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fc := newFakeCluster(t, tc.sc)
			deny := func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "x"}, "", errors.New("cluster-scoped"))
			}
			fc.client.PrependReactor("get", "runtimeclasses", deny)
			fc.client.PrependReactor("list", "nodes", deny)
			checks := fc.runner(Options{}).Doctor(context.Background(), DoctorOptions{Smoke: tc.smoke})
			byName := map[string]Check{}
			for _, c := range checks {
				byName[c.Name] = c
			}
			if got := byName["smoke execution in the sandbox"].Status; got != tc.wantSmoke {
				t.Errorf("smoke check status %q, want %q", got, tc.wantSmoke)
			}
			for _, name := range []string{"RuntimeClass gvisor exists", "a schedulable gVisor node exists"} {
				c := byName[name]
				if c.Status != CheckWarn || !strings.Contains(c.Fix, tc.wantFix) || strings.Contains(c.Fix, tc.wantNot) {
					t.Errorf("%s: %+v; want a warning whose fix says %q and not %q", name, c, tc.wantFix, tc.wantNot)
				}
			}
		})
	}
}
