package mcp

import (
	"bytes"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/server"
)

// toolError is a tool error's structured form, from the JSON that follows its sentence.
func toolError(t *testing.T, res *sdk.CallToolResult) ToolError {
	t.Helper()
	if !res.IsError {
		t.Fatalf("not a tool error: %s", text(res))
	}
	var body struct{ Error ToolError }
	if len(res.Content) < 2 {
		t.Fatalf("tool error without its JSON: %s", text(res))
	}
	tc, _ := res.Content[1].(*sdk.TextContent)
	if tc == nil {
		t.Fatalf("tool error's second content is %T, want its JSON", res.Content[1])
	}
	if err := jsonUnmarshal(tc.Text, &body); err != nil {
		t.Fatalf("tool error JSON %s: %v", tc.Text, err)
	}
	return body.Error
}

func TestSessionKeepsStateAndMovesFiles(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	c.warmPod("pool-a")
	_, cs := c.client(nil)

	res := call(t, cs, ToolOpenSession, map[string]any{})
	var info SessionInfo
	structured(t, res, &info)
	if res.IsError || info.SessionID == "" || info.Language != "python" || info.Sandbox != runner.SandboxWarm {
		t.Fatalf("open_session: %s", text(res))
	}
	id := info.SessionID

	run := func(code string) Execution {
		t.Helper()
		res := call(t, cs, ToolRunInSession, map[string]any{"session_id": id, "code": code})
		var out Execution
		structured(t, res, &out)
		if res.IsError {
			t.Fatalf("run_in_session %q: %s", code, text(res))
		}
		return out
	}
	run("x = 41")
	if out := run("x += 1\nprint(x)"); out.Stdout != "42\n" || out.SessionID != id {
		t.Errorf("second call: stdout %q session %q, want 42 from the same session", out.Stdout, out.SessionID)
	}

	// upload_file puts a file where the session's code finds it; binary survives.
	blob := []byte{0, 1, 2, 0xff}
	res = call(t, cs, ToolUploadFile, map[string]any{"session_id": id, "path": "/workspace/data/blob.bin", "content_base64": "AAEC/w=="})
	var up Uploaded
	structured(t, res, &up)
	if res.IsError || up.Path != "data/blob.bin" || up.Size != len(blob) {
		t.Fatalf("upload_file: %s", text(res))
	}
	if out := run("print(list(open('data/blob.bin', 'rb').read()))"); out.Stdout != "[0, 1, 2, 255]\n" {
		t.Errorf("uploaded bytes read back as %q", out.Stdout)
	}

	// download_file: a PNG comes back as an image, text as a resource; the copy is not a later
	// execution's output file.
	run(pngProgram[:len(pngProgram)-len("print(\"rows\", len(open(\"in.txt\").read().split()))\n")])
	res = call(t, cs, ToolDownloadFile, map[string]any{"session_id": id, "path": "output/dot.png"})
	var down Downloaded
	structured(t, res, &down)
	if res.IsError || down.MIMEType != "image/png" || len(res.Content) != 2 {
		t.Fatalf("download_file png: %s", text(res))
	}
	if img, ok := res.Content[1].(*sdk.ImageContent); !ok || !bytes.HasPrefix(img.Data, []byte("\x89PNG")) {
		t.Errorf("download_file png content %T, want the image", res.Content[1])
	}
	res = call(t, cs, ToolDownloadFile, map[string]any{"session_id": id, "path": "data/blob.bin"})
	if er, ok := res.Content[1].(*sdk.EmbeddedResource); res.IsError || !ok || !bytes.Equal(er.Resource.Blob, blob) || er.Resource.URI != "file:///workspace/data/blob.bin" {
		t.Errorf("download_file binary: %s", text(res))
	}
	if out := run("import os\nfor root, _, names in os.walk('output/.gkexec-download'):\n    for n in names: open(os.path.join(root, n), 'ab').write(b'!')"); len(out.Files) != 0 {
		t.Errorf("files %v: a download's copy came back with a later execution that changed it", out.Files)
	}

	// A link out of the workspace is refused in the sandbox.
	run("import os\nos.symlink('/etc/hostname', 'escape')")
	if te := toolError(t, call(t, cs, ToolDownloadFile, map[string]any{"session_id": id, "path": "escape"})); te.Code != server.CodeInvalidRequest || !contains(te.Message, "outside the workspace") {
		t.Errorf("download of a link out of the workspace: %+v", te)
	}
	if te := toolError(t, call(t, cs, ToolDownloadFile, map[string]any{"session_id": id, "path": "nothing-here"})); te.Code != server.CodeInvalidRequest || !contains(te.Message, "no such file") {
		t.Errorf("download of a missing file: %+v", te)
	}

	// A timeout that interrupts the code is a result, and the session goes on.
	res = call(t, cs, ToolRunInSession, map[string]any{"session_id": id, "code": "import time\nprint('before', flush=True)\ntime.sleep(30)", "timeout_seconds": 1})
	var timedOut Execution
	structured(t, res, &timedOut)
	if res.IsError || timedOut.Status != StatusTimeout || !timedOut.TimedOut || timedOut.Stdout != "before\n" {
		t.Errorf("timeout: %s", text(res))
	}
	if out := run("print(x)"); out.Stdout != "42\n" {
		t.Errorf("after the timeout: %q, want the session's 42", out.Stdout)
	}

	res = call(t, cs, ToolCloseSession, map[string]any{"session_id": id})
	if res.IsError {
		t.Fatalf("close_session: %s", text(res))
	}
	te := toolError(t, call(t, cs, ToolRunInSession, map[string]any{"session_id": id, "code": "print(x)"}))
	if (te.Code != server.CodeSessionEnded && te.Code != server.CodeSessionNotFound) || te.Retryable || !contains(te.Message, "open_session") {
		t.Errorf("after close: %+v, want session_ended or session_not_found, not retryable, naming open_session", te)
	}
	c.noPodsLeft()
}

