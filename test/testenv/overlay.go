package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// retargetReplacements is the recipe of manifests/README.md for an installation in a namespace of
// its own: the cluster-scoped objects — the admission policy, its binding and the warm pool's
// PriorityClass — are renamed after the namespace, as the module names them, so that suites in
// parallel namespaces neither share nor delete one another's.
const retargetReplacements = `replacements:
  - source: {kind: Namespace, fieldPath: metadata.name}
    targets:
      - select: {group: admissionregistration.k8s.io}
        fieldPaths: [metadata.name]
        options: {delimiter: "-", index: 3}
      - select: {kind: ValidatingAdmissionPolicyBinding}
        fieldPaths: [spec.policyName]
        options: {delimiter: "-", index: 3}
      - select: {kind: PriorityClass}
        fieldPaths: [metadata.name]
        options: {delimiter: "-", index: 3}
      - select: {kind: Deployment, labelSelector: app.kubernetes.io/component=warm-pool}
        fieldPaths: [spec.template.spec.priorityClassName]
        options: {delimiter: "-", index: 3}
`

// WriteOverlay writes into dir a kustomization that retargets manifests/overlays/<overlay> of the
// repository at root to namespace (see retargetReplacements), with extra appended (more
// kustomization fields, e.g. a replicas block; "" for none), and returns dir. Never the non-gke
// overlay: the local cluster has the gvisor RuntimeClass already, and deleting the overlay must not
// remove it.
func WriteOverlay(t testing.TB, root, dir, namespace, overlay, extra string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := filepath.Rel(dir, filepath.Join(root, "manifests", "overlays", overlay))
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: " + namespace +
		"\nresources:\n  - " + base + "\n" + retargetReplacements + extra
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
