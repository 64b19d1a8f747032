package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sync"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/gkexec/gkexec/internal/egress"
	"github.com/gkexec/gkexec/runner"
)

// The client gives back what the runner gave the server, byte for byte.
func TestClientRoundTripsTheResult(t *testing.T) {
	t.Parallel()
	notUTF8 := []byte{'o', 'k', 0xff, '\n'}
	log := new(framed).rec('O', notUTF8).err("warn\n").file("out.bin", []byte{0, 0xfe}).file("b/c.txt", []byte("hi")).end(3, false)
	ts := newTestServer(t, scenario{steps: ok, log: log}, runner.Options{}, Options{Token: "t0ken"})
	c := NewClient(ts.url+"/", "t0ken")

	res, err := c.Execute(context.Background(), runner.Request{Code: "print(1)", ExecutionID: "rt-1",
		Files: map[string][]byte{"in.bin": {1, 2, 3}}})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if !bytes.Equal(res.Stdout, notUTF8) || string(res.Stderr) != "warn\n" || res.ExitCode != 3 {
		t.Errorf("stdout %q stderr %q exit %d", res.Stdout, res.Stderr, res.ExitCode)
	}
	if len(res.Files) != 2 || res.Files[0].Path != "out.bin" || !bytes.Equal(res.Files[0].Data, []byte{0, 0xfe}) || res.Files[1].Size != 2 {
		t.Errorf("files %+v", res.Files)
	}
	if res.ExecutionID != "rt-1" || res.PodName == "" || res.Timings.CleanedUp.IsZero() || res.CodeDuration <= 0 {
		t.Errorf("id %q pod %q timings %+v code %v", res.ExecutionID, res.PodName, res.Timings, res.CodeDuration)
	}
	if len(res.Timings.Phases()) != len(runner.ColdPhaseNames) {
		t.Errorf("phases %v", res.Timings.Phases())
	}
	cfg, err := c.Config(context.Background())
	if err != nil || cfg.Namespace != testNamespace {
		t.Errorf("Config: %+v %v", cfg, err)
	}
}

func TestClientErrorsWrapTheRunnersSentinels(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).out("so far").end(137, true)}, runner.Options{}, Options{Token: "t0ken"})

	res, err := NewClient(ts.url, "t0ken").Execute(context.Background(), runner.Request{Code: "while True: pass"})
	if !errors.Is(err, runner.ErrTimeout) || !res.TimedOut || string(res.Stdout) != "so far" {
		t.Errorf("timeout: err %v timedOut %v stdout %q; want ErrTimeout with the partial result", err, res.TimedOut, res.Stdout)
	}

	_, err = NewClient(ts.url, "wrong").Execute(context.Background(), runner.Request{Code: "1"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != CodeUnauthorized {
		t.Errorf("wrong token: %v", err)
	}

	_, err = NewClient(ts.url, "t0ken").Execute(context.Background(), runner.Request{Code: " "})
	if !errors.Is(err, runner.ErrInvalidRequest) {
		t.Errorf("empty code: %v, want ErrInvalidRequest", err)
	}

	ts.fc.client.PrependReactor("create", "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "x", errors.New("denied"))
	})
	holdsARole(ts.fc)
	_, err = NewClient(ts.url, "t0ken").Execute(context.Background(), runner.Request{Code: "1"})
	if !errors.Is(err, runner.ErrForbidden) || !errors.As(err, &apiErr) || apiErr.Status != 403 {
		t.Errorf("forbidden: %v, want ErrForbidden with status 403", err)
	}

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	_ = ln.Close()
	if _, err := NewClient("http://"+addr, "").Execute(context.Background(), runner.Request{Code: "1"}); !errors.Is(err, runner.ErrCluster) {
		t.Errorf("nothing listening: %v, want ErrCluster", err)
	}
}

