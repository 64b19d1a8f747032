// Command gen-manifests writes the files of the declarative installations that are built by Go
// rather than by hand (package warmpool): the warm pool's Deployment in
// manifests/components/warm-pool/deployment.yaml (runner.WarmPoolDeployment), its PriorityClass
// in priorityclass.yaml beside it (bench.PoolPriorityClass), and the copy of
// internal/wire/entrypoint.py in terraform/modules/sandbox-namespace/sandbox/. Run it from
// anywhere in the repository after changing the runner:
//
//	go run ./hack/gen-manifests     (or: go generate ./hack/gen-manifests)
//
// test/parity fails while any of them is stale.
package main

//go:generate go run .

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/gkexec/gkexec/hack/gen-manifests/warmpool"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen-manifests:", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	files, err := warmpool.Files()
	if err != nil {
		return err
	}
	for _, rel := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, files[rel], 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", rel)
	}
	return nil
}

// repoRoot is the nearest directory above the working directory that holds go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory: run it inside the repository")
		}
		dir = parent
	}
}
