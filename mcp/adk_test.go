package mcp

import (
	"context"
	"fmt"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/tool"
	"google.golang.org/adk/tool/mcptoolset"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
)

// ADK for Go's MCP toolset takes the server's tools into ADK's real agent loop: it turns their
// schemas into the model's function declarations, and a scripted model (adktooltest) calls
// run_code and answers with its output.
func TestADKMCPToolsetRunsCode(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	c.warmPod("pool-a")
	s, err := New(Options{Runner: c.run})
	if err != nil {
		t.Fatal(err)
	}
	st, ct := sdk.NewInMemoryTransports()
	ss, err := s.MCP().Connect(context.Background(), st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ss.Close() })
	toolset, err := mcptoolset.New(mcptoolset.Config{Transport: ct})
	if err != nil {
		t.Fatal(err)
	}
	m := &adktooltest.Model{ToolName: ToolRunCode, Answer: func(resp map[string]any) string {
		out, _ := resp["output"].(map[string]any)
		return fmt.Sprint(out["status"], " ", out["stdout"])
	}}
	a, err := llmagent.New(llmagent.Config{Name: "coder", Model: m, Toolsets: []tool.Toolset{toolset}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := adktooltest.Ask(context.Background(), a, nil, "print(6 * 7)")
	if err != nil {
		t.Fatal(err)
	}
	if tr.Answer != "ok 42\n" {
		t.Errorf("answer %q, want the sandbox's ok 42", tr.Answer)
	}
	reqs := m.Requests()
	if len(reqs) == 0 || reqs[0].Tools[ToolRunCode] == nil || reqs[0].Tools[ToolDescribeSandbox] == nil {
		t.Fatalf("the model was not offered the server's tools")
	}
	var declared bool
	for _, tl := range reqs[0].Config.Tools {
		for _, fd := range tl.FunctionDeclarations {
			if fd.Name == ToolRunCode && fd.ParametersJsonSchema != nil {
				declared = true
			}
		}
	}
	if !declared {
		t.Error("run_code has no function declaration with its parameters for the model")
	}
}
