package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

const flagLanguage = "language"

// languageFlag is --language for run and session exec (the code's) and session open (the
// session's interpreter's).
func languageFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: flagLanguage, Aliases: []string{"l"},
		Usage: fmt.Sprintf("%s: %s", usage, strings.Join(runner.Languages(), ", "))}
}

// extensions name the language of a code FILE without --language.
var extensions = map[string]string{
	".py": "python", ".sh": "bash", ".bash": "bash", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript",
}

// codeLanguage is the code's language: --language, else FILE's extension, else "" (the runner's
// default, Python; in a session, the session's language). A name the runner does not know is a
// usage error here, before anything is contacted.
func codeLanguage(c *cli.Context, file string) (string, error) {
	if c.IsSet(flagLanguage) {
		lang := c.String(flagLanguage)
		if err := checkLanguage(lang); err != nil {
			return "", err
		}
		return lang, nil
	}
	if file == "" || file == "-" {
		return "", nil
	}
	return extensions[strings.ToLower(filepath.Ext(file))], nil
}

func checkLanguage(lang string) error {
	for _, known := range runner.Languages() {
		if lang == known {
			return nil
		}
	}
	return usageError("--%s %q: gkexec runs %s", flagLanguage, lang, strings.Join(runner.Languages(), ", "))
}
