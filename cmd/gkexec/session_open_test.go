package main

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// open prints the ID (or the JSON document), passes the session's terms on, and leaves the
// session open: this process detaches from it.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestSessionOpenPrintsTheIDAndLeavesItOpen(t *testing.T) {
	fs := &fakeSessions{s: &fakeSession{id: "r4nd0m"}}
	code, stdout, stderr := onFake(t, fs, "", "open", "--idle-timeout", "30m", "--max-lifetime", "4h")
	if code != 0 || stdout != "r4nd0m\n" {
		t.Errorf("exit %d stdout %q stderr %q, want 0 and the ID on a line", code, stdout, stderr)
	}
	want := runner.SessionOptions{IdleTimeout: 30 * time.Minute, MaxLifetime: 4 * time.Hour}
	if len(fs.opened) != 1 || !reflect.DeepEqual(fs.opened[0], want) {
		t.Errorf("opened %+v, want %+v", fs.opened, want)
	}
	if _, closed, detached := fs.s.state(); closed != 0 || detached != 1 {
		t.Errorf("closed %d detached %d, want the session detached and left open", closed, detached)
	}

	code, stdout, _ = onFake(t, fs, "", "open", "--id", "mine", "--json")
	var doc map[string]string
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil || code != 0 {
		t.Fatalf("exit %d stdout %q: %v", code, stdout, err)
	}
	if doc["session_id"] != "mine" || doc["sandbox"] != "warm" || doc["pod_name"] != "pool-abc12" || len(doc) != 3 {
		t.Errorf("document %v", doc)
	}
}
