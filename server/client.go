package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
func (c *Client) Execute(ctx context.Context, req runner.Request) (runner.Result, error) {
	in := ExecuteRequest{Code: req.Code, ExecutionID: req.ExecutionID, TimeoutSeconds: req.Timeout.Seconds()}
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
	var res runner.Result
	resp, err := c.do(ctx, http.MethodPost, PathExecutions, body)
	if err != nil {
		return res, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// An execution that had started fails with what the sandbox produced: give it back, as
		// runner.Runner.Execute does.
		body, err := decodeError(resp)
		if body.Result != nil {
			res = *body.Result
		}
		if res.ExecutionID == "" {
			res.ExecutionID = body.ExecutionID
		}
		return res, err
	}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		return res, fmt.Errorf("%w: %s %s: decoding the result: %w", runner.ErrCluster, http.MethodPost, c.BaseURL+PathExecutions, err)
	}
	if res.TimedOut {
		return res, fmt.Errorf("%w: execution %s ran past the server's timeout and was killed", runner.ErrTimeout, res.ExecutionID)
	}
	return res, nil
}

// Config returns the sandbox configuration the server applies to every execution.
func (c *Client) Config(ctx context.Context) (Config, error) {
	var cfg Config
	resp, err := c.do(ctx, http.MethodGet, PathConfig, nil)
	if err != nil {
		return cfg, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, err := decodeError(resp)
		return cfg, err
	}
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%w: decoding %s: %w", runner.ErrCluster, PathConfig, err)
	}
	return cfg, nil
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", runner.ErrInvalidRequest, err)
	}
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
			return nil, fmt.Errorf("%w: %s %s: %w", runner.ErrCanceled, method, c.BaseURL+path, err)
		}
		return nil, fmt.Errorf("%w: %s %s: is gkexec serve running there? %w", runner.ErrCluster, method, c.BaseURL+path, err)
	}
	return resp, nil
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
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message, e.Retryable = body.Error.Code, body.Error.Message, body.Error.Retryable
	} else {
		// Not one of ours (a proxy's error page, say): its start is enough to tell what it is.
		body = ErrorBody{}
		e.Code, e.Message = CodeInternal, strings.TrimSpace(string(raw[:min(len(raw), 1<<10)]))
	}
	if k, ok := byCode(e.Code); ok {
		e.sentinel = k.sentinel
	} else {
		e.sentinel = runner.ErrCluster
	}
	return body, e
}
