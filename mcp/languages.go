package mcp

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/gkexec/gkexec/runner"
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

// languages are what the sandbox runs (runner.Languages), the default first. A language added
// here is in every tool's enum, description and answer; TestTheToolsOfferTheRunnersLanguages keeps
// the table and the runner in step.
var languages = []Language{python, bash, javascript}

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

var bash = Language{
	Name: "bash",
	Description: "Bash, the sandbox image's bash (--noprofile --norc), running the code as main.sh in the working directory; " +
		"in a session one shell keeps its working directory, variables, exports and functions (end a call early with return N, not exit, which ends the session)",
	noop: ":\n",
	copyOut: func(rel, dst string) string {
		// A subshell: the session's shell keeps its working directory (the code may have cd'd
		// elsewhere: the path is the workspace's), and exit ends only this.
		return fmt.Sprintf(`(
root=$(realpath -e -- "${GKEXEC_WORKDIR:-%[3]s}") && cd "$root" || exit 1
src=$(realpath -e -- %[1]s 2>/dev/null) || { echo "no such file in the workspace: "%[1]s >&2; exit 1; }
case "$src" in "$root"/*) ;; *) echo %[1]s" resolves to $src, outside the workspace" >&2; exit 1 ;; esac
[ -f "$src" ] || { echo "no such file in the workspace: "%[1]s >&2; exit 1; }
rm -rf -- %[2]s && mkdir -p -- %[2]s && cp -- "$src" %[2]s/
)
`, shString(rel), shString(dst), shString(runner.WorkDir))
	},
}

var javascript = Language{
	Name: "javascript",
	Description: "JavaScript on the sandbox image's Node.js (node), running the code as main.js in the working directory; " +
		"in a session one V8 context keeps its global bindings (declare a name once: a second top-level let of it is a SyntaxError)",
	noop: "undefined;\n",
	copyOut: func(rel, dst string) string {
		return fmt.Sprintf(`{
const fs = require('fs'), path = require('path');
const root = fs.realpathSync(process.env.GKEXEC_WORKDIR || %[3]s);
let src;
try { src = fs.realpathSync(path.resolve(root, %[1]s)); } catch (e) { console.error('no such file in the workspace: ' + %[1]s); process.exit(1); }
if (src !== root && !src.startsWith(root + path.sep)) { console.error(%[1]s + ' resolves to ' + src + ', outside the workspace'); process.exit(1); }
if (!fs.statSync(src).isFile()) { console.error('no such file in the workspace: ' + %[1]s); process.exit(1); }
const dst = path.resolve(root, %[2]s);
fs.rmSync(dst, { recursive: true, force: true });
fs.mkdirSync(dst, { recursive: true });
fs.copyFileSync(src, path.join(dst, path.basename(src)));
}
`, pyString(rel), pyString(dst), pyString(runner.WorkDir))
	},
}

// shString is s as one shell word, single-quoted.
func shString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
