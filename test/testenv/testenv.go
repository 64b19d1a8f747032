// Package testenv holds what every end-to-end suite under test/ needs from its environment: the
// variables test/run.sh sets, the repository root, the local cluster's kubectl, and the overlay
// that retargets manifests/ to a namespace of the suite's own (WriteOverlay).
package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

// HowToRun says how to get the environment set; failures name it.
const HowToRun = "run the suite with `make e2e` (brings the local cluster up if needed) or `make test`, which set it"

// RequireEnv returns the variable or fails the test naming it and how to get it set. The
// integration tier never skips silently: a missing variable is a broken invocation.
func RequireEnv(t testing.TB, name, what string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set (%s); %s", name, what, HowToRun)
	}
	return v
}

// RepoRoot is the module root; go test runs each suite in its package directory, two levels down.
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found from %s: %v", root, err)
	}
	return root
}
