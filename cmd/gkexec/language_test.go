package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/fakecluster"
)

// The code's language comes from --language, else from FILE's extension, else it is Python: the
// sandbox gets the code under its language's file name. An unknown name is a usage error before
// anything is created.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestRunTakesTheLanguageFromTheFlagOrTheFile(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"job.sh", "report.JS", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		args []string
		file string // the code's file in the ConfigMap
	}{
		{[]string{"-c", "print(1)"}, "main.py"},
		{[]string{"-l", "bash", "-c", "echo 1"}, "main.sh"},
		{[]string{"--language", "javascript", "-c", "console.log(1)"}, "main.js"},
		{[]string{filepath.Join(dir, "job.sh")}, "main.sh"},
		{[]string{filepath.Join(dir, "report.JS")}, "main.js"},
		{[]string{filepath.Join(dir, "notes.txt")}, "main.py"},
		{[]string{"-l", "python", filepath.Join(dir, "job.sh")}, "main.py"},
	} {
		fc := fakecluster.New(t, fakecluster.Scenario{Steps: sandboxRuns, Log: endOK(new(fakecluster.Log), 0)})
		var mu sync.Mutex
		var keys []string
		fc.Client.PrependReactor("create", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
			mu.Lock()
			defer mu.Unlock()
			for k := range a.(k8stesting.CreateAction).GetObject().(*corev1.ConfigMap).Data {
				keys = append(keys, k)
			}
			return false, nil, nil
		})
		if code, tr := runOn(t, fc, tc.args...); code != 0 {
			_, _, stderr := tr.snapshot()
			t.Errorf("%q: exit %d: %s", tc.args, code, stderr)
			continue
		}
		mu.Lock()
		if !slices.Contains(keys, tc.file) {
			t.Errorf("%q: the ConfigMap holds %v, want the code as %s", tc.args, keys, tc.file)
		}
		mu.Unlock()
	}

	fc := fakecluster.New(t, fakecluster.Scenario{Steps: sandboxRuns})
	code, tr := runOn(t, fc, "-l", "ruby", "-c", "puts 1")
	_, _, stderr := tr.snapshot()
	if code != exitUsage || !strings.Contains(stderr, "bash, javascript, python") {
		t.Errorf("an unknown language: exit %d stderr %q, want a usage error naming the languages", code, stderr)
	}
	if created := fc.Created(); len(created) != 0 {
		t.Errorf("an unknown language created %v", created)
	}
}

// session open passes --language on as the session's; session exec passes the code's language
// (flag, else FILE's extension, else none: the session's).
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionCommandsPassTheLanguageOn(t *testing.T) {
	fs := &fakeSessions{s: &fakeSession{id: "s1"}}
	if code, _, stderr := onFake(t, fs, "", "open", "--language", "bash"); code != 0 || len(fs.opened) != 1 || fs.opened[0].Language != "bash" {
		t.Errorf("open: exit %d stderr %q opened %+v, want a bash session", code, stderr, fs.opened)
	}
	script := filepath.Join(t.TempDir(), "step.sh")
	if err := os.WriteFile(script, []byte("echo $x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"exec", "-c", "echo 1", "s1"}, ""},
		{[]string{"exec", "s1", script}, "bash"},
		{[]string{"exec", "-l", "javascript", "-c", "1", "s1"}, "javascript"},
	} {
		s := &fakeSession{id: "s1"}
		if code, _, stderr := onFake(t, &fakeSessions{s: s}, "", tc.args...); code != 0 || len(s.reqs) != 1 || s.reqs[0].Language != tc.want {
			t.Errorf("%q: exit %d stderr %q, want one request in %q", tc.args, code, stderr, tc.want)
		}
	}
	code, _, stderr := onFake(t, &fakeSessions{s: &fakeSession{id: "s1"}}, "", "open", "-l", "perl")
	if code != exitUsage || !strings.Contains(stderr, "perl") {
		t.Errorf("open -l perl: exit %d stderr %q, want a usage error", code, stderr)
	}
}