// An error answer for an execution that had started carries what the sandbox produced; the client
// gives it back beside the error, as the runner would, however large it is.
func TestClientReturnsThePartialResultOfAnError(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("o"), 3<<20) // more than one MiB: the caps allow results this large
	for _, tc := range []struct {
		name   string
		stdout []byte
	}{{"small", []byte("so far\n")}, {"larger than a MiB", big}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			partial := runner.Result{ExecutionID: "p-1", Stdout: tc.stdout, Stderr: []byte("MemoryError\n"), PodName: "gkexec-p-1",
				Files: []runner.File{{Path: "a.txt", Data: []byte("x"), Size: 1}}}
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusServiceUnavailable)
				_ = json.NewEncoder(w).Encode(ErrorBody{ExecutionID: "p-1", Result: &partial,
					Error: APIError{Code: CodeSandboxFailed, Message: "the sandbox ended without a result", Retryable: true}})
			}))
			defer hs.Close()

			res, err := NewClient(hs.URL, "").Execute(context.Background(), runner.Request{Code: "1"})
			var apiErr *APIError
			if !errors.Is(err, runner.ErrSandboxFailed) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable {
				t.Fatalf("err %.300v, want ErrSandboxFailed with status 503", err)
			}
			if res.ExecutionID != "p-1" || !bytes.Equal(res.Stdout, tc.stdout) || string(res.Stderr) != "MemoryError\n" ||
				res.PodName != "gkexec-p-1" || len(res.Files) != 1 || string(res.Files[0].Data) != "x" {
				t.Errorf("result: id %q stdout %d bytes stderr %q pod %q files %+v; want the partial result the server sent",
					res.ExecutionID, len(res.Stdout), res.Stderr, res.PodName, res.Files)
			}
		})
	}
}

// An error answer without a result (nothing started) gives the zero Result but the execution ID.
func TestClientErrorWithoutResult(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_ = json.NewEncoder(w).Encode(ErrorBody{ExecutionID: "f-1", Error: APIError{Code: CodeForbidden, Message: "denied"}})
	}))
	defer hs.Close()
	res, err := NewClient(hs.URL, "").Execute(context.Background(), runner.Request{Code: "1"})
	if !errors.Is(err, runner.ErrForbidden) || res.ExecutionID != "f-1" || res.Stdout != nil {
		t.Errorf("err %v result %+v; want ErrForbidden and only the execution ID", err, res)
	}
}

// chunks records what Output got.
type chunks struct {
	order  []runner.Stream
	stream map[runner.Stream][]byte
}

func (c *chunks) add(s runner.Stream, p []byte) {
	if c.stream == nil {
		c.stream = map[runner.Stream][]byte{}
	}
	c.order = append(c.order, s)
	c.stream[s] = append(c.stream[s], p...)
}

// With Request.Output, the client streams: Output gets each chunk while the execution runs, in
// order, byte for byte, and Execute returns the same Result as without it.
func TestClientStreamsOutputWhileTheExecutionRuns(t *testing.T) {
	t.Parallel()
	notUTF8 := []byte{'o', 'k', 0xff, '\n'}
	log := new(framed).out("one\n").err("✓ two\n").rec('O', notUTF8).file("a.bin", []byte{0, 0xfe}).end(3, false)
	ts := newTestServer(t, scenario{steps: ok, log: log}, runner.Options{}, Options{Token: "t0ken"})
	release, released := blockCleanup(ts.fc)
	c := NewClient(ts.url, "t0ken")

	var got chunks
	res, err := c.Execute(context.Background(), runner.Request{Code: "print(1)", ExecutionID: "cs-1", Output: func(s runner.Stream, p []byte) {
		got.add(s, p)
		if len(got.order) == 3 {
			close(release) // the execution cannot end before this: its Job is held
		}
	}})
	if err != nil {
		t.Fatalf("Execute: %v", err)
	}
	if !<-released {
		t.Error("Output was called only after the execution was over")
	}
	if want := []runner.Stream{runner.Stdout, runner.Stderr, runner.Stdout}; !reflect.DeepEqual(got.order, want) {
		t.Errorf("chunks %v, want %v", got.order, want)
	}
	if string(got.stream[runner.Stdout]) != "one\nok\xff\n" || !bytes.Equal(got.stream[runner.Stdout], res.Stdout) ||
		string(got.stream[runner.Stderr]) != "✓ two\n" || !bytes.Equal(got.stream[runner.Stderr], res.Stderr) {
		t.Errorf("streamed %q, result stdout %q stderr %q: want the exact bytes, the same", got.stream, res.Stdout, res.Stderr)
	}

	waitFor(t, "cleanup", func() bool { return len(ts.fc.leftovers()) == 0 })
	// The answer reaches the client before the handler gives the ID back.
	waitFor(t, "the execution ID given back", func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return !ts.ids["cs-1"]
	})
	plain, err := c.Execute(context.Background(), runner.Request{Code: "print(1)", ExecutionID: "cs-1"})
	if err != nil {
		t.Fatalf("Execute without Output: %v", err)
	}
	plain.Timings, res.Timings = runner.Timings{}, runner.Timings{} // when each run did what
	plain.PodName, res.PodName = "", ""                             // each run's Job has a Pod of its own
	if !reflect.DeepEqual(plain, res) {
		t.Errorf("streamed result\n%+v\nplain\n%+v", res, plain)
	}
}

