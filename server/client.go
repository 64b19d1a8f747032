package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/gkexec/gkexec/runner"
)

// Client calls a `gkexec serve` sidecar. Its Execute has the runner's signature and semantics,
// so code written against *runner.Runner (the ADK tool, for one) runs unchanged against a
// sidecar: results for everything the code did, errors wrapping the runner's sentinels for the
// rest (an *APIError, also carrying the HTTP status and code).
type Client struct {
	// BaseURL of the server, e.g. http://127.0.0.1:8080.
	BaseURL string
	// Token is sent as a bearer token when not empty.
	Token string
	// HTTPClient defaults to one without a timeout: the server bounds every execution.
	HTTPClient *http.Client
}

// NewClient returns a Client for baseURL.
func NewClient(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTPClient: &http.Client{}}
}

// Execute runs req through the server. Like runner.Runner.Execute, a run timeout returns the
// partial Result and an error wrapping runner.ErrTimeout.
//
// With req.Output set it asks the server to stream (Accept: application/x-ndjson), and Output gets
// each chunk of stdout and stderr as the code produces it, as from the runner: in order, byte for
// byte, adding up to the Result's Stdout and Stderr; called from the goroutine that called
// Execute, never after it returns; p valid only during the call. A server that answers with plain
// JSON instead has Output called once per stream with the whole of it.
func (c *Client) Execute(ctx context.Context, req runner.Request) (runner.Result, error) {
	return c.execute(ctx, PathExecutions, req)
}

// ExecuteInSession runs req in session id's interpreter (POST /v1/sessions/{id}/executions), as
// runner.Session.Execute does: Result, streaming and errors as Execute's, and besides them
// runner.ErrSessionNotFound (no such session: 404), runner.ErrSessionBusy (another process is
// executing in it: 409, retryable) and runner.ErrSessionEnded (it is over and its sandbox
// deleted: 410, with the Result of the execution that ended it, if one did).
func (c *Client) ExecuteInSession(ctx context.Context, id string, req runner.Request) (runner.Result, error) {
	return c.execute(ctx, sessionPath(id)+"/executions", req)
}

// OpenSession opens a session (POST /v1/sessions); so's zero fields mean the server's defaults.
func (c *Client) OpenSession(ctx context.Context, so runner.SessionOptions) (SessionInfo, error) {
	var info SessionInfo
	body, err := json.Marshal(OpenSessionRequest{SessionID: so.ID,
		IdleTimeoutSeconds: so.IdleTimeout.Seconds(), MaxLifetimeSeconds: so.MaxLifetime.Seconds(), Language: so.Language})
	if err != nil {
		return info, fmt.Errorf("%w: %w", runner.ErrInvalidRequest, err)
	}
	err = c.doJSON(ctx, http.MethodPost, PathSessions, body, http.StatusCreated, &info)
	return info, err
}

// CloseSession ends session id and deletes its sandbox (DELETE /v1/sessions/{id}); an unknown
// session is runner.ErrSessionNotFound.
func (c *Client) CloseSession(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, sessionPath(id), nil, http.StatusNoContent, nil)
}

func sessionPath(id string) string { return PathSessions + "/" + url.PathEscape(id) }

func (c *Client) execute(ctx context.Context, path string, req runner.Request) (runner.Result, error) {
	in := ExecuteRequest{Code: req.Code, Language: req.Language, ExecutionID: req.ExecutionID, TimeoutSeconds: req.Timeout.Seconds()}
	if len(req.Files) > 0 {
		in.Files = make(map[string]string, len(req.Files))
		for name, data := range req.Files {
			in.Files[name] = base64.StdEncoding.EncodeToString(data)
		}
	}
	body, err := json.Marshal(in)
	if err != nil {
		return runner.Result{}, fmt.Errorf("%w: %w", runner.ErrInvalidRequest, err)
	}
	accept := "application/json"
	if req.Output != nil {
		accept = MediaTypeNDJSON
	}
	resp, errBody, err := c.do(ctx, http.MethodPost, path, accept, body, http.StatusOK)
	if err != nil {
		// An execution that had started fails with what the sandbox produced: give it back, as
		// runner.Runner.Execute does.
		return partialResult(errBody), err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); req.Output != nil && mt == MediaTypeNDJSON {
		return c.readStream(ctx, resp, path, req.Output)
	}
	var res runner.Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("%w: %s %s: decoding the result: %w", runner.ErrCluster, http.MethodPost, c.BaseURL+path, err)
	}
	if req.Output != nil {
		for _, out := range []struct {
			s runner.Stream
			p []byte
		}{{runner.Stdout, res.Stdout}, {runner.Stderr, res.Stderr}} {
			if len(out.p) > 0 {
				req.Output(out.s, out.p)
			}
		}
	}
	return finished(res)
}

// streams are the output streams by their names in StreamLine.
var streams = map[string]runner.Stream{runner.Stdout.String(): runner.Stdout, runner.Stderr.String(): runner.Stderr}

