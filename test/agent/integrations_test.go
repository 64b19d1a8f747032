//go:build integration

package agent

import (
	"testing"
)

// TestAgentIntegrations stands up one namespace from manifests/ and runs every agent integration
// in it as the agent ServiceAccount, then checks that nothing the runner creates is left. The
// groups run in parallel, each with its own server or Pod; run one with
// -run 'TestAgentIntegrations/group/python_executor' (or E2E_RUN=... make e2e).
func TestAgentIntegrations(t *testing.T) {
	c := standUp(t)
	t.Run("group", func(t *testing.T) {
		t.Run("adk_go_agent_loop", func(t *testing.T) { t.Parallel(); testADKAgentLoop(t, c) })
		t.Run("adk_go_stateful_agent_loop", func(t *testing.T) { t.Parallel(); testADKStatefulLoop(t, c) })
		t.Run("serve", func(t *testing.T) { t.Parallel(); testServe(t, c) })
		t.Run("serve_sessions", func(t *testing.T) { t.Parallel(); testServeSessions(t, c) })
		t.Run("python_executor", func(t *testing.T) { t.Parallel(); testPythonExecutor(t, c) })
		t.Run("agent_pod", func(t *testing.T) { t.Parallel(); testAgentPod(t, c) })
		t.Run("mcp_stdio", func(t *testing.T) { t.Parallel(); testMCPStdio(t, c) })
		t.Run("mcp_http", func(t *testing.T) { t.Parallel(); testMCPHTTP(t, c) })
		t.Run("mcp_typescript_client", func(t *testing.T) { t.Parallel(); testMCPTypeScriptClient(t, c) })
	})
	t.Run("nothing_leaked", c.assertNothingLeaked)
}