// Streamed, the errors are those of Execute without Output, with the partial result.
func TestClientStreamErrorsWrapTheRunnersSentinels(t *testing.T) {
	t.Parallel()
	died := newTestServer(t, scenario{steps: append(ok[:2:2], terminated("Error", 2)), log: new(framed).out("so far\n").Bytes()}, runner.Options{}, Options{})
	var got chunks
	res, err := NewClient(died.url, "").Execute(context.Background(), runner.Request{Code: "1", ExecutionID: "died-2", Output: got.add})
	var apiErr *APIError
	if !errors.Is(err, runner.ErrSandboxFailed) || !errors.As(err, &apiErr) || apiErr.Status != http.StatusServiceUnavailable || apiErr.Code != CodeSandboxFailed {
		t.Errorf("err %v, want ErrSandboxFailed with status 503", err)
	}
	if res.ExecutionID != "died-2" || string(res.Stdout) != "so far\n" || string(got.stream[runner.Stdout]) != "so far\n" {
		t.Errorf("result %q stdout %q, streamed %q; want the partial result and the output once", res.ExecutionID, res.Stdout, got.stream)
	}

	timeout := newTestServer(t, scenario{steps: ok, log: new(framed).out("so far").end(137, true)}, runner.Options{}, Options{Token: "t0ken"})
	res, err = NewClient(timeout.url, "t0ken").Execute(context.Background(), runner.Request{Code: "while True: pass", Output: func(runner.Stream, []byte) {}})
	if !errors.Is(err, runner.ErrTimeout) || !res.TimedOut || string(res.Stdout) != "so far" {
		t.Errorf("timeout: err %v timedOut %v stdout %q; want ErrTimeout with the partial result", err, res.TimedOut, res.Stdout)
	}
	_, err = NewClient(timeout.url, "wrong").Execute(context.Background(), runner.Request{Code: "1", Output: func(runner.Stream, []byte) {}})
	if !errors.As(err, &apiErr) || apiErr.Status != 401 || apiErr.Code != CodeUnauthorized {
		t.Errorf("wrong token: %v, want 401", err)
	}
}

// A stream that ends before its last line is an ErrCluster, after what did arrive.
func TestClientStreamCutShortIsAnError(t *testing.T) {
	t.Parallel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", MediaTypeNDJSON)
		w.Header().Set("X-Gkexec-Execution-Id", "cut-1")
		_ = json.NewEncoder(w).Encode(StreamLine{Type: LineOutput, Stream: "stdout", Data: "half"})
		_ = json.NewEncoder(w).Encode(StreamLine{Type: "progress"}) // a type this client does not know
	}))
	defer hs.Close()
	var got chunks
	res, err := NewClient(hs.URL, "").Execute(context.Background(), runner.Request{Code: "1", Output: got.add})
	if !errors.Is(err, runner.ErrCluster) || !errors.Is(err, io.ErrUnexpectedEOF) || res.ExecutionID != "cut-1" || string(got.stream[runner.Stdout]) != "half" {
		t.Errorf("err %v id %q streamed %q; want ErrCluster after the chunk that came", err, res.ExecutionID, got.stream)
	}
}