// readStream reads a streamed answer line by line, handing output on as it comes, up to its
// result or error line.
func (c *Client) readStream(ctx context.Context, resp *http.Response, path string, output func(runner.Stream, []byte)) (runner.Result, error) {
	dec := json.NewDecoder(resp.Body)
	for {
		var line StreamLine
		if err := dec.Decode(&line); err != nil {
			res := runner.Result{ExecutionID: resp.Header.Get("X-Gkexec-Execution-Id")}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // the server always ends with a result or an error line
			}
			if ctx.Err() != nil {
				return res, fmt.Errorf("%w: %s %s: %w", runner.ErrCanceled, http.MethodPost, c.BaseURL+path, err)
			}
			return res, fmt.Errorf("%w: %s %s: reading the stream before its result: %w", runner.ErrCluster, http.MethodPost, c.BaseURL+path, err)
		}
		switch line.Type {
		case LineOutput:
			data := line.DataBase64
			if data == nil {
				data = []byte(line.Data)
			}
			if s, ok := streams[line.Stream]; ok && len(data) > 0 {
				output(s, data)
			}
		case LineResult:
			if line.Result == nil {
				return runner.Result{}, fmt.Errorf("%w: %s %s: a result line without a result", runner.ErrCluster, http.MethodPost, c.BaseURL+path)
			}
			return finished(*line.Result)
		case LineError:
			body := ErrorBody{ExecutionID: line.ExecutionID, Result: line.Result}
			if line.Error != nil {
				body.Error = *line.Error
			}
			return partialResult(body), answerError(line.Status, body.Error)
		}
		// Lines of other types are for newer clients.
	}
}

// finished is a Result as Execute returns it: a run timeout is also an error, as from the runner.
func finished(res runner.Result) (runner.Result, error) {
	if res.TimedOut {
		return res, fmt.Errorf("%w: execution %s ran past the server's timeout and was killed", runner.ErrTimeout, res.ExecutionID)
	}
	return res, nil
}

// partialResult is what an error answer gives back beside the error: what the sandbox produced
// when it had started, else only the execution ID.
func partialResult(body ErrorBody) runner.Result {
	var res runner.Result
	if body.Result != nil {
		res = *body.Result
	}
	if res.ExecutionID == "" {
		res.ExecutionID = body.ExecutionID
	}
	return res
}

// Config returns the sandbox configuration the server applies to every execution.
func (c *Client) Config(ctx context.Context) (Config, error) {
	var cfg Config
	err := c.doJSON(ctx, http.MethodGet, PathConfig, nil, http.StatusOK, &cfg)
	return cfg, err
}

// doJSON makes a request whose answer, with status want, is the JSON document decoded into out
// (out nil: no body); any other status is the server's error.
func (c *Client) doJSON(ctx context.Context, method, path string, body []byte, want int, out any) error {
	resp, _, err := c.do(ctx, method, path, "application/json", body, want)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%w: decoding %s: %w", runner.ErrCluster, path, err)
	}
	return nil
}

// do makes a request and checks the answer's status. Another status than want is the server's
// error, returned with the ErrorBody it came in (for the partial Result it may hold); otherwise
// the caller reads the body and closes it.
func (c *Client) do(ctx context.Context, method, path, accept string, body []byte, want int) (*http.Response, ErrorBody, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, ErrorBody{}, fmt.Errorf("%w: %w", runner.ErrInvalidRequest, err)
	}
	hreq.Header.Set("Accept", accept)
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ErrorBody{}, fmt.Errorf("%w: %s %s: %w", runner.ErrCanceled, method, c.BaseURL+path, err)
		}
		return nil, ErrorBody{}, fmt.Errorf("%w: %s %s: is gkexec serve running there? %w", runner.ErrCluster, method, c.BaseURL+path, err)
	}
	if resp.StatusCode != want {
		defer resp.Body.Close()
		errBody, err := decodeError(resp)
		return nil, errBody, err
	}
	return resp, ErrorBody{}, nil
}

// maxErrorBodyBytes bounds an error answer. One may carry a partial Result: stdout, stderr and
// files up to the server's caps, which fit in one container log (9 MiB), JSON-escaped (up to six
// bytes for one) or base64-encoded.
const maxErrorBodyBytes = 64 << 20

// decodeError reads an error answer and turns it into an *APIError that wraps the matching runner
// sentinel; the body comes back too, for the partial Result it may hold.
func decodeError(resp *http.Response) (ErrorBody, error) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
	var body ErrorBody
	if json.Unmarshal(raw, &body) != nil || body.Error.Code == "" {
		// Not one of ours (a proxy's error page, say): its start is enough to tell what it is.
		body = ErrorBody{Error: APIError{Code: CodeInternal, Message: strings.TrimSpace(string(raw[:min(len(raw), 1<<10)]))}}
	}
	return body, answerError(resp.StatusCode, body.Error)
}

// answerError is an error the server sent, as the client returns it: with its HTTP status, and
// wrapping the runner sentinel of its code.
func answerError(status int, e APIError) *APIError {
	e.Status, e.sentinel = status, runner.ErrCluster
	if k, ok := byCode(e.Code); ok {
		e.sentinel = k.sentinel
	}
	return &e
}
