package runner

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gkexec/gkexec/internal/wire/wiretest"
)

func TestExecuteRunsTheRequestsLanguage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ lang, code string }{
		{"bash", "echo $((6 * 7)); echo err >&2; exit 3"},
		{"javascript", "console.log(6 * 7); console.error('err'); process.exit(3)"},
		{"python", "import sys\nprint(6 * 7); print('err', file=sys.stderr); sys.exit(3)"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			o := Options{Namespace: "sandbox"}
			fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
			r := warmRunner(t, fc, o, wiretest.NewPod(t).Attach)
			res, err := r.Execute(context.Background(), Request{Code: tc.code, Language: tc.lang})
			if err != nil || string(res.Stdout) != "42\n" || string(res.Stderr) != "err\n" || res.ExitCode != 3 || res.Sandbox != SandboxWarm {
				t.Errorf("%v: stdout %q stderr %q exit %d sandbox %s", err, res.Stdout, res.Stderr, res.ExitCode, res.Sandbox)
			}
		})
	}
}

func TestAnUnknownLanguageIsRefusedBeforeAnything(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{})
	r := fc.runner(o)
	ctx := context.Background()
	if _, err := r.Execute(ctx, Request{Code: "x", Language: "cobol"}); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "bash, javascript, python") {
		t.Errorf("Execute: %v, want ErrInvalidRequest naming the languages", err)
	}
	if _, err := r.OpenSession(ctx, SessionOptions{Language: "Python"}); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("OpenSession: %v, want ErrInvalidRequest", err)
	}
	if created := fc.Created(); len(created) != 0 {
		t.Errorf("a refused language created %v", created)
	}
}

// A session runs in its language: empty in a request means the session's, another is refused
// and the session goes on.
func TestASessionRunsInItsLanguage(t *testing.T) {
	t.Parallel()
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, wiretest.NewPod(t).Attach)
	ctx := context.Background()
	s, err := r.OpenSession(ctx, SessionOptions{ID: "js", Language: "javascript"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Execute(ctx, Request{Code: "let x = 41"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Execute(ctx, Request{Code: "print(x)", Language: "python"}); !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "javascript session") {
		t.Errorf("a python request: %v, want ErrInvalidRequest", err)
	}
	if res, err := s.Execute(ctx, Request{Code: "console.log(x + 1)", Language: "javascript"}); err != nil || string(res.Stdout) != "42\n" {
		t.Errorf("%v: stdout %q stderr %q", err, res.Stdout, res.Stderr)
	}
	// Another process that resumes the session learns its language from its sandbox.
	resumed, err := warmRunner(t, fc, o, wiretest.NewPod(t).Attach).Session(ctx, "js")
	if err != nil || resumed.Language() != "javascript" || s.Language() != "javascript" {
		t.Errorf("resumed: %v, language %q (the opener's: %q); want javascript", err, resumed.Language(), s.Language())
	}
}

// A sandbox whose image lacks the session's interpreter refuses to open it: the caller learns
// which program is missing, and nothing is left behind.
func TestASessionInALanguageTheImageLacksIsRefused(t *testing.T) {
	t.Parallel()
	bashOnly := t.TempDir()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(bash, filepath.Join(bashOnly, "bash")); err != nil {
		t.Fatal(err)
	}
	o := Options{Namespace: "sandbox"}
	fc := newFakeCluster(t, scenario{}, poolPod(t, o, "pool-a", time.Minute))
	r := warmRunner(t, fc, o, wiretest.NewPod(t, "PATH="+bashOnly).Attach)
	_, err = r.OpenSession(context.Background(), SessionOptions{ID: "js", Language: "javascript"})
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "no node on its PATH") {
		t.Fatalf("OpenSession: %v, want ErrInvalidRequest naming node", err)
	}
	if left := fc.leftovers(); len(left) != 0 {
		t.Errorf("the refused session left %v", left)
	}
}