// A server that does not stream answers in plain JSON: Output gets each stream whole.
func TestClientStreamFromAServerThatDoesNotStream(t *testing.T) {
	t.Parallel()
	accept := make(chan string, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		accept <- r.Header.Get("Accept")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(runner.Result{ExecutionID: "old-1", Stdout: []byte("out"), Stderr: []byte("err")})
	}))
	defer hs.Close()
	var got chunks
	res, err := NewClient(hs.URL, "").Execute(context.Background(), runner.Request{Code: "1", Output: got.add})
	if a := <-accept; a != MediaTypeNDJSON {
		t.Errorf("Accept %q, want %s", a, MediaTypeNDJSON)
	}
	if err != nil || res.ExecutionID != "old-1" || !reflect.DeepEqual(got.order, []runner.Stream{runner.Stdout, runner.Stderr}) ||
		string(got.stream[runner.Stdout]) != "out" || string(got.stream[runner.Stderr]) != "err" {
		t.Errorf("err %v result %q streamed %v %q; want each stream once, whole", err, res.ExecutionID, got.order, got.stream)
	}
}

// A request's language travels from the client through the server to the sandbox (the code is
// written under its language's file name); the config names the languages.
func TestTheLanguageTravelsThroughTheServer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).out("42\n").end(0, false)}, runner.Options{}, Options{})
	var mu sync.Mutex
	var keys []string
	ts.fc.client.PrependReactor("create", "configmaps", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		for k := range a.(k8stesting.CreateAction).GetObject().(*corev1.ConfigMap).Data {
			keys = append(keys, k)
		}
		return false, nil, nil
	})
	c := NewClient(ts.url, "")
	if res, err := c.Execute(context.Background(), runner.Request{Code: "echo 42", Language: "bash"}); err != nil || string(res.Stdout) != "42\n" {
		t.Fatalf("Execute: %q, %v", res.Stdout, err)
	}
	mu.Lock()
	if !slices.Contains(keys, "main.sh") {
		t.Errorf("the sandbox got %v, want the code as main.sh", keys)
	}
	mu.Unlock()
	if _, err := c.Execute(context.Background(), runner.Request{Code: "1", Language: "fortran"}); !errors.Is(err, runner.ErrInvalidRequest) {
		t.Errorf("an unknown language: %v, want ErrInvalidRequest", err)
	}
	cfg, err := c.Config(context.Background())
	if err != nil || !slices.Equal(cfg.Languages, []string{"bash", "javascript", "python"}) {
		t.Errorf("config languages %v, %v", cfg.Languages, err)
	}
}

// A request's egress narrowing travels from the client through the server to the sandbox's Pod;
// a malformed one is a bad request that creates nothing.
func TestTheEgressNarrowingTravelsThroughTheServer(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, scenario{steps: ok, log: new(framed).out("42\n").end(0, false)}, runner.Options{}, Options{})
	var mu sync.Mutex
	var narrowing []string
	ts.fc.client.PrependReactor("create", "jobs", func(a k8stesting.Action) (bool, runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		narrowing = append(narrowing, a.(k8stesting.CreateAction).GetObject().(*batchv1.Job).Spec.Template.Annotations[egress.AnnotationAllow])
		return false, nil, nil
	})
	c := NewClient(ts.url, "")
	if _, err := c.Execute(context.Background(), runner.Request{Code: "print(42)", AllowDomains: []string{"pypi.org", "*.pythonhosted.org"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Execute(context.Background(), runner.Request{Code: "print(42)", AllowDomains: []string{"*"}}); !errors.Is(err, runner.ErrInvalidRequest) {
		t.Errorf("allow_domains [*]: %v, want ErrInvalidRequest", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(narrowing, []string{"pypi.org *.pythonhosted.org"}) {
		t.Errorf("the sandboxes' narrowing %q, want one Job narrowed to pypi.org *.pythonhosted.org", narrowing)
	}
}
