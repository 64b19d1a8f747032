package adktool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/session"

	"github.com/gkexec/gkexec/runner"
)

// Sessions opens, resumes and closes gkexec sessions, for a stateful tool. RunnerSessions gives
// a *runner.Runner's; the Executor a session returns runs code in it (*runner.Session does).
type Sessions interface {
	// OpenSession opens a session; an ID that is taken is refused with runner.ErrInvalidRequest.
	OpenSession(ctx context.Context, so runner.SessionOptions) (Executor, error)
	// Session resumes an open session, from any process; runner.ErrSessionNotFound if none.
	Session(ctx context.Context, id string) (Executor, error)
	// CloseSession ends a session and deletes its sandbox; runner.ErrSessionNotFound if none.
	CloseSession(ctx context.Context, id string) error
}

// RunnerSessions are r's sessions.
func RunnerSessions(r *runner.Runner) Sessions { return runnerSessions{r} }

type runnerSessions struct{ r *runner.Runner }

func (rs runnerSessions) OpenSession(ctx context.Context, so runner.SessionOptions) (Executor, error) {
	s, err := rs.r.OpenSession(ctx, so)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (rs runnerSessions) Session(ctx context.Context, id string) (Executor, error) {
	s, err := rs.r.Session(ctx, id)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (rs runnerSessions) CloseSession(ctx context.Context, id string) error {
	return rs.r.CloseSession(ctx, id)
}

// StateKeySession is the ADK session state key under which a stateful Python tool keeps the ID
// of the ADK session's gkexec session; SessionStateKey is another language's.
const StateKeySession = "gkexec_session_id"

// SessionStateKey is the ADK session state key under which a stateful tool whose sessions are in
// language (Config.SessionLanguage) keeps the ID of the ADK session's gkexec session:
// StateKeySession for Python (and ""), StateKeySession + "_" + language for another, so that the
// tools of two languages in one agent keep their sessions apart.
func SessionStateKey(language string) string {
	if language == "" || language == python {
		return StateKeySession
	}
	return StateKeySession + "_" + language
}

// StatefulInput is what the model sends to a stateful tool: Input, described for a session. The
// declaration the model gets allows one language, Config.SessionLanguage.
type StatefulInput struct {
	Code     string      `json:"code" jsonschema:"Code to run in this conversation's interpreter, in its language (the tool's description names it), where what earlier calls defined still is. Print what you need to see: only stdout and stderr come back, not the value of a last expression. Files it writes under output/ come back."`
	Language string      `json:"language,omitempty" jsonschema:"The language of code; if given, the interpreter's."`
	Files    []InputFile `json:"files,omitempty" jsonschema:"Input files, written to the working directory before the code runs."`
}

// sessionLanguages describe a session's interpreter in each language to the model: what runs,
// what persists, what there is to use, and how a call ends early (runner.SessionOptions.Language
// says what each keeps).
var sessionLanguages = map[string]struct{ runs, persists, uses, ends string }{
	"python": {
		runs:     "Python 3 code in an isolated sandbox, in one interpreter",
		persists: "Variables, imports and files persist",
		uses:     " There is no network access and no pip: use the standard library.",
	},
	"bash": {
		runs:     "Bash scripts in an isolated sandbox, in one shell",
		persists: "Variables, functions, the working directory and files persist",
		uses:     " There is no network access and nothing can be installed: use the sandbox's commands.",
		ends:     " End a script early with `return N`, not `exit`: exit ends the shell, and the session with it.",
	},
	"javascript": {
		runs:     "JavaScript in an isolated sandbox, in one Node.js context",
		persists: "Top-level declarations (const, let, class, function) and files persist",
		uses:     " There is no network access and no npm: use Node's built-in modules (require).",
		ends:     " There is no top-level await: a promise the code ends with (an async function's call) is awaited. process.exit(N) ends a call with status N.",
	},
}

// DefaultSessionDescription is the description a stateful tool whose sessions are in language
// gives the model by default; idle, if known, is how long its interpreter waits for the next call.
func DefaultSessionDescription(language string, timeout, idle time.Duration) string {
	if language == "" {
		language = python
	}
	l, ok := sessionLanguages[language]
	if !ok { // a language New refuses: said plainly
		l.runs, l.persists = language+" code in an isolated sandbox, in one interpreter", "What earlier calls defined and files persist"
	}
	limit, ends := "", " It ends after a while without a call;"
	if timeout > 0 {
		limit = fmt.Sprintf(" Each call is interrupted after %s.", timeout)
	}
	if idle > 0 {
		ends = fmt.Sprintf(" It ends after %s without a call;", idle)
	}
	return "Runs " + l.runs + " for this whole conversation, and returns its stdout, stderr, exit code and output files." +
		" " + l.persists + " from one call to the next: build on earlier results instead of recomputing them." +
		ends + " the answer then says that earlier state is gone." + l.uses +
		" The working directory is " + runner.WorkDir + ", where input files appear; write files to " + runner.OutputDir +
		"/ to return them: each call returns those it created or changed." + l.ends + limit
}

const lostState = "this call ran in a new session because the previous one had ended (idle or too old): the variables, imports and files of earlier calls are gone"

func (t *execTool) runInSession(ctx agent.ToolContext, in StatefulInput) (Output, error) {
	lang := t.cfg.SessionLanguage
	if in.Language != "" && in.Language != lang {
		return Output{Status: StatusInvalidRequest, ExitCode: -1, Message: fmt.Sprintf(
			"not run: language %q: this tool runs %s, in one interpreter for the whole conversation; send %s code, with language %q or none",
			in.Language, lang, lang, lang)}, nil
	}
	// A Bash or JavaScript tool's requests name the language even when the model did not, so that
	// the sandbox of a session resumed by ID checks it is in it; Python's name none, as they did
	// before there were languages.
	req, problem := request(in.Code, onTheWire(lang), in.Files)
	if problem != "" {
		return Output{Status: StatusInvalidRequest, ExitCode: -1, Message: problem}, nil
	}
	started := time.Now()
	s, note, err := t.session(ctx)
	if err != nil {
		return Output{}, fmt.Errorf("%s: no session to run the code in: %w", t.cfg.Name, err)
	}
	res, err := s.Execute(ctx, req)
	if errors.Is(err, runner.ErrSessionEnded) && res.Timings.Started.IsZero() {
		// It ended before this call could run (its terms ran out, or it was closed): start over.
		id, _ := t.stateSession(ctx)
		if s, err = t.replace(ctx, id); err != nil {
			return Output{}, fmt.Errorf("%s: no session to run the code in: %w", t.cfg.Name, err)
		}
		note = lostState
		res, err = s.Execute(ctx, req)
	}
	var notes []string
	if note != "" {
		notes = append(notes, note)
	}
	return t.answer(ctx, res, err, time.Since(started), notes...)
}

// session is the ADK session's gkexec session: resumed, or opened on its first call, or a new
// one when it ended (then note says so).
func (t *execTool) session(ctx agent.ToolContext) (s Executor, note string, err error) {
	id, ran := t.stateSession(ctx)
	if !ran {
		if id, err = LanguageSessionID(t.cfg.SessionSecret, t.cfg.SessionLanguage, ctx.AppName(), ctx.UserID(), ctx.SessionID()); err != nil {
			return nil, "", err
		}
	}
	s, err = t.cfg.Sessions.Session(ctx, id)
	switch {
	case err == nil:
	case !errors.Is(err, runner.ErrSessionNotFound):
		return nil, "", err
	case ran:
		// An earlier call ran in it, and it is gone.
		s, err = t.replace(ctx, id)
		note = lostState
	default:
		s, err = t.open(ctx, id)
	}
	if err != nil {
		return nil, "", err
	}
	if !ran {
		if err := ctx.State().Set(SessionStateKey(t.cfg.SessionLanguage), id); err != nil {
			return nil, "", fmt.Errorf("recording the session in the ADK session's state: %w", err)
		}
	}
	return s, note, nil
}

// stateSession is the gkexec session an earlier call of the ADK session ran in, if any.
func (t *execTool) stateSession(ctx agent.ToolContext) (string, bool) {
	v, err := ctx.State().Get(SessionStateKey(t.cfg.SessionLanguage))
	id, ok := v.(string)
	return id, err == nil && ok && id != ""
}

// replace opens the session that follows ended, and records it.
func (t *execTool) replace(ctx agent.ToolContext, ended string) (Executor, error) {
	id := nextSessionID(t.cfg.SessionSecret, ended)
	s, err := t.open(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := ctx.State().Set(SessionStateKey(t.cfg.SessionLanguage), id); err != nil {
		return nil, fmt.Errorf("recording the session in the ADK session's state: %w", err)
	}
	return s, nil
}

// open opens session id, or resumes it if another call opened it meanwhile: in this process
// one at a time per ID, and from another process the runner refuses the taken ID.
func (t *execTool) open(ctx context.Context, id string) (Executor, error) {
	defer t.opening.lock(id)()
	if s, err := t.cfg.Sessions.Session(ctx, id); err == nil {
		return s, nil
	}
	s, err := t.cfg.Sessions.OpenSession(ctx, runner.SessionOptions{ID: id, IdleTimeout: t.cfg.SessionIdleTimeout, MaxLifetime: t.cfg.SessionMaxLifetime,
		Language: onTheWire(t.cfg.SessionLanguage)})
	if errors.Is(err, runner.ErrInvalidRequest) {
		if s, rerr := t.cfg.Sessions.Session(ctx, id); rerr == nil {
			return s, nil
		}
	}
	return s, err
}

// opening serialises the opening of each session ID within a process.
type opening struct {
	mu    sync.Mutex
	locks map[string]*idLock
}

type idLock struct {
	sync.Mutex
	waiting int
}

func (o *opening) lock(id string) (unlock func()) {
	o.mu.Lock()
	l := o.locks[id]
	if l == nil {
		l = &idLock{}
		o.locks[id] = l
	}
	l.waiting++
	o.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		o.mu.Lock()
		if l.waiting--; l.waiting == 0 {
			delete(o.locks, id)
		}
		o.mu.Unlock()
	}
}

// SessionService wraps an ADK session service so that deleting an ADK session also closes its
// gkexec sessions, one per language its stateful tools ran, the one end of a session ADK tells
// anyone about. secret is the tools' Config.SessionSecret, for an ADK session whose state does
// not name its gkexec session (its first call failed after opening it). A session already gone
// is not an error; one that could not be closed is, after the ADK session was deleted (the
// gkexec session's idle timeout ends it anyway).
func SessionService(inner session.Service, sessions Sessions, secret []byte) (session.Service, error) {
	if err := checkSecret(secret); err != nil {
		return nil, err
	}
	return closingService{Service: inner, sessions: sessions, secret: bytes.Clone(secret)}, nil
}

type closingService struct {
	session.Service
	sessions Sessions
	secret   []byte
}

func (c closingService) Delete(ctx context.Context, req *session.DeleteRequest) error {
	got, gotErr := c.Service.Get(ctx, &session.GetRequest{AppName: req.AppName, UserID: req.UserID, SessionID: req.SessionID, NumRecentEvents: 1})
	// Each language's tool has its own session: the one its state names, else its first ID. IDs
	// LanguageSessionID refuses never had a session opened for them: nothing to close.
	var ids []string
	for _, lang := range runner.Languages() {
		id, _ := LanguageSessionID(c.secret, lang, req.AppName, req.UserID, req.SessionID)
		if gotErr == nil {
			if v, err := got.Session.State().Get(SessionStateKey(lang)); err == nil && fmt.Sprint(v) != "" {
				id = fmt.Sprint(v)
			}
		}
		if id != "" {
			ids = append(ids, id)
		}
	}
	if err := c.Service.Delete(ctx, req); err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := c.sessions.CloseSession(ctx, id); err != nil && !errors.Is(err, runner.ErrSessionNotFound) {
			errs = append(errs, fmt.Errorf("adktool: ADK session %s deleted, but not its gkexec session %s: %w", req.SessionID, id, err))
		}
	}
	return errors.Join(errs...)
}
