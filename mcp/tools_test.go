package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
)

// structured decodes a result's structured content into out.
func structured(t *testing.T, res *sdk.CallToolResult, out any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
}

// pngProgram writes a 1x1 PNG with the standard library only.
const pngProgram = `import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")
import os
os.makedirs("output", exist_ok=True)
open("output/dot.png", "wb").write(png)
open("output/table.csv", "w").write("a,b\n1,2\n")
print("rows", len(open("in.txt").read().split()))
`

func TestRunCodeReturnsOutputAndFilesAsContent(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	c.warmPod("pool-a")
	_, cs := c.client(nil)
	res := call(t, cs, ToolRunCode, map[string]any{"code": pngProgram, "files": []map[string]any{{"name": "in.txt", "content": "x y z"}}})
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
	var out Execution
	structured(t, res, &out)
	if out.Status != StatusOK || out.ExitCode != 0 || out.Stdout != "rows 3\n" {
		t.Errorf("answer %+v, want ok, exit 0, stdout %q", out, "rows 3\n")
	}
	var images, resources int
	for _, c := range res.Content {
		switch c := c.(type) {
		case *sdk.ImageContent:
			images++
			if c.MIMEType != "image/png" || !bytes.HasPrefix(c.Data, []byte("\x89PNG")) {
				t.Errorf("image %s of %d bytes, want the PNG", c.MIMEType, len(c.Data))
			}
		case *sdk.EmbeddedResource:
			resources++
			if c.Resource.URI != "file:///workspace/output/table.csv" || c.Resource.Text != "a,b\n1,2\n" {
				t.Errorf("resource %s %q, want table.csv's text", c.Resource.URI, c.Resource.Text)
			}
		}
	}
	if images != 1 || resources != 1 {
		t.Errorf("%d images and %d resources, want the PNG as an image and the CSV as a resource", images, resources)
	}
	c.noPodsLeft()
}

func TestProgressStreamsTheOutput(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	c.warmPod("pool-a")
	var mu sync.Mutex
	var got []*sdk.ProgressNotificationParams
	_, cs := c.client(&sdk.ClientOptions{ProgressNotificationHandler: func(_ context.Context, r *sdk.ProgressNotificationClientRequest) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Params)
	}})
	code := "import sys, time\nprint('one', flush=True)\ntime.sleep(0.3)\nprint('t\u00e9', file=sys.stderr, flush=True)\ntime.sleep(0.3)\nprint('two')\n"
	res := call(t, cs, ToolRunCode, map[string]any{"code": code}, sdk.Meta{"progressToken": "tok-1"})
	if res.IsError {
		t.Fatalf("tool error: %s", text(res))
	}
	// The SDK's client handles notifications on a goroutine of their own: the last may follow the
	// result it preceded on the wire.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		n := 0
		for _, p := range got {
			n += len(p.Message)
		}
		mu.Unlock()
		if n >= len("one\ntwo\nt\u00e9\n") {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	streams := map[string]string{}
	last := 0.0
	for _, p := range got {
		if p.ProgressToken != "tok-1" || p.Progress <= last {
			t.Errorf("notification %+v: want token tok-1 and progress above %g", p, last)
		}
		last = p.Progress
		streams[p.Meta[MetaStream].(string)] += p.Message
	}
	if streams["stdout"] != "one\ntwo\n" || streams["stderr"] != "t\u00e9\n" {
		t.Errorf("streamed %q, want stdout one, two and stderr té", streams)
	}
	if len(got) < 3 {
		t.Errorf("%d notifications, want one per chunk, at least 3", len(got))
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
