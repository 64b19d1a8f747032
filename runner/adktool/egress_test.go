package adktool_test

import (
	"reflect"
	"testing"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
)

// Config.AllowDomains narrows the egress of every sandbox the tool runs code in: each call's
// (stateless) or the sessions it opens (stateful), never a session's single executions.
func TestAllowDomainsNarrowTheToolsSandboxes(t *testing.T) {
	t.Parallel()
	domains := []string{"pypi.org", "*.pythonhosted.org"}
	ex := &stubExecutor{res: runner.Result{Stdout: []byte("ok\n")}}
	m := &adktooltest.Model{Args: func(string) map[string]any { return map[string]any{"code": "print('ok')"} }}
	ask(t, adktool.Config{Executor: ex, AllowDomains: domains}, m, nil, "go")
	if len(ex.reqs) != 1 || !reflect.DeepEqual(ex.reqs[0].AllowDomains, domains) {
		t.Errorf("stateless requests %+v, want one narrowed to %v", ex.reqs, domains)
	}

	fs := newFakeSessions()
	chat := &adktooltest.Conversation{Agent: statefulAgent(t, adktool.Config{Sessions: fs, AllowDomains: domains})}
	askOnce(t, chat, "x = 1")
	if len(fs.opened) != 1 || !reflect.DeepEqual(fs.opened[0].AllowDomains, domains) {
		t.Errorf("sessions opened %+v, want one narrowed to %v", fs.opened, domains)
	}
}
