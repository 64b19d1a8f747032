package testenv

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

var kubectlOnce sync.Once

// UseClusterKubectl puts the local cluster's kubectl (the version the cluster runs) first on PATH,
// since terratest's k8s module runs whatever `kubectl` PATH finds: $KUBECTL, else the one the
// cluster built, $GKEXEC_CACHE/bin/kubectl (the cache defaults to ~/.cache/gkexec, as in
// test/localcluster). It changes PATH for the whole process, on the first call only: suites call
// it from parallel subtests too, where t.Setenv is not allowed. Without that kubectl it says so
// and leaves PATH alone.
func UseClusterKubectl(t testing.TB) {
	t.Helper()
	kubectlOnce.Do(func() {
		path := os.Getenv("KUBECTL")
		if path == "" {
			cache := os.Getenv("GKEXEC_CACHE")
			if cache == "" {
				home, _ := os.UserHomeDir()
				cache = filepath.Join(home, ".cache", "gkexec")
			}
			path = filepath.Join(cache, "bin", "kubectl")
		}
		if _, err := os.Stat(path); err != nil {
			t.Logf("kubectl %s not found; using the one on PATH", path)
			return
		}
		_ = os.Setenv("PATH", filepath.Dir(path)+string(os.PathListSeparator)+os.Getenv("PATH"))
	})
}
