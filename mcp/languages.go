package mcp

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Language is a language the sandbox runs code in, as the tools offer it.
type Language struct {
	// Name is the value of the tools' language argument.
	Name string `json:"name"`
	// Description tells the model what runs the code and what it has.
	Description string `json:"description"`
	// noop is a program that does nothing: upload_file runs it with the uploaded files as input.
	noop string
	// copyOut is a program that copies the workspace file at rel (relative to the working
	// directory, already checked to stay inside it) to dst under output/, so that it comes back
	// as an output file; it exits non-zero, saying why on stderr, when it cannot.
	copyOut func(rel, dst string) string
}

// languages are what the sandbox runs, the default first. Only Python today: the runner runs
// every program with the image's python3. A language added here (with the runner's support for
// it) is in every tool's enum, description and answer.
var languages = []Language{python}

var python = Language{
	Name:        "python",
	Description: "Python 3, the sandbox image's python3, running the code as main.py in the working directory",
	noop:        "pass\n",
	copyOut: func(rel, dst string) string {
		return fmt.Sprintf(`import os, shutil, sys
root = os.path.realpath(os.getcwd())
src = os.path.realpath(%[1]s)
if os.path.commonpath([root, src]) != root:
    sys.exit(%[1]s + " resolves to " + src + ", outside the workspace")
if not os.path.isfile(src):
    sys.exit("no such file in the workspace: " + %[1]s)
shutil.rmtree(%[2]s, ignore_errors=True)
os.makedirs(%[2]s)
shutil.copyfile(src, os.path.join(%[2]s, os.path.basename(src)))
`, pyString(rel), pyString(dst))
	},
}

// pyString is s as a Python string literal (a JSON string is one).
func pyString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// languageNames are the values of the language enum.
func languageNames() []any {
	names := make([]any, len(languages))
	for i, l := range languages {
		names[i] = l.Name
	}
	return names
}

// languageFor is the named language; empty names the default.
func languageFor(name string) (Language, bool) {
	if name == "" {
		return languages[0], true
	}
	i := slices.IndexFunc(languages, func(l Language) bool { return l.Name == name })
	if i < 0 {
		return Language{}, false
	}
	return languages[i], true
}
