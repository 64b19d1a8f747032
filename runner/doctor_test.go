package runner

import (
	"context"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
