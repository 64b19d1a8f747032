//go:build integration

package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
	"github.com/gkexec/gkexec/server"
)

// sessionRequest sends method path with an optional JSON body (and Accept, if not empty) to p.
// It never stops the test.
func (p *serveProcess) sessionRequest(t *testing.T, method, path string, v any) reply {
	t.Helper()
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return reply{status: -1, raw: []byte(err.Error())}
		}
	}
	req, err := http.NewRequest(method, p.url+path, bytes.NewReader(body))
	if err != nil {
		return reply{status: -1, raw: []byte(err.Error())}
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if v != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return do(t, req)
}

func sessionExecutions(id string) string { return server.PathSessions + "/" + id + "/executions" }

// ndjsonLine is one line of a streamed answer and when it arrived.
type ndjsonLine struct {
	doc     map[string]any
	arrived time.Time
}

// streamSession posts code to the session's executions with Accept: application/x-ndjson and
// reads the answer line by line as it arrives.
func (p *serveProcess) streamSession(t *testing.T, id, code string) (int, string, []ndjsonLine) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"code": code})
	req := mustRequest(t, http.MethodPost, p.url+sessionExecutions(id), body, "application/json", "Bearer "+p.token)
	req.Header.Set("Accept", "application/x-ndjson")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("streamed session execution: %v", err)
	}
	defer resp.Body.Close()
	var lines []ndjsonLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 8<<20)
	for sc.Scan() {
		l := ndjsonLine{arrived: time.Now()}
		if err := json.Unmarshal(sc.Bytes(), &l.doc); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), lines
}

// testServeSessions drives the session endpoints of a real `gkexec serve` as the agent: state
// persists between executions, a session execution streams, and a closed or unknown session is
// an error the caller can tell apart.
func testServeSessions(t *testing.T, c *cluster) {
	p := startServe(t, c, "--max-concurrent", "2", "--timeout", "20s")

	r := p.sessionRequest(t, http.MethodPost, server.PathSessions, map[string]any{"session_id": uniqueID("agent-sess")})
	if r.status != http.StatusCreated {
		t.Fatalf("POST %s: %d %s, want 201", server.PathSessions, r.status, r.raw)
	}
	id, _ := r.body["session_id"].(string)
	sandbox, _ := r.body["sandbox"].(string)
	if id == "" || (sandbox != "warm" && sandbox != "cold") || r.body["pod_name"] == "" ||
		r.header.Get("Location") != server.PathSessions+"/"+id {
		t.Fatalf("open: %s, Location %q", r.raw, r.header.Get("Location"))
	}
	t.Logf("session %s opened in %s (%s sandbox, pod %v)", id, r.took.Round(time.Millisecond), sandbox, r.body["pod_name"])
	closed := false
	t.Cleanup(func() {
		if !closed {
			p.sessionRequest(t, http.MethodDelete, server.PathSessions+"/"+id, nil)
		}
	})

	t.Run("state_persists", func(t *testing.T) {
		r := p.sessionRequest(t, http.MethodPost, sessionExecutions(id), map[string]any{"code": "x = 1"})
		if r.status != 200 || r.body["outcome"] != "success" || r.body["stdout"] != "" {
			t.Fatalf("x = 1: %d %s", r.status, r.raw)
		}
		r = p.sessionRequest(t, http.MethodPost, sessionExecutions(id), map[string]any{"code": "print(x)"})
		if r.status != 200 || r.body["stdout"] != "1\n" || r.body["exit_code"] != 0.0 {
			t.Errorf("print(x) after x = 1: %d %s, want stdout \"1\\n\"", r.status, r.raw)
		}
	})

	t.Run("streamed", func(t *testing.T) {
		status, ctype, lines := p.streamSession(t, id,
			"import time\nprint('before', flush=True)\ntime.sleep(2)\nx += 1\nprint(x)")
		if status != 200 || !strings.HasPrefix(ctype, "application/x-ndjson") {
			t.Fatalf("status %d Content-Type %q, want 200 application/x-ndjson", status, ctype)
		}
		if len(lines) < 2 || lines[len(lines)-1].doc["type"] != "result" {
			t.Fatalf("lines %v, want output lines then a result line", lines)
		}
		last := lines[len(lines)-1]
		res, _ := last.doc["result"].(map[string]any)
		if res["stdout"] != "before\n2\n" || res["outcome"] != "success" {
			t.Errorf("result %v, want stdout \"before\\n2\\n\" (x carried from the last execution)", res)
		}
		var out strings.Builder
		for _, l := range lines[:len(lines)-1] {
			if l.doc["type"] != "output" {
				t.Errorf("line before the result: %v", l.doc)
			}
			if l.doc["stream"] == "stdout" {
				out.WriteString(l.doc["data"].(string))
			}
		}
		if out.String() != "before\n2\n" {
			t.Errorf("streamed stdout %q, want \"before\\n2\\n\"", out.String())
		}
		first := lines[0]
		if d, _ := first.doc["data"].(string); first.doc["type"] != "output" || !strings.HasPrefix(d, "before") {
			t.Errorf("first line %v, want output starting \"before\"", first.doc)
		}
		if gap := last.arrived.Sub(first.arrived); gap < 1500*time.Millisecond {
			t.Errorf("the first output arrived %s before the result; want it while the code slept (2s)", gap)
		}
	})

	t.Run("unknown_session", func(t *testing.T) {
		unknown := uniqueID("no-such")
		r := p.sessionRequest(t, http.MethodPost, sessionExecutions(unknown), map[string]any{"code": "print(1)"})
		if r.status != http.StatusNotFound || r.errorCode() != server.CodeSessionNotFound {
			t.Errorf("execution in an unknown session: %d %s, want 404 %s", r.status, r.raw, server.CodeSessionNotFound)
		}
		r = p.sessionRequest(t, http.MethodDelete, server.PathSessions+"/"+unknown, nil)
		if r.status != http.StatusNotFound || r.errorCode() != server.CodeSessionNotFound {
			t.Errorf("DELETE an unknown session: %d %s, want 404 %s", r.status, r.raw, server.CodeSessionNotFound)
		}
	})

	t.Run("closed", func(t *testing.T) {
		r := p.sessionRequest(t, http.MethodDelete, server.PathSessions+"/"+id, nil)
		if r.status != http.StatusNoContent {
			t.Fatalf("DELETE: %d %s, want 204", r.status, r.raw)
		}
		closed = true
		r = p.sessionRequest(t, http.MethodPost, sessionExecutions(id), map[string]any{"code": "print(x)"})
		switch {
		case r.status == http.StatusGone && r.errorCode() == server.CodeSessionEnded:
		case r.status == http.StatusNotFound && r.errorCode() == server.CodeSessionNotFound:
		default:
			t.Errorf("execution after DELETE: %d %s, want 410 %s or 404 %s", r.status, r.raw, server.CodeSessionEnded, server.CodeSessionNotFound)
		}
		r = p.sessionRequest(t, http.MethodDelete, server.PathSessions+"/"+id, nil)
		if r.status != http.StatusNotFound && r.status != http.StatusGone {
			t.Errorf("second DELETE: %d %s, want 404 or 410", r.status, r.raw)
		}
	})
}

