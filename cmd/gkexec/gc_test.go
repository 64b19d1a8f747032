package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/gc"
)

// gc prints as deleted only what it deleted, names what it could not delete and why, and exits
// non-zero when anything is left.
func TestGCReportsExactlyWhatItDeleted(t *testing.T) {
	t.Parallel()
	denied := fmt.Errorf("%w: delete jobs sb/gkexec-b: the runner's identity lacks verb \"delete\"", runner.ErrForbidden)
	found := []gc.Leftover{
		{Kind: "Job", Name: "gkexec-a", Age: time.Hour, Deleted: true},
		{Kind: "ConfigMap", Name: "gkexec-a", Age: time.Hour, Deleted: true},
		{Kind: "Job", Name: "gkexec-b", Age: time.Hour, Err: denied},
		{Kind: "ConfigMap", Name: "gkexec-b", Age: time.Hour, Gone: true},
	}
	var stdout, stderr bytes.Buffer
	err := reportGC(&stdout, &stderr, "sb", found, errors.Join(denied), false, time.Minute)

	wantOut := "deleted sb/gkexec-a Job (age 1h0m0s)\ndeleted sb/gkexec-a ConfigMap (age 1h0m0s)\n" +
		"already gone sb/gkexec-b ConfigMap (age 1h0m0s)\n"
	if stdout.String() != wantOut {
		t.Errorf("stdout\n%s\nwant\n%s", stdout.String(), wantOut)
	}
	var exit cli.ExitCoder
	if !errors.As(err, &exit) || exit.ExitCode() != exitRunner {
		t.Fatalf("err %v, want an exit with code %d", err, exitRunner)
	}
	if want := "not deleted: sb/gkexec-b Job (age 1h0m0s): " + denied.Error() + "\n"; stderr.String() != want {
		t.Errorf("stderr %q, want %q", stderr.String(), want)
	}
	if want := "2 deleted, 1 already gone, 1 not deleted (still there, see above)"; err.Error() != want {
		t.Errorf("error %q, want %q", err.Error(), want)
	}
}

// A list that failed is named in the error: nothing above mentions it.
func TestGCNamesAFailedList(t *testing.T) {
	t.Parallel()
	listErr := fmt.Errorf("%w: list jobs in namespace sb: denied", runner.ErrForbidden)
	var stdout, stderr bytes.Buffer
	err := reportGC(&stdout, &stderr, "sb", []gc.Leftover{{Kind: "ConfigMap", Name: "gkexec-a", Deleted: true}}, errors.Join(listErr), false, time.Minute)
	var exit cli.ExitCoder
	if !errors.As(err, &exit) || exit.ExitCode() != exitRunner || err.Error() != "1 deleted, 0 already gone, 0 not deleted (still there, see above)\n"+listErr.Error() {
		t.Errorf("err %q, want the summary and the list's error, exit %d", err, exitRunner)
	}
}

func TestGCDryRunAndNothingToDo(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := reportGC(&stdout, &stderr, "sb", []gc.Leftover{{Kind: "Job", Name: "gkexec-a", Age: time.Hour}}, nil, true, time.Minute)
	if err != nil || stdout.String() != "would delete sb/gkexec-a Job (age 1h0m0s)\n" {
		t.Errorf("dry run: stdout %q err %v", stdout.String(), err)
	}
	stdout.Reset()
	if err := reportGC(&stdout, &stderr, "sb", nil, nil, false, time.Minute); err != nil || stdout.Len() != 0 ||
		!strings.Contains(stderr.String(), "nothing older than 1m0s in namespace sb") {
		t.Errorf("nothing found: stdout %q stderr %q err %v", stdout.String(), stderr.String(), err)
	}
}
