package runner

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/gkexec/gkexec/runner/internal/podspec"
)

// WarmPoolDeployment is the warm pool for these options: a Deployment of idle sandbox Pods in
// Options.Namespace whose entrypoint waits for a request on stdin. Its Pod template is the same
// hardened sandbox a cold execution gets, so a runner with the same options claims its Pods. The
// sandbox-namespace Terraform module and manifests/components/warm-pool declare exactly this
// object; a test keeps them in step. Pods leave the Deployment when claimed (their pool-state
// label changes), and the Deployment replaces them at once.
func WarmPoolDeployment(opts Options, replicas int32) (*appsv1.Deployment, error) {
	opts.setDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if replicas < 0 {
		return nil, fmt.Errorf("%w: warm pool replicas %d: must not be negative", ErrInvalidOptions, replicas)
	}
	shape := opts.shape()
	return podspec.WarmPool(&shape, replicas), nil
}

// WarmPoolName is the name of the Deployment of warm pool pool.
func WarmPoolName(pool string) string { return podspec.WarmPoolName(pool) }