// testADKStatefulLoop proves the stateful execute_code tool (Config.Sessions = RunnerSessions)
// through ADK's real agent loop as the agent: two messages of one ADK session run in one gkexec
// session, so a variable set by the first call is there for the second; deleting the ADK session
// closes it.
func testADKStatefulLoop(t *testing.T, c *cluster) {
	r := c.agentRunner(t, runner.Options{Timeout: 20 * time.Second})
	sessions := adktool.RunnerSessions(r)
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	execTool, err := adktool.New(adktool.Config{Sessions: sessions, SessionSecret: secret, Timeout: r.Options().Timeout})
	if err != nil {
		t.Fatal(err)
	}
	m := &adktooltest.Model{} // runs each message as the program
	a, err := llmagent.New(llmagent.Config{Name: "coder", Model: m, Tools: []tool.Tool{execTool},
		Instruction: "Answer by running Python."})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := adktool.SessionService(session.InMemoryService(), sessions, secret)
	if err != nil {
		t.Fatal(err)
	}
	chat := &adktooltest.Conversation{Agent: a, Sessions: svc, SessionID: uniqueID("chat")}
	id, err := adktool.SessionID(secret, "adktooltest", "user", chat.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = r.CloseSession(ctx, id)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ask := func(message string) map[string]any {
		t.Helper()
		tr, err := chat.Ask(ctx, message)
		if err != nil {
			t.Fatalf("agent loop, %q: %v", message, err)
		}
		if len(tr.Calls) != 1 || len(tr.Responses) != 1 {
			t.Fatalf("%q: %d calls, %d responses; want one of each", message, len(tr.Calls), len(tr.Responses))
		}
		resp := tr.Responses[0]
		if e, failed := resp["error"]; failed {
			t.Fatalf("%q: the tool failed: %v", message, e)
		}
		return resp
	}
	if resp := ask("x = 41"); resp["status"] != adktool.StatusOK {
		t.Fatalf("x = 41: %v", resp)
	}
	resp := ask("print(x + 1)")
	if resp["status"] != adktool.StatusOK || resp["stdout"] != "42\n" || resp["message"] != nil {
		t.Errorf("print(x + 1) in the same ADK session: %v; want ok, stdout \"42\\n\", no note of a new session", resp)
	}
	if n := len(m.Requests()); n != 4 {
		t.Errorf("the model was called %d times, want 4 (a call and an answer per message)", n)
	}
	if _, err := r.Session(ctx, id); err != nil {
		t.Fatalf("gkexec session %s after two calls: %v; want it open", id, err)
	}

	if err := svc.Delete(ctx, &session.DeleteRequest{AppName: "adktooltest", UserID: "user", SessionID: chat.SessionID}); err != nil {
		t.Fatalf("deleting the ADK session: %v", err)
	}
	deleted = true
	s, err := r.Session(ctx, id)
	if err == nil {
		_, err = s.Execute(ctx, runner.Request{Code: "print(x)"})
	}
	if !errors.Is(err, runner.ErrSessionNotFound) && !errors.Is(err, runner.ErrSessionEnded) {
		t.Errorf("gkexec session %s after the ADK session was deleted: %v; want it not found or ended", id, err)
	}
}
