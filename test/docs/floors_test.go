package docs

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/gkexec/gkexec"

// TestArchitectureFloorsMatchImports holds docs/architecture.md's "Floors, lowest first" to the
// code: every package of the library and the commands stands on one floor, and each imports only
// packages on floors below its own.
func TestArchitectureFloorsMatchImports(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	floors, err := parseFloors(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	imports, err := moduleImports(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(imports) < 20 {
		t.Fatalf("found only %d packages under %s: the walk is missing the tree", len(imports), root)
	}
	for _, p := range floorProblems(floors, imports) {
		t.Error(p)
	}
}

// TestFloorProblemsFindsUpwardImports proves the check fails on what it is meant to catch.
func TestFloorProblemsFindsUpwardImports(t *testing.T) {
	t.Parallel()
	floors, err := parseFloors("Intro.\n\nFloors, lowest first: `internal/wire` → `podspec`, `gone` →\n`runner`. `runner` re-exports `ErrTimeout`.\n")
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string][]string{
		module + "/internal/wire":             nil,
		module + "/runner/internal/podspec":   {module + "/runner"},                               // up
		module + "/runner":                    {module + "/internal/wire", module + "/runner/gc"}, // fine, then off the floors
		module + "/runner/gc":                 {module + "/runner"},                               // on no floor
		module + "/internal/wire/wiretest":    {module + "/internal/wire"},                        // a test helper: exempt
		module + "/test/leftovers":            {module + "/runner"},                               // a test tier: exempt
		module + "/runner/internal/podspec/x": nil,                                                // on no floor
	}
	got := floorProblems(floors, imports)
	want := []string{
		"docs/architecture.md names `gone` on a floor: no package of the module ends so",
		"runner/gc is on no floor of docs/architecture.md",
		"runner/internal/podspec (floor 2) imports runner (floor 3): imports must point down",
		"runner/internal/podspec/x is on no floor of docs/architecture.md",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// parseFloors reads the sentence that starts "Floors, lowest first:" and returns its floors, each
// the package names between two arrows.
func parseFloors(doc string) ([][]string, error) {
	_, rest, ok := strings.Cut(doc, "Floors, lowest first:")
	if !ok {
		return nil, fmt.Errorf("docs/architecture.md has no sentence starting %q", "Floors, lowest first:")
	}
	sentence := regexp.MustCompile(`\.\s`).Split(rest, 2)[0]
	var floors [][]string
	for _, part := range strings.Split(sentence, "→") {
		var names []string
		for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(part, -1) {
			names = append(names, m[1])
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("a floor of docs/architecture.md names no package: %q", strings.TrimSpace(part))
		}
		floors = append(floors, names)
	}
	if len(floors) < 2 {
		return nil, fmt.Errorf("docs/architecture.md's floors: %d found", len(floors))
	}
	return floors, nil
}

// exempt says which packages stand outside the floors: the tiers under test/, the generators
// under hack/, the examples, and the helpers of tests (fakecluster, *test), which only tests import.
func exempt(rel string) bool {
	first, _, _ := strings.Cut(rel, "/")
	return first == "test" || first == "hack" || first == "examples" ||
		rel == "internal/fakecluster" || strings.HasSuffix(rel, "test")
}

// floorProblems lists every package off the floors and every import that does not point down.
func floorProblems(floors [][]string, imports map[string][]string) []string {
	var problems []string
	floorOf := map[string]int{} // package path → its floor, from 1
	for i, names := range floors {
		for _, name := range names {
			var found []string
			for pkg := range imports {
				if rel := strings.TrimPrefix(pkg, module+"/"); rel == name || strings.HasSuffix(rel, "/"+name) {
					found = append(found, pkg)
				}
			}
			switch len(found) {
			case 1:
				floorOf[found[0]] = i + 1
			case 0:
				problems = append(problems, fmt.Sprintf("docs/architecture.md names `%s` on a floor: no package of the module ends so", name))
			default:
				sort.Strings(found)
				problems = append(problems, fmt.Sprintf("docs/architecture.md's `%s` could be any of %v: name more of its path", name, found))
			}
		}
	}
	for pkg, deps := range imports {
		rel := strings.TrimPrefix(pkg, module+"/")
		if exempt(rel) {
			continue
		}
		floor, ok := floorOf[pkg]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s is on no floor of docs/architecture.md", rel))
			continue
		}
		for _, dep := range deps {
			if depFloor, ok := floorOf[dep]; ok && depFloor >= floor {
				problems = append(problems, fmt.Sprintf("%s (floor %d) imports %s (floor %d): imports must point down",
					rel, floor, strings.TrimPrefix(dep, module+"/"), depFloor))
			}
		}
	}
	sort.Strings(problems)
	return problems
}

// moduleImports returns, for every package of the module (its non-test Go files, whatever their
// build tags), the packages of the module it imports.
func moduleImports(root string) (map[string][]string, error) {
	imports := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
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
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := module + "/" + filepath.ToSlash(rel)
		if _, ok := imports[pkg]; !ok {
			imports[pkg] = nil
		}
		for _, spec := range f.Imports {
			dep, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				return err
			}
			if strings.HasPrefix(dep, module+"/") && !slices.Contains(imports[pkg], dep) {
				imports[pkg] = append(imports[pkg], dep)
			}
		}
		return nil
	})
	return imports, err
}
