// Package docs holds the checks that keep the repository's Markdown true to the tree: every
// relative link names a file or folder that exists, and every #fragment a heading of the page it
// points at, so that a renamed file or section cannot leave a dead link behind in a README.
package docs

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestRelativeLinksResolve checks every Markdown file of the module.
func TestRelativeLinksResolve(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not at %s: %v", root, err)
	}
	pages, links, broken, err := checkTree(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range broken {
		t.Error(b)
	}
	// A walk that finds nothing would pass while checking nothing.
	if pages < 20 || links < 100 {
		t.Fatalf("checked %d links in %d Markdown files under %s: the walk is missing the tree", links, pages, root)
	}
}

// TestCheckerFindsBrokenLinks proves the checker fails on what it is meant to catch, on a tree of
// its own: a missing file, a missing folder, a missing heading (in the page itself, in another
// page and in a folder's README), while the good links of the same tree pass.
func TestCheckerFindsBrokenLinks(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	write := func(rel, text string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mod/README.md", "# The module\n\n## What it admits\n\n## Inputs\n")
	write("docs/guide.md", "# Guide\n\n## Sessions\n\n### Sessions\n\n## `gkexec pool autoscale`: sizing\n")
	write("README.md", strings.Join([]string{
		"# Top",
		"good: [guide](docs/guide.md), [dir](mod), [dir anchor](mod#what-it-admits), [file anchor](mod/README.md#inputs)",
		"good: [second heading](docs/guide.md#sessions-1), [code heading](docs/guide.md#gkexec-pool-autoscale-sizing), [self](#top)",
		"good: [web](https://example.com/nothere.md), [mail](mailto:a@example.com)",
		"bad: [missing file](docs/gone.md)",
		"bad: [missing dir](manifests/overlays/none)",
		"bad: [missing anchor](docs/guide.md#nothing)",
		"bad: [missing dir anchor](mod#outputs)",
		"bad: [missing self anchor](#bottom)",
		"```sh",
		"ignored: [in a code block](not/there.md)",
		"```",
		"ignored: `[in a code span](not/there.md)`",
	}, "\n"))
	pages, links, broken, err := checkTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if pages != 3 {
		t.Errorf("checked %d pages, want 3", pages)
	}
	want := []string{
		"README.md:5: docs/gone.md: no such file or folder",
		"README.md:6: manifests/overlays/none: no such file or folder",
		"README.md:7: docs/guide.md#nothing: docs/guide.md has no heading #nothing",
		"README.md:8: mod#outputs: mod/README.md has no heading #outputs",
		"README.md:9: #bottom: README.md has no heading #bottom",
	}
	if strings.Join(broken, "\n") != strings.Join(want, "\n") {
		t.Errorf("broken links:\n%s\nwant:\n%s", strings.Join(broken, "\n"), strings.Join(want, "\n"))
	}
	if links != 12 {
		t.Errorf("checked %d relative links, want 12", links)
	}
}

var (
	// linkRE matches an inline link or image's target: ](target) or ](target "title").
	linkRE = regexp.MustCompile(`\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)`)
	// codeSpanRE matches an inline code span, whose brackets are text, not links.
	codeSpanRE = regexp.MustCompile("`[^`]*`")
	// schemeRE recognises an absolute URL (https:, mailto:, ...), which this test leaves alone.
	schemeRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// checkTree walks root's Markdown files (skipping hidden folders, bin/, node_modules and
// underscores) and returns how many pages and relative links it checked and each broken link as
// "page:line: target: why".
func checkTree(root string) (pages, links int, broken []string, err error) {
	anchors := map[string]map[string]bool{} // page → its heading slugs, read once
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "bin" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".md") {
			return nil
		}
		pages++
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		for _, l := range pageLinks(string(text)) {
			links++
			if why := resolve(root, path, l.target, anchors); why != "" {
				broken = append(broken, fmt.Sprintf("%s:%d: %s: %s", filepath.ToSlash(rel), l.line, l.target, why))
			}
		}
		return nil
	})
	return pages, links, broken, err
}

type link struct {
	line   int
	target string
}

// pageLinks returns the relative link targets of a Markdown page, outside code blocks and spans.
func pageLinks(text string) []link {
	var out []link
	fence := ""
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		line = codeSpanRE.ReplaceAllString(line, "")
		for _, m := range linkRE.FindAllStringSubmatch(line, -1) {
			if schemeRE.MatchString(m[1]) {
				continue
			}
			out = append(out, link{line: i + 1, target: m[1]})
		}
	}
	return out
}

// resolve says why target, linked from page, leads nowhere; "" when it resolves. A folder stands
// for its README.md, as GitHub renders it.
func resolve(root, page, target string, anchors map[string]map[string]bool) string {
	file, fragment, _ := strings.Cut(target, "#")
	dest := page
	if file != "" {
		if strings.HasPrefix(file, "/") {
			dest = filepath.Join(root, filepath.FromSlash(file))
		} else {
			dest = filepath.Join(filepath.Dir(page), filepath.FromSlash(file))
		}
		info, err := os.Stat(dest)
		if err != nil {
			return "no such file or folder"
		}
		if info.IsDir() {
			dest = filepath.Join(dest, "README.md")
		}
	}
	if fragment == "" {
		return ""
	}
	if !strings.HasSuffix(dest, ".md") {
		return "" // a line anchor (#L10) or the like in a source file: GitHub's, not a heading
	}
	slugs, ok := anchors[dest]
	if !ok {
		text, err := os.ReadFile(dest)
		if err != nil {
			return fmt.Sprintf("cannot read %s for #%s: %v", dest, fragment, err)
		}
		slugs = headingSlugs(string(text))
		anchors[dest] = slugs
	}
	if !slugs[fragment] {
		rel, _ := filepath.Rel(root, dest)
		return fmt.Sprintf("%s has no heading #%s", filepath.ToSlash(rel), fragment)
	}
	return ""
}

var (
	headingRE    = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`)
	inlineLinkRE = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
)

// headingSlugs returns the anchors GitHub gives a page's headings: lower case, punctuation but
// hyphens and underscores dropped, spaces as hyphens, and -1, -2, ... after a repeated one.
func headingSlugs(text string) map[string]bool {
	slugs := map[string]bool{}
	seen := map[string]int{}
	fence := ""
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if fence != "" {
			if strings.HasPrefix(trimmed, fence) {
				fence = ""
			}
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			fence = trimmed[:3]
			continue
		}
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		slug := slugify(inlineLinkRE.ReplaceAllString(m[1], "$1"))
		if n := seen[slug]; n > 0 {
			slugs[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			slugs[slug] = true
		}
		seen[slug]++
	}
	return slugs
}

func slugify(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)):
			b.WriteRune(r)
		}
	}
	return b.String()
}
