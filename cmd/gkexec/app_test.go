package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gkexec/gkexec/runner"
)

func TestExitCodesAreDistinctFromTheCodes(t *testing.T) {
	t.Parallel()
	cases := map[error]int{
		runner.ErrInvalidOptions:    exitUsage,
		runner.ErrInvalidRequest:    exitUsage,
		runner.ErrTimeout:           exitTimeout,
		runner.ErrForbidden:         exitRunner,
		runner.ErrCluster:           exitRunner,
		runner.ErrSandboxFailed:     exitRunner,
		runner.ErrImagePull:         exitCannotStart,
		runner.ErrRuntimeClass:      exitCannotStart,
		runner.ErrUnschedulable:     exitCannotStart,
		runner.ErrQuotaExceeded:     exitCannotStart,
		runner.ErrNamespaceNotFound: exitCannotStart,
		runner.ErrCanceled:          exitInterrupted,
	}
	for sentinel, want := range cases {
		if got := exitCodeFor(fmt.Errorf("wrapped: %w", sentinel)); got != want {
			t.Errorf("%v -> %d, want %d", sentinel, got, want)
		}
	}
}

func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := newApp(strings.NewReader(stdin), &out, &errOut)
	code := runApp(context.Background(), app, append([]string{"gkexec"}, args...))
	return code, out.String(), errOut.String()
}

// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestRunRejectsBadInputBeforeContactingACluster(t *testing.T) {
	// An unreachable kubeconfig proves nothing was contacted: a call would fail differently.
	cases := map[string][]string{
		"code twice":        {"run", "-c", "print(1)", "file.py"},
		"bad quantity":      {"run", "--kubeconfig", "/nonexistent", "--cpu-limit", "lots", "-c", "x"},
		"request > limit":   {"run", "--kubeconfig", "/nonexistent", "--memory-request", "2Gi", "-c", "x"},
		"missing input":     {"run", "--input", "/nonexistent/data.csv", "-c", "x"},
		"bad node selector": {"run", "--node-selector", "novalue", "-c", "x"},
		"zero timeout":      {"run", "--timeout", "0s", "-c", "x"},
		"unknown flag":      {"run", "--no-such-flag"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, "", args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr: %s", code, exitUsage, stderr)
			}
			if !strings.Contains(stderr, "gkexec:") && !strings.Contains(stderr, "Incorrect Usage") {
				t.Errorf("no error message on stderr: %q", stderr)
			}
		})
	}
}

func TestReadInputsNamesFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "data.csv")
	if err := os.WriteFile(p, []byte("a,b"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := readInputs([]string{p, "renamed/x.csv=" + p})
	if err != nil {
		t.Fatal(err)
	}
	if string(files["data.csv"]) != "a,b" || string(files["renamed/x.csv"]) != "a,b" {
		t.Errorf("files = %v", files)
	}
	if _, err := readInputs([]string{p, p}); err == nil {
		t.Error("two inputs with one name must be refused")
	}
}

func TestSaveFilesStaysInsideAndLeavesNoPartialFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	err := saveFiles(dir, []runner.File{
		{Path: "a/b.txt", Data: []byte("ok")},
		{Path: "../escape.txt", Data: []byte("no")},
	})
	if err == nil || !strings.Contains(err.Error(), "leaves the output directory") {
		t.Errorf("error = %v, want the escaping path refused", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a", "b.txt")); string(b) != "ok" {
		t.Errorf("a/b.txt = %q", b)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "escape.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a file was written outside the output directory")
	}
	var partial []string
	_ = filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error {
		if strings.HasSuffix(p, ".gkexec-partial") {
			partial = append(partial, p)
		}
		return nil
	})
	if len(partial) != 0 {
		t.Errorf("partial files left: %v", partial)
	}
}

func TestTolerationsParseKubectlTaintSyntax(t *testing.T) {
	t.Parallel()
	got, err := tolerations([]string{"pool=ai:NoSchedule", "dedicated:NoExecute"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "pool" || got[0].Value != "ai" || got[0].Operator != "Equal" ||
		got[1].Key != "dedicated" || got[1].Operator != "Exists" || got[1].Effect != "NoExecute" {
		t.Errorf("tolerations = %+v", got)
	}
	for _, bad := range []string{"pool=ai", "pool=ai:Sometimes", ":NoSchedule"} {
		if _, err := tolerations([]string{bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
