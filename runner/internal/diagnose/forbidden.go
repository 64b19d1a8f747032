package diagnose

import (
	"context"
	"errors"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ClarifyForbidden tells a missing namespace from missing RBAC. A least-privilege identity's Role
// lives in its own namespace, so in a namespace that does not exist the API server answers
// Forbidden before it checks that the namespace exists. When err is ErrForbidden and the identity
// holds no rules in namespace beyond what every authenticated user has, the likelier truth is a
// wrong or missing namespace: it returns an ErrNamespaceNotFound (no longer ErrForbidden) that
// says so. Otherwise, or when the rules cannot be reviewed, it returns err unchanged.
func ClarifyForbidden(ctx context.Context, client kubernetes.Interface, namespace string, err error) error {
	if !errors.Is(err, ErrForbidden) {
		return err
	}
	// Every authenticated user may create a SelfSubjectRulesReview (system:basic-user).
	review, rerr := client.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authorizationv1.SelfSubjectRulesReview{
		Spec: authorizationv1.SelfSubjectRulesReviewSpec{Namespace: namespace}}, metav1.CreateOptions{})
	if rerr != nil {
		return err
	}
	for _, r := range review.Status.ResourceRules {
		if !everyonesRule(r) {
			return err // RBAC grants something here: the namespace exists and err is the answer
		}
	}
	note := ""
	if review.Status.Incomplete {
		note = fmt.Sprintf(" (RBAC grants it nothing there; other authorizers cannot list their rules: %s)", review.Status.EvaluationError)
	}
	return fmt.Errorf("%w: namespace %q does not exist, or grants this identity nothing%s: check the name "+
		"(--namespace, Options.Namespace) is the namespace whose Role binds this identity, or create it with "+
		"terraform/modules/sandbox-namespace or manifests/; `gkexec doctor -n %s` checks both: %v",
		ErrNamespaceNotFound, namespace, note, namespace, err)
}

// everyonesResources are what system:basic-user lets every authenticated user create anywhere.
// Non-resource rules (discovery, /healthz, /version) are never namespaced, so they do not count.
var everyonesResources = map[string]map[string]bool{
	"authorization.k8s.io":  {"selfsubjectaccessreviews": true, "selfsubjectrulesreviews": true},
	"authentication.k8s.io": {"selfsubjectreviews": true},
}

// everyonesRule: r names only resources that every authenticated user has.
func everyonesRule(r authorizationv1.ResourceRule) bool {
	if len(r.APIGroups) == 0 || len(r.Resources) == 0 {
		return false
	}
	for _, g := range r.APIGroups {
		for _, res := range r.Resources {
			if !everyonesResources[g][res] {
				return false
			}
		}
	}
	return true
}
