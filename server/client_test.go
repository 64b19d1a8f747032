package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

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
