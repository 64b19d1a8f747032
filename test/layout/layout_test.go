// Package layout holds the rules of the source tree's shape that review alone would let slip.
package layout

import (
	"bytes"
	"go/format"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxLines bounds a non-test Go file: a file past it holds more than one idea (split it along
// them; docs/architecture.md says where each goes).
const maxLines = 400

// goFiles calls f with every Go file of the module (tests included when tests is set), walking
// from its root and skipping what is not ours (.git, bin/, node_modules, testdata, scratch under
// underscores); it fails the test if the walk finds too few to be the tree.
func goFiles(t *testing.T, tests bool, f func(rel string, src []byte)) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "bin" || name == "node_modules" || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || !tests && strings.HasSuffix(name, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		checked++
		rel, _ := filepath.Rel(root, path)
		f(rel, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d Go files under %s: the walk is missing the tree", checked, root)
	}
}

// TestNoGoFileOverMaxLines: no non-test Go file is longer than maxLines.
func TestNoGoFileOverMaxLines(t *testing.T) {
	goFiles(t, false, func(rel string, src []byte) {
		if n := bytes.Count(src, []byte("\n")); n > maxLines {
			t.Errorf("%s has %d lines, more than %d: split it by idea", rel, n, maxLines)
		}
	})
}

// TestEveryGoFileIsGofmted: every Go file, tests included, is as gofmt writes it.
func TestEveryGoFileIsGofmted(t *testing.T) {
	goFiles(t, true, func(rel string, src []byte) {
		formatted, err := format.Source(src)
		switch {
		case err != nil:
			t.Errorf("%s does not parse: %v", rel, err)
		case !bytes.Equal(formatted, src):
			t.Errorf("%s is not gofmted: run gofmt -w %s", rel, rel)
		}
	})
}
