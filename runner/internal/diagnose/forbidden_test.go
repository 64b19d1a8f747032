package diagnose

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// What every authenticated user may do (system:basic-user, system:discovery,
// system:public-info-viewer), as a SelfSubjectRulesReview reports it in any namespace.
var everyonesRules = authorizationv1.SubjectRulesReviewStatus{
	ResourceRules: []authorizationv1.ResourceRule{
		{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews", "selfsubjectrulesreviews"}},
		{Verbs: []string{"create"}, APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"selfsubjectreviews"}},
	},
	NonResourceRules: []authorizationv1.NonResourceRule{
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz", "/version", "/version/"}},
	},
}

func TestClarifyForbidden(t *testing.T) {
	t.Parallel()
	forbidden := fmt.Errorf("%w: create configmaps sb/gkexec-x: the runner's identity lacks verb \"create\": %v", ErrForbidden,
		apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "gkexec-x", errors.New("denied")))
	withRule := func(r authorizationv1.ResourceRule) authorizationv1.SubjectRulesReviewStatus {
		s := *everyonesRules.DeepCopy()
		s.ResourceRules = append(s.ResourceRules, r)
		return s
	}
	incomplete := *everyonesRules.DeepCopy()
	incomplete.Incomplete, incomplete.EvaluationError = true, "webhook authorizer does not support user rule resolution"
	cases := []struct {
		name         string
		err          error
		status       authorizationv1.SubjectRulesReviewStatus
		reviewErr    error
		notFound     bool // want ErrNamespaceNotFound; otherwise err itself
		wantReviewed bool
	}{
		{name: "only what everyone has", err: forbidden, status: everyonesRules, notFound: true, wantReviewed: true},
		{name: "nothing at all", err: forbidden, notFound: true, wantReviewed: true},
		{name: "rules incomplete (GKE's IAM authorizer)", err: forbidden, status: incomplete, notFound: true, wantReviewed: true},
		{name: "a Role in the namespace", err: forbidden, wantReviewed: true,
			status: withRule(authorizationv1.ResourceRule{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}})},
		{name: "a wildcard rule", err: forbidden, wantReviewed: true,
			status: withRule(authorizationv1.ResourceRule{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}})},
		{name: "a rule on a review resource in another group", err: forbidden, wantReviewed: true,
			status: withRule(authorizationv1.ResourceRule{Verbs: []string{"create"}, APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"localsubjectaccessreviews"}})},
		{name: "the review fails", err: forbidden, reviewErr: apierrors.NewInternalError(errors.New("etcd")), wantReviewed: true},
		{name: "not a forbidden error", err: fmt.Errorf("%w: boom", ErrCluster)},
		{name: "no error", err: nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client := fake.NewSimpleClientset()
			var reviewed bool
			client.PrependReactor("create", "selfsubjectrulesreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				reviewed = true
				review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectRulesReview)
				if review.Spec.Namespace != "sb" {
					t.Errorf("review of namespace %q, want sb", review.Spec.Namespace)
				}
				if tc.reviewErr != nil {
					return true, nil, tc.reviewErr
				}
				out := review.DeepCopy()
				out.Status = tc.status
				return true, out, nil
			})

			got := ClarifyForbidden(context.Background(), client, "sb", tc.err)
			if reviewed != tc.wantReviewed {
				t.Errorf("reviewed the rules: %v, want %v", reviewed, tc.wantReviewed)
			}
			if !tc.notFound {
				if got != tc.err {
					t.Errorf("got %v, want the error unchanged: %v", got, tc.err)
				}
				return
			}
			if !errors.Is(got, ErrNamespaceNotFound) || errors.Is(got, ErrForbidden) {
				t.Errorf("got %v, want ErrNamespaceNotFound (and no longer ErrForbidden)", got)
			}
			for _, want := range []string{`namespace "sb" does not exist, or grants this identity nothing`, "--namespace", "gkexec doctor -n sb", "create configmaps sb/gkexec-x"} {
				if !strings.Contains(got.Error(), want) {
					t.Errorf("message %q lacks %q", got, want)
				}
			}
			if tc.status.Incomplete && !strings.Contains(got.Error(), tc.status.EvaluationError) {
				t.Errorf("message %q does not say the rules were incomplete", got)
			}
		})
	}
}