// Paths outside the workspace are refused before anything runs: the session named here does not
// exist, and the answer is about the path, not the session.
func TestDownloadRefusesPathsOutsideTheWorkspaceBeforeRunning(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	_, cs := c.client(nil)
	before := len(c.fc.Client.Actions()) // the fake cluster's own Job watch
	for _, p := range []string{"/etc/passwd", "../etc/passwd", "data/../../x", "/workspace", "", "/workspacex/a"} {
		te := toolError(t, call(t, cs, ToolDownloadFile, map[string]any{"session_id": "no-such-session", "path": p}))
		if te.Code != server.CodeInvalidRequest {
			t.Errorf("path %q: %+v, want invalid_request", p, te)
		}
	}
	if got := c.fc.Client.Actions()[before:]; len(got) != 0 {
		t.Errorf("API calls for refused paths: %v, want none", got)
	}
	te := toolError(t, call(t, cs, ToolDownloadFile, map[string]any{"session_id": "no-such-session", "path": "ok.txt"}))
	if te.Code != server.CodeSessionNotFound || te.Retryable {
		t.Errorf("good path, unknown session: %+v, want session_not_found", te)
	}
}

// Code that ends its interpreter ends the session: the answer is a tool error session_ended that
// carries the execution's result, and the next call is told to open a new session.
func TestCodeThatEndsItsSessionIsSessionEndedWithItsResult(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	c.warmPod("pool-a")
	_, cs := c.client(nil)
	var info SessionInfo
	structured(t, call(t, cs, ToolOpenSession, map[string]any{}), &info)
	res := call(t, cs, ToolRunInSession, map[string]any{"session_id": info.SessionID, "code": "import os\nprint('last words', flush=True)\nos._exit(3)"})
	var out Execution
	structured(t, res, &out)
	if !res.IsError || out.Error == nil || out.Error.Code != server.CodeSessionEnded || out.Error.Retryable {
		t.Fatalf("os._exit in a session: %s, want a tool error session_ended", text(res))
	}
	if out.Stdout != "last words\n" || out.ExitCode != 3 || out.Status != StatusError {
		t.Errorf("the ending execution's result: %+v, want its output and exit code 3", out)
	}
	te := toolError(t, call(t, cs, ToolRunInSession, map[string]any{"session_id": info.SessionID, "code": "print(1)"}))
	if te.Code != server.CodeSessionEnded && te.Code != server.CodeSessionNotFound {
		t.Errorf("the next call: %+v, want session_ended or session_not_found", te)
	}
	c.noPodsLeft()
}

// A bash and a JavaScript session keep their state, and move files in and out with their own
// programs — from the workspace whatever directory the code moved to, never from outside it.
func TestSessionsInEveryLanguageKeepStateAndMoveFiles(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lang, set, use, wander, escape string
	}{
		{"bash", "x=41", "echo $((x + 1))", "mkdir -p elsewhere && cd elsewhere", "ln -sf /etc/hostname /workspace/escape 2>/dev/null || ln -sf /etc/hostname \"$GKEXEC_WORKDIR/escape\""},
		{"javascript", "let x = 41", "console.log(x + 1)", "require('fs').mkdirSync('elsewhere', {recursive: true}); process.chdir('elsewhere')",
			"require('fs').symlinkSync('/etc/hostname', require('path').join(process.env.GKEXEC_WORKDIR, 'escape'))"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
			c.warmPod("pool-a")
			_, cs := c.client(nil)
			res := call(t, cs, ToolOpenSession, map[string]any{"language": tc.lang})
			var info SessionInfo
			structured(t, res, &info)
			if res.IsError || info.Language != tc.lang {
				t.Fatalf("open_session: %s", text(res))
			}
			run := func(code string) Execution {
				t.Helper()
				res := call(t, cs, ToolRunInSession, map[string]any{"session_id": info.SessionID, "code": code})
				var out Execution
				structured(t, res, &out)
				if res.IsError || out.ExitCode != 0 {
					t.Fatalf("run_in_session %q: %s", code, text(res))
				}
				return out
			}
			run(tc.set)
			if out := run(tc.use); out.Stdout != "42\n" {
				t.Errorf("state: stdout %q, want 42", out.Stdout)
			}
			run(tc.wander)
			res = call(t, cs, ToolUploadFile, map[string]any{"session_id": info.SessionID, "path": "data/in.txt", "content": "hello"})
			if res.IsError {
				t.Fatalf("upload_file: %s", text(res))
			}
			res = call(t, cs, ToolDownloadFile, map[string]any{"session_id": info.SessionID, "path": "/workspace/data/in.txt"})
			if er, ok := res.Content[1].(*sdk.EmbeddedResource); res.IsError || !ok || er.Resource.Text != "hello" {
				t.Errorf("download_file: %s", text(res))
			}
			run(tc.escape)
			if te := toolError(t, call(t, cs, ToolDownloadFile, map[string]any{"session_id": info.SessionID, "path": "escape"})); te.Code != server.CodeInvalidRequest || !contains(te.Message, "outside the workspace") {
				t.Errorf("download of a link out of the workspace: %+v", te)
			}
			if out := run(tc.use); out.Stdout != "42\n" {
				t.Errorf("after the downloads: stdout %q, want the session's state", out.Stdout)
			}
		})
	}
}
