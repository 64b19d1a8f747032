package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/internal/fakecluster"
	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/server"
)

// coldLog is a cold sandbox's container log: the output, then the end record.
func coldLog(stdout string, exitCode int, timedOut bool) []byte {
	l := new(fakecluster.Log)
	l.Out(stdout)
	now := fakecluster.Now()
	return l.End(fakecluster.End{ExitCode: exitCode, TimedOut: timedOut, StartedAt: now - 0.25, FinishedAt: now, MaxRSSKiB: 1024})
}

var coldPod = []func(*corev1.Pod){fakecluster.ScheduledOn("node-1"), fakecluster.Running}

// What the code did is a result; what kept it from running is a tool error that says what to do.
func TestRunCodeResultsAndErrors(t *testing.T) {
	t.Parallel()
	forbidden := func(c *cluster) {
		c.fc.Client.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "x", errors.New("denied"))
		})
		// The identity holds a Role without the verb: missing RBAC, not a missing namespace.
		c.fc.Client.PrependReactor("create", "selfsubjectrulesreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
			review := a.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectRulesReview).DeepCopy()
			review.Status.ResourceRules = []authorizationv1.ResourceRule{{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}
			return true, review, nil
		})
	}
	for _, tc := range []struct {
		name   string
		log    []byte
		setup  func(*cluster)
		args   map[string]any
		status string // a result's
		code   string // a tool error's
		retry  bool
	}{
		{name: "non-zero exit is a result", log: coldLog("partial\n", 3, false), args: map[string]any{"code": "raise SystemExit(3)"}, status: StatusError},
		{name: "run timeout is a result", log: coldLog("slow\n", 124, true), args: map[string]any{"code": "while True: pass"}, status: StatusTimeout},
		{name: "forbidden", log: coldLog("", 0, false), setup: forbidden, args: map[string]any{"code": "print(1)"}, code: server.CodeForbidden},
		{name: "empty code", args: map[string]any{"code": "  "}, code: server.CodeInvalidRequest},
		{name: "input file outside the workspace", args: map[string]any{"code": "print(1)", "files": []map[string]any{{"name": "../x", "content": "1"}}}, code: server.CodeInvalidRequest},
		{name: "input file under output/", args: map[string]any{"code": "print(1)", "files": []map[string]any{{"name": "output/x", "content": "1"}}}, code: server.CodeInvalidRequest},
		{name: "bad base64", args: map[string]any{"code": "print(1)", "files": []map[string]any{{"name": "x", "content_base64": "%%%"}}}, code: server.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, fakecluster.Scenario{Steps: coldPod, Log: tc.log}, runner.Options{NoWarmPool: true})
			if tc.setup != nil {
				tc.setup(c)
			}
			_, cs := c.client(nil)
			res := call(t, cs, ToolRunCode, tc.args)
			if tc.code != "" {
				te := toolError(t, res)
				if te.Code != tc.code || te.Retryable != tc.retry || te.Message == "" {
					t.Errorf("tool error %+v, want code %s retryable %v", te, tc.code, tc.retry)
				}
				if !contains(text(res), tc.code) {
					t.Errorf("the error's first content %q does not name %s", text(res), tc.code)
				}
				return
			}
			var out Execution
			structured(t, res, &out)
			if res.IsError || out.Status != tc.status || out.Error != nil {
				t.Errorf("answer %s, want a result with status %s", text(res), tc.status)
			}
		})
	}
}

// The schema refuses what the server does not offer before the handler runs.
func TestSchemaOffersTheLanguagesAndBoundsTheTimeout(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{Timeout: 60 * time.Second})
	_, cs := c.client(nil)
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.OutputSchema == nil {
			t.Errorf("%s: no description or output schema", tool.Name)
		}
		b, _ := json.Marshal(tool.InputSchema)
		schema := string(b)
		if contains(schema, `"language"`) && !contains(schema, `"enum":["python","bash","javascript"]`) {
			t.Errorf("%s: language not the enum of the runner's languages, python first: %s", tool.Name, schema)
		}
		if contains(schema, `"null"`) {
			t.Errorf("%s: a nullable property (some clients take one type per property): %s", tool.Name, schema)
		}
		if contains(schema, `"timeout_seconds"`) && !contains(schema, `"maximum":60`) {
			t.Errorf("%s: timeout_seconds not bounded by the runner's 60s: %s", tool.Name, schema)
		}
	}
	want := []string{ToolCloseSession, ToolDescribeSandbox, ToolDownloadFile, ToolOpenSession, ToolRunCode, ToolRunInSession, ToolUploadFile}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Errorf("tools %v, want %v", names, want)
	}
	for _, args := range []map[string]any{
		{"code": "console.log(1)", "language": "javascript"},
		{"code": "print(1)", "timeout_seconds": 61},
	} {
		if res := call(t, cs, ToolRunCode, args); !res.IsError {
			t.Errorf("%v: accepted, want refused by the schema", args)
		}
	}
}

// Shutdown cancels the calls in flight: the execution ends, its sandbox is deleted, and the call
// answers the tool error canceled; a call after it is refused the same way.
func TestShutdownCancelsTheCallsInFlight(t *testing.T) {
	t.Parallel()
	c := newCluster(t, fakecluster.Scenario{}, runner.Options{})
	c.warmPod("pool-a")
	started := make(chan struct{})
	var once sync.Once
	s, cs := c.client(&sdk.ClientOptions{ProgressNotificationHandler: func(context.Context, *sdk.ProgressNotificationClientRequest) {
		once.Do(func() { close(started) })
	}})
	answered := make(chan *sdk.CallToolResult, 1)
	go func() {
		answered <- call(t, cs, ToolRunCode, map[string]any{"code": "import time\nprint('up', flush=True)\ntime.sleep(60)"}, sdk.Meta{"progressToken": 1})
	}()
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("the code never started")
	}
	begun := time.Now()
	s.Shutdown()
	select {
	case res := <-answered:
		if te := toolError(t, res); te.Code != server.CodeCanceled {
			t.Errorf("after Shutdown: %+v, want canceled", te)
		}
		if took := time.Since(begun); took > 15*time.Second {
			t.Errorf("the call answered %s after Shutdown", took)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call in flight did not end after Shutdown")
	}
	c.noPodsLeft()
	if te := toolError(t, call(t, cs, ToolRunCode, map[string]any{"code": "print(1)"})); te.Code != server.CodeCanceled {
		t.Errorf("a call after Shutdown: %+v, want canceled", te)
	}
}

// The tools offer exactly the runner's languages, and a request names its language.
func TestTheToolsOfferTheRunnersLanguages(t *testing.T) {
	t.Parallel()
	var names []string
	for _, l := range languages {
		names = append(names, l.Name)
		if req, err := request(l, "x", nil, 0); err != nil || req.Language != l.Name {
			t.Errorf("%s: request %+v, %v", l.Name, req, err)
		}
	}
	if slices.Sort(names); !slices.Equal(names, runner.Languages()) {
		t.Errorf("the tools offer %v, the runner runs %v", names, runner.Languages())
	}
	if _, ok := languageFor("cobol"); ok {
		t.Error("cobol is offered")
	}
}
