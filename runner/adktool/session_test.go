package adktool_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/adk/agent"
	"google.golang.org/adk/agent/llmagent"
	"google.golang.org/adk/session"
	"google.golang.org/adk/tool"

	"github.com/gkexec/gkexec/runner"
	"github.com/gkexec/gkexec/runner/adktool"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
)

// fakeSessions are a runner's sessions in memory: each answers a call with its ID and how many
// calls it ran, so that a test sees which session ran what.
type fakeSessions struct {
	mu      sync.Mutex
	open    map[string]*fakeSession
	opened  []runner.SessionOptions
	closed  []string
	lookups map[string]int
	// beforeOpen, if set, runs before OpenSession answers; onLookup after the nth Session(id).
	beforeOpen func(id string)
	onLookup   func(id string, n int)
	// closeErr is CloseSession's answer for an open session.
	closeErr error
}

func newFakeSessions() *fakeSessions {
	return &fakeSessions{open: map[string]*fakeSession{}, lookups: map[string]int{}}
}

type fakeSession struct {
	fs    *fakeSessions
	id    string
	calls int
	// run, if set, answers instead.
	run func(req runner.Request) (runner.Result, error)
}

func (f *fakeSessions) OpenSession(_ context.Context, so runner.SessionOptions) (adktool.Executor, error) {
	if f.beforeOpen != nil {
		f.beforeOpen(so.ID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened = append(f.opened, so)
	if f.open[so.ID] != nil {
		return nil, fmt.Errorf("%w: session %s already exists", runner.ErrInvalidRequest, so.ID)
	}
	s := &fakeSession{fs: f, id: so.ID}
	f.open[so.ID] = s
	return s, nil
}

func (f *fakeSessions) Session(_ context.Context, id string) (adktool.Executor, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookups[id]++
	if f.onLookup != nil {
		f.onLookup(id, f.lookups[id])
	}
	if s := f.open[id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("%w: session %s", runner.ErrSessionNotFound, id)
}

func (f *fakeSessions) CloseSession(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.open[id] == nil {
		return fmt.Errorf("%w: session %s", runner.ErrSessionNotFound, id)
	}
	f.closed = append(f.closed, id)
	if f.closeErr != nil {
		return f.closeErr
	}
	delete(f.open, id)
	return nil
}

// end ends session id, as its idle timeout would.
func (f *fakeSessions) end(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.open, id)
}

func (f *fakeSessions) session(id string) *fakeSession {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open[id]
}

func (s *fakeSession) Execute(_ context.Context, req runner.Request) (runner.Result, error) {
	s.fs.mu.Lock()
	s.calls++
	n, run := s.calls, s.run
	s.fs.mu.Unlock()
	if run != nil {
		return run(req)
	}
	return runner.Result{Session: s.id, Stdout: fmt.Appendf(nil, "%s call %d\n", s.id, n), Timings: runner.Timings{Started: time.Now()}}, nil
}

// testSecret keys the session IDs of the tests' stateful tools.
var testSecret = []byte("the adktool tests' session secret")

// sessionID is the ID the tests' tools open first for an ADK session of adktooltest's user.
func sessionID(t *testing.T, adkSession string) string {
	t.Helper()
	id, err := adktool.SessionID(testSecret, "adktooltest", "user", adkSession)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// statefulAgent is an agent with the stateful tool cfg, keyed with testSecret unless cfg has a secret.
func statefulAgent(t *testing.T, cfg adktool.Config) agent.Agent {
	t.Helper()
	if cfg.SessionSecret == nil {
		cfg.SessionSecret = testSecret
	}
	execTool, err := adktool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := llmagent.New(llmagent.Config{Name: "coder", Model: &adktooltest.Model{}, Tools: []tool.Tool{execTool}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// askOnce asks one message in c and returns the tool's one response.
func askOnce(t *testing.T, c *adktooltest.Conversation, message string) map[string]any {
	t.Helper()
	tr, err := c.Ask(context.Background(), message)
	if err != nil {
		t.Fatalf("agent loop: %v", err)
	}
	if len(tr.Responses) != 1 {
		t.Fatalf("responses %v, want one", tr.Responses)
	}
	return tr.Responses[0]
}

func stdout(r map[string]any) string { s, _ := r["stdout"].(string); return s }

func stateSession(t *testing.T, c *adktooltest.Conversation) string {
	t.Helper()
	got, err := c.Sessions.Get(context.Background(), &session.GetRequest{AppName: "adktooltest", UserID: "user", SessionID: or(c.SessionID, "session")})
	if err != nil {
		t.Fatal(err)
	}
	v, err := got.Session.State().Get(adktool.StateKeySession)
	if err != nil {
		t.Fatalf("no %s in the ADK session's state: %v", adktool.StateKeySession, err)
	}
	return v.(string)
}

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

// The calls of one ADK session run in one gkexec session, opened on the first with the tool's
// terms and resumed by the next; another ADK session has its own.
func TestStatefulCallsOfOneADKSessionShareOneSession(t *testing.T) {
	t.Parallel()
	fs := newFakeSessions()
	a := statefulAgent(t, adktool.Config{Sessions: fs, SessionIdleTimeout: 30 * time.Minute, SessionMaxLifetime: 2 * time.Hour})
	chat := &adktooltest.Conversation{Agent: a}
	id := sessionID(t, "session")

	for n := 1; n <= 3; n++ {
		r := askOnce(t, chat, "x = 1")
		if want := fmt.Sprintf("%s call %d\n", id, n); stdout(r) != want || r["status"] != adktool.StatusOK || r["message"] != nil {
			t.Errorf("call %d: %v, want %q, ok, no message", n, r, want)
		}
	}
	want := runner.SessionOptions{ID: id, IdleTimeout: 30 * time.Minute, MaxLifetime: 2 * time.Hour}
	if len(fs.opened) != 1 || fs.opened[0] != want {
		t.Errorf("opened %+v, want one session %+v", fs.opened, want)
	}
	if got := stateSession(t, chat); got != id {
		t.Errorf("state %q, want %q", got, id)
	}

	other := &adktooltest.Conversation{Agent: a, SessionID: "other"}
	if r := askOnce(t, other, "x = 2"); !strings.HasSuffix(stdout(r), " call 1\n") || strings.HasPrefix(stdout(r), id) {
		t.Errorf("another ADK session ran in %q; want a session of its own", stdout(r))
	}
}

// A session that ended (idle, too old, closed) is followed by a new one with another ID, and the
// model is told that earlier state is gone; the calls after run in the new one.
func TestStatefulFollowsAnEndedSession(t *testing.T) {
	t.Parallel()
	for _, how := range []string{"not found", "ended when run"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			fs := newFakeSessions()
			chat := &adktooltest.Conversation{Agent: statefulAgent(t, adktool.Config{Sessions: fs})}
			first := sessionID(t, "session")
			askOnce(t, chat, "x = 1")
			if how == "not found" {
				fs.end(first)
			} else {
				s := fs.session(first)
				s.run = func(runner.Request) (runner.Result, error) {
					fs.end(first)
					return runner.Result{}, fmt.Errorf("%w: session %s: idle timeout reached", runner.ErrSessionEnded, first)
				}
			}
			r := askOnce(t, chat, "print(x)")
			next := stateSession(t, chat)
			if next == first || stdout(r) != next+" call 1\n" {
				t.Errorf("after the end: ran %q, state %q; want a new session's first call", stdout(r), next)
			}
			if want := hmacID(testSecret, "after\x00"+first); next != want {
				t.Errorf("the session after %s is %s, want %s, keyed with the secret", first, next, want)
			}
			if msg := fmt.Sprint(r["message"]); r["status"] != adktool.StatusOK || !strings.Contains(msg, "new session") || !strings.Contains(msg, "gone") {
				t.Errorf("status %v message %q, want ok and a note that earlier state is gone", r["status"], msg)
			}
			if r := askOnce(t, chat, "x = 2"); stdout(r) != next+" call 2\n" || r["message"] != nil {
				t.Errorf("the call after: %v, want the new session's second call, no note", r)
			}
		})
	}
}

// Code that ends its session is a result, with a note that the next call starts afresh.
func TestStatefulCodeThatEndsItsSession(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, status, why string
		res               runner.Result
		err               error
	}{
		{"out of memory", adktool.StatusOOM, "out of memory", runner.Result{OOMKilled: true, ExitCode: 137},
			fmt.Errorf("%w: the interpreter was killed", runner.ErrSessionEnded)},
		{"uninterruptible at its timeout", adktool.StatusTimeout, "time limit", runner.Result{TimedOut: true, ExitCode: 137},
			fmt.Errorf("%w: the sandbox did not answer: %w", runner.ErrSessionEnded, runner.ErrTimeout)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fs := newFakeSessions()
			chat := &adktooltest.Conversation{Agent: statefulAgent(t, adktool.Config{Sessions: fs})}
			askOnce(t, chat, "x = 1")
			first := sessionID(t, "session")
			fs.session(first).run = func(runner.Request) (runner.Result, error) {
				fs.end(first)
				res := tc.res
				res.Timings.Started = time.Now()
				return res, tc.err
			}
			r := askOnce(t, chat, "x = bytearray(10**10)")
			msg := fmt.Sprint(r["message"])
			if r["status"] != tc.status || !strings.Contains(msg, "ended the session") || !strings.Contains(msg, tc.why) {
				t.Errorf("status %v message %q, want %s, the session's end and %q", r["status"], msg, tc.status, tc.why)
			}
			if r := askOnce(t, chat, "print(1)"); !strings.Contains(fmt.Sprint(r["message"]), "gone") || stateSession(t, chat) == first {
				t.Errorf("the next call: %v; want a new session", r)
			}
		})
	}
}

// Concurrent first calls meet in one session: one opening per ID in a process, and an ID
// another process opened first is resumed.
func TestStatefulConcurrentFirstCalls(t *testing.T) {
	t.Parallel()
	t.Run("two calls at once in one process", func(t *testing.T) {
		t.Parallel()
		fs := newFakeSessions()
		id := sessionID(t, "session")
		release, looked := make(chan struct{}), make(chan struct{})
		var once, third sync.Once
		fs.beforeOpen = func(string) { once.Do(func() { <-release }) }
		fs.onLookup = func(_ string, n int) {
			if n == 3 {
				third.Do(func() { close(looked) })
			}
		}
		a := statefulAgent(t, adktool.Config{Sessions: fs})
		var wg sync.WaitGroup
		answers := make([]map[string]any, 2)
		for i := range answers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Separate stores with the same names: two replicas' first calls for one ADK session.
				tr, err := (&adktooltest.Conversation{Agent: a}).Ask(context.Background(), "x = 1")
				if err != nil || len(tr.Responses) != 1 {
					t.Errorf("call %d: %v %v", i, err, tr.Responses)
					return
				}
				answers[i] = tr.Responses[0]
			}()
		}
		// The first call is opening (it looked twice, the second time under the ID's lock), the
		// second has looked once; then let the opening finish.
		select {
		case <-looked:
		case <-time.After(10 * time.Second):
			t.Fatal("the second call did not look for the session")
		}
		close(release)
		wg.Wait()
		if len(fs.opened) != 1 {
			t.Errorf("opened %d sessions, want one", len(fs.opened))
		}
		for i, r := range answers {
			if r == nil || !strings.HasPrefix(stdout(r), id+" call ") {
				t.Errorf("call %d: %v, want it run in %s", i, r, id)
			}
		}
	})
	t.Run("opened by another process first", func(t *testing.T) {
		t.Parallel()
		fs := newFakeSessions()
		id := sessionID(t, "session")
		fs.beforeOpen = func(id string) { // the other process wins the race
			fs.mu.Lock()
			defer fs.mu.Unlock()
			fs.open[id] = &fakeSession{fs: fs, id: id, calls: 4}
		}
		chat := &adktooltest.Conversation{Agent: statefulAgent(t, adktool.Config{Sessions: fs})}
		if r := askOnce(t, chat, "x = 1"); stdout(r) != id+" call 5\n" {
			t.Errorf("ran %q, want the other process's session", stdout(r))
		}
	})
}

