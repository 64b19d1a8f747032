//go:build integration

package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/artifact"
	"google.golang.org/adk/tool"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
)

// testADKAgentLoop proves the execute_code tool through ADK's real agent loop (llmagent and
// ADK's runner) on the local cluster: a scripted model asks for the tool call, the tool runs the
// code in a gVisor sandbox as the agent ServiceAccount, and the model answers with the output.
func testADKAgentLoop(t *testing.T, c *cluster) {
	r := c.agentRunner(t, runner.Options{Timeout: 5 * time.Second})
	cases := []struct {
		name   string
		args   map[string]any
		status string
		check  func(t *testing.T, answer string, resp map[string]any, saved []string)
	}{
		{
			name: "computes, reads input, writes output",
			args: map[string]any{
				"code": "import platform\nrows = open('data/nums.txt').read().split()\nprint(sum(map(int, rows)))\n" +
					"open('output/report.txt', 'w').write('rows=%d' % len(rows))\nprint(platform.python_version())",
				"files": []any{map[string]any{"name": "data/nums.txt", "content": "1 2 3 36"}},
			},
			status: adktool.StatusOK,
			check: func(t *testing.T, answer string, resp map[string]any, saved []string) {
				if !strings.HasPrefix(answer, "42\n3.11") {
					t.Errorf("answer %q, want the sandbox's stdout (42, then Python 3.11)", answer)
				}
				files, _ := resp["files"].([]any)
				if len(files) != 1 || files[0].(map[string]any)["content"] != "rows=4" {
					t.Errorf("files %v, want report.txt with rows=4", resp["files"])
				}
				if len(saved) != 1 || saved[0] != "report.txt" {
					t.Errorf("artifacts %v, want report.txt", saved)
				}
				if resp["total_seconds"].(float64) <= 0 || resp["execution_id"] == "" {
					t.Errorf("timing/id missing: %v", resp)
				}
			},
		},
		{
			name:   "a traceback is a result",
			args:   map[string]any{"code": "def f(:\n  pass"},
			status: adktool.StatusError,
			check: func(t *testing.T, answer string, resp map[string]any, _ []string) {
				if !strings.Contains(fmt.Sprint(resp["stderr"]), "SyntaxError") || resp["exit_code"] != 1.0 {
					t.Errorf("stderr %q exit %v, want a SyntaxError and exit 1", resp["stderr"], resp["exit_code"])
				}
				if !strings.Contains(answer, "SyntaxError") {
					t.Errorf("the model did not get the traceback: %q", answer)
				}
			},
		},
		{
			name:   "a timeout is a result",
			args:   map[string]any{"code": "import time\nprint('tick', flush=True)\ntime.sleep(60)"},
			status: adktool.StatusTimeout,
			check: func(t *testing.T, _ string, resp map[string]any, _ []string) {
				if resp["stdout"] != "tick\n" {
					t.Errorf("stdout %q, want what was printed before the kill", resp["stdout"])
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			execTool, err := adktool.New(adktool.Config{Executor: r, Timeout: r.Options().Timeout, SaveArtifacts: true})
			if err != nil {
				t.Fatal(err)
			}
			m := &adktooltest.Model{Args: func(string) map[string]any { return tc.args }}
			a, err := llmagent.New(llmagent.Config{Name: "coder", Model: m, Tools: []tool.Tool{execTool},
				Instruction: "Answer by running Python."})
			if err != nil {
				t.Fatal(err)
			}
			arts := artifact.InMemoryService()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			tr, err := adktooltest.Ask(ctx, a, arts, "please run it")
			if err != nil {
				t.Fatalf("agent loop: %v", err)
			}
			if len(tr.Calls) != 1 || len(tr.Responses) != 1 {
				t.Fatalf("%d calls, %d responses; want one of each", len(tr.Calls), len(tr.Responses))
			}
			resp := tr.Responses[0]
			if e, failed := resp["error"]; failed {
				t.Fatalf("the tool failed: %v", e)
			}
			if resp["status"] != tc.status {
				t.Errorf("status %v, want %s (response %v)", resp["status"], tc.status, resp)
			}
			keys, err := arts.List(ctx, &artifact.ListRequest{AppName: "adktooltest", UserID: "user", SessionID: "session"})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, tr.Answer, resp, keys.FileNames)
			if n := len(m.Requests()); n != 2 {
				t.Errorf("the model was called %d times, want 2 (the call, then the answer)", n)
			}
		})
	}
}
