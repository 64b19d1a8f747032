package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gkexec/gkexec/runner/doctor"
)

func TestDoctorOutputSaysTheSmokeCheckDidNotRun(t *testing.T) {
	t.Parallel()
	checks := []doctor.Check{
		{Name: "RuntimeClass gvisor exists", Status: doctor.Warn, Detail: "cannot read RuntimeClasses", Fix: "run `gkexec doctor` with --smoke"},
		{Name: "API server reachable", Status: doctor.Pass, Detail: "Kubernetes v1.37.2", Fix: "never shown"},
	}
	var off, on bytes.Buffer
	printChecks(&off, checks, false)
	printChecks(&on, checks, true)
	want := "[warn] RuntimeClass gvisor exists: cannot read RuntimeClasses\n       fix: run `gkexec doctor` with --smoke\n" +
		"[ok]   API server reachable: Kubernetes v1.37.2\n"
	if on.String() != want {
		t.Errorf("with --smoke:\n%s\nwant\n%s", on.String(), want)
	}
	if skip := "[skip] smoke execution in the sandbox: not run (--smoke=false)"; !strings.HasPrefix(off.String(), want) || !strings.Contains(off.String(), skip) {
		t.Errorf("with --smoke=false:\n%s\nwant the checks and %q", off.String(), skip)
	}
}
