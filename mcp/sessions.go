package mcp

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gkexec/gkexec/runner"
)

// downloadDir is where download_file copies the file it reads, under the session's output
// directory, so that it comes back as an output file; each download replaces the last one's copy.
const downloadDir = ".gkexec-download"

func (s *Server) openSession(ctx context.Context, _ *sdk.CallToolRequest, in OpenSessionInput) (*sdk.CallToolResult, *SessionInfo, error) {
	lang, ok := languageFor(in.Language)
	if !ok {
		return failed[SessionInfo](invalid("language %q is not offered; use one of: %s", in.Language, languageList()))
	}
	if in.IdleTimeoutSeconds < 0 || in.MaxLifetimeSeconds < 0 {
		return failed[SessionInfo](invalid("idle_timeout_seconds and max_lifetime_seconds may not be negative"))
	}
	// The ID is always the runner's random one: it is the session's capability, never the model's choice.
	sess, err := s.run.OpenSession(ctx, runner.SessionOptions{Language: lang.Name, AllowDomains: s.opts.AllowDomains,
		IdleTimeout: seconds(in.IdleTimeoutSeconds), MaxLifetime: seconds(in.MaxLifetimeSeconds)})
	if err != nil {
		return failed[SessionInfo](err)
	}
	info := SessionInfo{SessionID: sess.ID(), Language: lang.Name, Sandbox: sess.Sandbox()}
	return toolResult(info, nil, nil), &info, nil
}

func (s *Server) closeSession(ctx context.Context, _ *sdk.CallToolRequest, in SessionInput) (*sdk.CallToolResult, *Closed, error) {
	if problem := checkSessionID(in.SessionID); problem != nil {
		return failed[Closed](problem)
	}
	if err := s.run.CloseSession(ctx, in.SessionID); err != nil {
		return failed[Closed](err)
	}
	out := Closed{SessionID: in.SessionID, Closed: true}
	return toolResult(out, nil, nil), &out, nil
}

// uploadFile runs code that does nothing in the session, with the file as its input.
func (s *Server) uploadFile(ctx context.Context, _ *sdk.CallToolRequest, in UploadInput) (*sdk.CallToolResult, *Uploaded, error) {
	rel, problem := workspacePath(in.Path)
	if problem != nil {
		return failed[Uploaded](problem)
	}
	data, problem := fileData(rel, in.Content, in.ContentBase64)
	if problem != nil {
		return failed[Uploaded](problem)
	}
	sess, problem := s.session(ctx, in.SessionID)
	if problem != nil {
		return failed[Uploaded](problem)
	}
	res, err := sess.Execute(ctx, runner.Request{Code: sessionLanguage(sess).noop, Files: map[string][]byte{rel: data}})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("%w: writing %s failed: %s", runner.ErrInvalidRequest, rel, strings.TrimSpace(string(res.Stderr)))
	}
	if err != nil {
		return failed[Uploaded](err)
	}
	out := Uploaded{SessionID: in.SessionID, Path: rel, Size: len(data)}
	return toolResult(out, nil, nil), &out, nil
}

// downloadFile runs code in the session that copies the file under its output directory, so that
// it comes back as the execution's output file. The path is checked here, before anything runs,
// and again in the sandbox (a symbolic link may point outside the workspace).
func (s *Server) downloadFile(ctx context.Context, _ *sdk.CallToolRequest, in DownloadInput) (*sdk.CallToolResult, *Downloaded, error) {
	rel, problem := workspacePath(in.Path)
	if problem != nil {
		return failed[Downloaded](problem)
	}
	sess, problem := s.session(ctx, in.SessionID)
	if problem != nil {
		return failed[Downloaded](problem)
	}
	res, err := sess.Execute(ctx, runner.Request{Code: sessionLanguage(sess).copyOut(rel, "output/"+downloadDir)})
	if err == nil && res.ExitCode != 0 {
		err = fmt.Errorf("%w: cannot read %s: %s", runner.ErrInvalidRequest, rel, strings.TrimSpace(string(res.Stderr)))
	}
	if err != nil {
		return failed[Downloaded](err)
	}
	want := downloadDir + "/" + path.Base(rel)
	for _, f := range res.Files {
		if f.Path != want {
			continue
		}
		c, mimeType := fileContent(workspaceURI(rel), f.Data, f.Truncated)
		out := Downloaded{SessionID: in.SessionID, Path: rel, Size: f.Size, MIMEType: mimeType, Truncated: f.Truncated}
		return toolResult(out, nil, []sdk.Content{c}), &out, nil
	}
	return failed[Downloaded](fmt.Errorf("%w: the sandbox did not return %s: the output files' size limit (%d bytes) may be spent",
		runner.ErrInvalidRequest, rel, s.run.Options().MaxFileBytes))
}

// session is the open session id; a tool error when the ID is malformed or the session is not
// open.
func (s *Server) session(ctx context.Context, id string) (*runner.Session, error) {
	if problem := checkSessionID(id); problem != nil {
		return nil, problem
	}
	return s.run.Session(ctx, id)
}

func checkSessionID(id string) error {
	if id == "" {
		return invalid("session_id is empty: pass the ID open_session returned")
	}
	if problems := runner.SessionIDProblems(id); len(problems) > 0 {
		return invalid("session_id %q: %s; pass the ID open_session returned", id, strings.Join(problems, "; "))
	}
	return nil
}

// sessionLanguage is the language of a session's interpreter, whichever process opened it.
func sessionLanguage(sess *runner.Session) Language {
	if lang, ok := languageFor(sess.Language()); ok {
		return lang
	}
	return python
}

// workspacePath is p relative to the working directory: a relative path, or an absolute one
// under it, that stays inside it.
func workspacePath(p string) (string, error) {
	rel := p
	if strings.HasPrefix(p, "/") {
		var ok bool
		if rel, ok = strings.CutPrefix(p, runner.WorkDir+"/"); !ok {
			return "", invalid("path %q is outside the working directory %s; give a path relative to it", p, runner.WorkDir)
		}
	}
	switch {
	case rel == "" || rel == ".":
		return "", invalid("path is empty: name a file under %s", runner.WorkDir)
	case strings.ContainsAny(rel, "\x00\n\r"):
		return "", invalid("path %q contains a NUL or newline", p)
	case path.Clean(rel) != rel:
		return "", invalid("path %q is not clean (no //, ./, ../ or trailing /): write it as %q", p, path.Clean(rel))
	case rel == ".." || strings.HasPrefix(rel, "../"):
		return "", invalid("path %q is outside the working directory %s", p, runner.WorkDir)
	}
	return rel, nil
}

// failed is a tool error answer for err (a ToolError, or a runner error mapped to one), without
// structured content: what the tool answers on success is not there.
func failed[Out any](err error) (*sdk.CallToolResult, *Out, error) {
	te := toolErrorFor(err)
	return toolResult(struct {
		Error *ToolError `json:"error"`
	}{te}, te, nil), nil, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
