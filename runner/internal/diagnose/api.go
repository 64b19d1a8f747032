package diagnose

import (
	"errors"
	"fmt"
	"net"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/util/retry"
)

// APIError turns an API error into one of the sentinels, naming the call so that the user knows
// which RBAC rule to add or what else to fix.
func APIError(err error, verb, resource, namespace, name string) error {
	obj := resource
	if name != "" {
		obj = resource + " " + namespace + "/" + name
	} else {
		obj = resource + " in namespace " + namespace
	}
	switch {
	case apierrors.IsForbidden(err):
		if strings.Contains(err.Error(), "exceeded quota") {
			return fmt.Errorf("%w: %s %s: %v", ErrQuotaExceeded, verb, obj, err)
		}
		return fmt.Errorf("%w: %s %s: the runner's identity lacks verb %q on %q in namespace %s; "+
			"grant it with the gkexec Role (terraform/modules/sandbox-namespace or manifests/) and check with `gkexec doctor`: %v",
			ErrForbidden, verb, obj, verb, resource, namespace, err)
	case apierrors.IsNotFound(err) && isNamespaceNotFound(err, namespace):
		return fmt.Errorf("%w: %s %s: namespace %q does not exist; create it (terraform/modules/sandbox-namespace or manifests/) or pass --namespace: %v",
			ErrNamespaceNotFound, verb, obj, namespace, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%w: %s %s: the API server rejected the credentials (expired token? wrong kubeconfig?): %v", ErrForbidden, verb, obj, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%w: %s %s: an execution with this ID exists already; use a new execution ID: %v", ErrInvalidRequest, verb, obj, err)
	case apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err):
		return fmt.Errorf("%w: %s %s: %v", ErrInvalidRequest, verb, obj, err)
	}
	if isUnreachable(err) {
		return fmt.Errorf("%w: %s %s: cannot reach the Kubernetes API server; is the cluster running, and do --kubeconfig/--context point at it? %v",
			ErrCluster, verb, obj, err)
	}
	return fmt.Errorf("%w: %s %s: %v", ErrCluster, verb, obj, err)
}

// isUnreachable: the API server did not answer at all (as opposed to answering with an error).
func isUnreachable(err error) bool {
	var netErr net.Error
	var opErr *net.OpError
	return errors.As(err, &opErr) || (errors.As(err, &netErr) && netErr.Timeout()) ||
		strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host")
}

func isNamespaceNotFound(err error, namespace string) bool {
	if status, ok := err.(apierrors.APIStatus); ok {
		if d := status.Status().Details; d != nil && d.Kind == "namespaces" {
			return true
		}
	}
	return strings.Contains(err.Error(), fmt.Sprintf("namespaces %q not found", namespace))
}

// IsAnswer tells an error the API server sent (it created nothing) from one where the request's
// fate is unknown.
func IsAnswer(err error) bool {
	_, ok := err.(apierrors.APIStatus)
	return ok && !apierrors.IsTimeout(err) && !apierrors.IsServerTimeout(err) && !apierrors.IsInternalError(err)
}

// RetryQuotaConflict makes a create again while the API server refuses it with a Conflict. A
// create of a new object conflicts with nothing of its own: the Conflict is a ResourceQuota's
// admission losing a race on its usage counters to a concurrent create in the namespace. Nothing
// was created then, and trying again is what the server asks for.
func RetryQuotaConflict(create func() error) error {
	return retry.OnError(retry.DefaultBackoff, apierrors.IsConflict, create)
}