// Deleting an ADK session through SessionService closes its gkexec session, the current one
// from its state; a session already gone is not an error.
func TestSessionServiceClosesOnDelete(t *testing.T) {
	t.Parallel()
	fs := newFakeSessions()
	svc, err := adktool.SessionService(session.InMemoryService(), fs, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	chat := &adktooltest.Conversation{Agent: statefulAgent(t, adktool.Config{Sessions: fs}), Sessions: svc}
	askOnce(t, chat, "x = 1")
	fs.end(stateSession(t, chat))
	askOnce(t, chat, "x = 1") // now in the session after it
	current := stateSession(t, chat)
	del := &session.DeleteRequest{AppName: "adktooltest", UserID: "user", SessionID: "session"}
	if err := svc.Delete(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	if len(fs.closed) != 1 || fs.closed[0] != current {
		t.Errorf("closed %v, want the current session %s", fs.closed, current)
	}
	if _, err := svc.Get(context.Background(), &session.GetRequest{AppName: "adktooltest", UserID: "user", SessionID: "session"}); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("the ADK session after Delete: %v, want it deleted", err)
	}
	if err := svc.Delete(context.Background(), del); err != nil {
		t.Errorf("deleting it again: %v, want nothing to do", err)
	}

	// A session that cannot be closed is an error, after the ADK session was deleted.
	fs.closeErr = fmt.Errorf("%w: forbidden", runner.ErrForbidden)
	other := &adktooltest.Conversation{Agent: chat.Agent, Sessions: svc, SessionID: "s2"}
	askOnce(t, other, "x = 1")
	err = svc.Delete(context.Background(), &session.DeleteRequest{AppName: "adktooltest", UserID: "user", SessionID: "s2"})
	if !errors.Is(err, runner.ErrForbidden) || !strings.Contains(err.Error(), sessionID(t, "s2")) {
		t.Errorf("err %v, want the close's failure naming the gkexec session", err)
	}
}

func TestSessionIDsAreDNSLabelsOfEachADKSession(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	for _, ids := range [][3]string{
		{"app", "user", "session"}, {"app", "user", "Session"}, {"app", "use", "rsession"}, {"ap", "puser", "session"},
		{"", "", ""}, {"アプリ", "user@example.com", strings.Repeat("x", 500)}, {"app", "user", "a\"b"}, {"app", "user\" \"a", "b"},
	} {
		id, err := adktool.SessionID(testSecret, ids[0], ids[1], ids[2])
		if err != nil {
			t.Fatalf("SessionID%q: %v", ids, err)
		}
		if len(id) > runner.MaxSessionIDLength || len(runner.SessionIDProblems(id)) > 0 {
			t.Errorf("SessionID%q = %q: not a DNS label of at most %d characters", ids, id, runner.MaxSessionIDLength)
		}
		if again, _ := adktool.SessionID(testSecret, ids[0], ids[1], ids[2]); again != id {
			t.Errorf("SessionID%q is not deterministic: %q, then %q", ids, id, again)
		}
		if prev, dup := seen[id]; dup {
			t.Errorf("SessionID%q = SessionID(%s)", ids, prev)
		}
		seen[id] = fmt.Sprintf("%q", ids)
	}
}

func TestStatefulToolDeclaration(t *testing.T) {
	t.Parallel()
	if _, err := adktool.New(adktool.Config{Executor: &stubExecutor{}, Sessions: newFakeSessions(), SessionSecret: testSecret}); err == nil {
		t.Error("New with both an Executor and Sessions must fail")
	}
	if _, err := adktool.New(adktool.Config{Sessions: newFakeSessions(), SessionSecret: testSecret, SessionIdleTimeout: -time.Second}); err == nil {
		t.Error("a negative idle timeout must be refused")
	}
	execTool, err := adktool.New(adktool.Config{Sessions: newFakeSessions(), SessionSecret: testSecret, Timeout: 30 * time.Second, SessionIdleTimeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	d := execTool.Description()
	if !strings.Contains(d, "persist") || !strings.Contains(d, "after 10m0s without a call") || !strings.Contains(d, "interrupted after 30s") || strings.Contains(d, "fresh") {
		t.Errorf("description %q", d)
	}
	m := &adktooltest.Model{}
	a, err := llmagent.New(llmagent.Config{Name: "coder", Model: m, Tools: []tool.Tool{execTool}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&adktooltest.Conversation{Agent: a}).Ask(context.Background(), "print(1)"); err != nil {
		t.Fatal(err)
	}
	schema, _ := json.Marshal(m.Requests()[0].Config.Tools[0].FunctionDeclarations[0].ParametersJsonSchema)
	if !strings.Contains(string(schema), "earlier calls defined") || !strings.Contains(string(schema), `"required":["code"]`) {
		t.Errorf("schema %s, want the session's description of code", schema)
	}
}

// languageAgent is an agent with the stateful tool cfg whose model sends each message's
// arguments as argsOf gives them; keyed with testSecret.
func languageAgent(t *testing.T, cfg adktool.Config) agent.Agent {
	t.Helper()
	cfg.SessionSecret = testSecret
	execTool, err := adktool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := llmagent.New(llmagent.Config{Name: "coder", Model: &adktooltest.Model{Args: argsOf}, Tools: []tool.Tool{execTool}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// A stateful tool's sessions are in its SessionLanguage, run for real (the sandbox's
// entrypoint): what a call defines is there for the next; a call in another language is
// invalid_request and runs nothing, and the session goes on; each language's ways of ending a
// call, as the description tells the model, work.
func TestStatefulToolRunsItsSessionsLanguage(t *testing.T) {
	t.Parallel()
	type step struct {
		args, status, stdout, message string
	}
	for _, tc := range []struct {
		lang  string
		steps []step
	}{
		{"python", []step{
			{args: "x = 41", status: adktool.StatusOK},
			{args: `{"code": "echo $x", "language": "bash"}`, status: adktool.StatusInvalidRequest, message: `language "bash": this tool runs python`},
			{args: `{"code": "x += 1\nprint(x)", "language": "python"}`, status: adktool.StatusOK, stdout: "42\n"},
		}},
		{"bash", []step{
			{args: "x=41; cd output; f() { echo \"f $1\"; }", status: adktool.StatusOK},
			{args: `{"code": "print(x)", "language": "python"}`, status: adktool.StatusInvalidRequest, message: `language "python": this tool runs bash`},
			{args: `{"code": "echo $((x + 1)) $(basename $PWD); f ok; echo kept > k.txt", "language": "bash"}`, status: adktool.StatusOK, stdout: "42 output\nf ok\n"},
			{args: "echo before; return 3; echo after", status: adktool.StatusError, stdout: "before\n", message: "status 3"},
			{args: "echo $x", status: adktool.StatusOK, stdout: "41\n"},
			{args: "exit 0", status: adktool.StatusOK, message: "ended the session"},
			{args: "echo ${x:-unset}", status: adktool.StatusOK, stdout: "unset\n", message: "gone"},
		}},
		{"javascript", []step{
			{args: "let x = 41; function f(a) { return 'f ' + a }", status: adktool.StatusOK},
			{args: `{"code": "echo $x", "language": "bash"}`, status: adktool.StatusInvalidRequest, message: `language "bash": this tool runs javascript`},
			{args: `{"code": "console.log(x + 1); console.log(f('ok'))", "language": "javascript"}`, status: adktool.StatusOK, stdout: "42\nf ok\n"},
			{args: "(async () => { await new Promise((r) => setTimeout(r, 50)); console.log('awaited') })()", status: adktool.StatusOK, stdout: "awaited\n"},
			{args: "console.log('before'); process.exit(3)", status: adktool.StatusError, stdout: "before\n", message: "status 3"},
			{args: "console.log(x)", status: adktool.StatusOK, stdout: "41\n"},
		}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			ss := newSandboxSessions(t)
			chat := &adktooltest.Conversation{Agent: languageAgent(t, adktool.Config{Sessions: ss, SessionLanguage: tc.lang})}
			for i, s := range tc.steps {
				r := askOnce(t, chat, s.args)
				if r["status"] != s.status || stdout(r) != s.stdout || !strings.Contains(fmt.Sprint(r["message"]), s.message) {
					t.Fatalf("step %d %s: %v; want %s, stdout %q, a message saying %q", i, s.args, r, s.status, s.stdout, s.message)
				}
			}
			wantLang := tc.lang
			if tc.lang == "python" {
				wantLang = "" // as before there were languages
			}
			if len(ss.opened) == 0 || ss.opened[0].Language != wantLang {
				t.Errorf("opened %+v, want a session in %q", ss.opened, wantLang)
			}
			first, err := adktool.LanguageSessionID(testSecret, tc.lang, "adktooltest", "user", "session")
			if err != nil || ss.opened[0].ID != first {
				t.Errorf("the first session %s, want %s (%v)", ss.opened[0].ID, first, err)
			}
		})
	}
}

// A stateful tool whose language the sandbox image lacks cannot open its session: that is the
// operator's to fix (the model cannot change the tool's language), so it is the tool's error,
// naming the missing program.
func TestStatefulToolInALanguageTheImageLacks(t *testing.T) {
	t.Parallel()
	chat := &adktooltest.Conversation{Agent: languageAgent(t, adktool.Config{Sessions: newSandboxSessions(t, bashOnly(t)), SessionLanguage: "javascript"})}
	if e, isErr := askOnce(t, chat, "console.log(1)")["error"]; !isErr || !strings.Contains(fmt.Sprint(e), "no node on its PATH") {
		t.Errorf("error %v, want the tool's error naming node", e)
	}
}

// Two stateful tools of different languages in one ADK session have sessions of their own, each
// recorded under its language's state key, and deleting the ADK session closes both.
func TestStatefulToolsOfTwoLanguagesKeepApart(t *testing.T) {
	t.Parallel()
	fs := newFakeSessions()
	svc, err := adktool.SessionService(session.InMemoryService(), fs, testSecret)
	if err != nil {
		t.Fatal(err)
	}
	py := &adktooltest.Conversation{Agent: languageAgent(t, adktool.Config{Sessions: fs}), Sessions: svc}
	sh := &adktooltest.Conversation{Agent: languageAgent(t, adktool.Config{Sessions: fs, SessionLanguage: "bash"}), Sessions: svc}
	pyID, shID := sessionID(t, "session"), hmacID(testSecret, "bash\x00adktooltest\x00user\x00session")
	if r := askOnce(t, py, "x = 1"); stdout(r) != pyID+" call 1\n" {
		t.Errorf("the python tool ran in %q, want %s", stdout(r), pyID)
	}
	if r := askOnce(t, sh, "x=1"); stdout(r) != shID+" call 1\n" {
		t.Errorf("the bash tool ran in %q, want %s", stdout(r), shID)
	}
	if r := askOnce(t, py, "x += 1"); stdout(r) != pyID+" call 2\n" {
		t.Errorf("the python tool's second call ran in %q, want %s", stdout(r), pyID)
	}
	got, err := svc.Get(context.Background(), &session.GetRequest{AppName: "adktooltest", UserID: "user", SessionID: "session"})
	if err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{adktool.StateKeySession: pyID, adktool.SessionStateKey("bash"): shID, adktool.SessionStateKey("python"): pyID} {
		if v, err := got.Session.State().Get(key); err != nil || v != want {
			t.Errorf("state %s = %v (%v), want %s", key, v, err, want)
		}
	}
	if len(fs.opened) != 2 || fs.opened[0].Language != "" || fs.opened[1].Language != "bash" {
		t.Errorf("opened %+v, want a python session and a bash one", fs.opened)
	}
	if err := svc.Delete(context.Background(), &session.DeleteRequest{AppName: "adktooltest", UserID: "user", SessionID: "session"}); err != nil {
		t.Fatal(err)
	}
	if slices.Sort(fs.closed); !slices.Equal(fs.closed, slices.Sorted(slices.Values([]string{pyID, shID}))) {
		t.Errorf("closed %v, want %s and %s", fs.closed, pyID, shID)
	}
}

// A stateful tool's declaration allows its one language, and its description says which, what
// persists, and how a call ends early in it.
func TestStatefulToolDeclarationNamesItsLanguage(t *testing.T) {
	t.Parallel()
	if _, err := adktool.New(adktool.Config{Sessions: newFakeSessions(), SessionSecret: testSecret, SessionLanguage: "ruby"}); err == nil || !strings.Contains(err.Error(), "bash, javascript, python") {
		t.Errorf("SessionLanguage ruby: %v, want it refused naming the languages", err)
	}
	for _, tc := range []struct {
		lang       string
		says       []string
		doesNotSay string
	}{
		{"", []string{"Python 3 code", "Variables, imports and files persist"}, "Bash"},
		{"bash", []string{"Bash scripts", "one shell", "working directory", "`return N`, not `exit`"}, "Python"},
		{"javascript", []string{"JavaScript", "Node.js", "let", "no top-level await", "process.exit(N)"}, "Python"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			execTool, err := adktool.New(adktool.Config{Sessions: newFakeSessions(), SessionSecret: testSecret, SessionLanguage: tc.lang})
			if err != nil {
				t.Fatal(err)
			}
			d := execTool.Description()
			for _, want := range tc.says {
				if !strings.Contains(d, want) {
					t.Errorf("description %q does not say %q", d, want)
				}
			}
			if strings.Contains(d, tc.doesNotSay) || !strings.Contains(d, "those it created or changed") {
				t.Errorf("description %q", d)
			}
			m := &adktooltest.Model{}
			a, err := llmagent.New(llmagent.Config{Name: "coder", Model: m, Tools: []tool.Tool{execTool}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := (&adktooltest.Conversation{Agent: a}).Ask(context.Background(), "1"); err != nil {
				t.Fatal(err)
			}
			var schema struct {
				Properties map[string]struct{ Enum []string }
			}
			raw, _ := json.Marshal(m.Requests()[0].Config.Tools[0].FunctionDeclarations[0].ParametersJsonSchema)
			if err := json.Unmarshal(raw, &schema); err != nil {
				t.Fatal(err)
			}
			want := tc.lang
			if want == "" {
				want = "python"
			}
			if enum := schema.Properties["language"].Enum; len(enum) != 1 || enum[0] != want {
				t.Errorf("language's enum %v, want %s alone", enum, want)
			}
		})
	}
}
