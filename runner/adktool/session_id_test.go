package adktool_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/adk/session"

	"github.com/gkexec/gkexec/runner/adktool"
	"github.com/gkexec/gkexec/runner/adktool/adktooltest"
)

// hmacID is the documented derivation, written out independently of the package's.
func hmacID(secret []byte, message string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(message))
	return "adk-" + hex.EncodeToString(mac.Sum(nil))[:32]
}

// A session ID is "adk-" and 32 hex digits of HMAC-SHA256(secret, app \x00 user \x00 session):
// stable for the same inputs and secret (every replica meets in one session), different for
// another secret or any other input, and not the unkeyed hash of earlier releases, which anyone
// who knew an ADK session's IDs could compute.
func TestSessionIDIsKeyedWithTheSecret(t *testing.T) {
	t.Parallel()
	id := func(secret []byte, app, user, sess string) string {
		t.Helper()
		got, err := adktool.SessionID(secret, app, user, sess)
		if err != nil {
			t.Fatalf("SessionID(%q, %q, %q): %v", app, user, sess, err)
		}
		return got
	}
	base := id(testSecret, "app", "user", "session")
	if want := hmacID(testSecret, "app\x00user\x00session"); base != want {
		t.Errorf("SessionID = %s, want %s (adk- and 32 hex digits of HMAC-SHA256(secret, app NUL user NUL session))", base, want)
	}
	if again := id(bytes.Clone(testSecret), "app", "user", "session"); again != base {
		t.Errorf("the same inputs and secret gave %s, then %s", base, again)
	}

	for _, tc := range []struct {
		name            string
		secret          []byte
		app, user, sess string
	}{
		{"another secret", []byte("another secret of the same length!"), "app", "user", "session"},
		// (Not "one NUL byte longer": HMAC pads a short key with zeros, so that one is the same key.)
		{"a secret differing in its last byte", append(bytes.Clone(testSecret[:len(testSecret)-1]), testSecret[len(testSecret)-1]^1), "app", "user", "session"},
		{"another app", testSecret, "app2", "user", "session"},
		{"another user", testSecret, "app", "user2", "session"},
		{"another session", testSecret, "app", "user", "session2"},
		{"a byte moved from user to session", testSecret, "app", "use", "rsession"},
		{"a byte moved from app to user", testSecret, "ap", "puser", "session"},
	} {
		if got := id(tc.secret, tc.app, tc.user, tc.sess); got == base {
			t.Errorf("%s: the same ID %s", tc.name, got)
		}
	}

	// The IDs of earlier releases and a plain hash of the same message: what can be computed
	// without the secret must not be the ID.
	old := sha256.Sum256([]byte(fmt.Sprintf("%q %q %q", "app", "user", "session")))
	plain := sha256.Sum256([]byte("app\x00user\x00session"))
	for name, unkeyed := range map[string]string{
		"the unkeyed ID of earlier releases": "adk-" + hex.EncodeToString(old[:16]),
		"SHA-256 of the message":             "adk-" + hex.EncodeToString(plain[:16]),
		"HMAC with an empty key":             hmacID(nil, "app\x00user\x00session"),
	} {
		if base == unkeyed {
			t.Errorf("SessionID is %s: computable without the secret", name)
		}
	}
}

// The separator cannot be forged: IDs holding a NUL byte are refused, so that no two ADK
// sessions ("a", "b\x00c", "d") and ("a", "b", "c\x00d") map to one gkexec session.
func TestSessionIDRefusesTheSeparatorInAnID(t *testing.T) {
	t.Parallel()
	for _, ids := range [][3]string{{"a\x00b", "c", "d"}, {"a", "b\x00c", "d"}, {"a", "b", "c\x00d"}} {
		id, err := adktool.SessionID(testSecret, ids[0], ids[1], ids[2])
		if err == nil || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("SessionID%q = %q, %v; want an error naming the NUL byte", ids, id, err)
		}
	}
}

// Stateful sessions need a secret of at least 16 bytes: New, SessionID and SessionService
// refuse a missing or short one with an error that says what to give, and never holds the
// secret itself.
func TestSessionSecretMissingOrShortIsRefused(t *testing.T) {
	t.Parallel()
	short := []byte("fifteen bytes!!")
	for _, tc := range []struct {
		name   string
		secret []byte
		want   []string
	}{
		{"missing", nil, []string{"Config.SessionSecret is required", "every replica", "random"}},
		{"empty", []byte{}, []string{"Config.SessionSecret is required"}},
		{"15 bytes", short, []string{"Config.SessionSecret has 15 bytes", "at least 16"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, newErr := adktool.New(adktool.Config{Sessions: newFakeSessions(), SessionSecret: tc.secret})
			_, idErr := adktool.SessionID(tc.secret, "app", "user", "session")
			_, svcErr := adktool.SessionService(session.InMemoryService(), newFakeSessions(), tc.secret)
			for name, err := range map[string]error{"New": newErr, "SessionID": idErr, "SessionService": svcErr} {
				if err == nil {
					t.Errorf("%s accepted a %s secret", name, tc.name)
					continue
				}
				for _, w := range tc.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s: %q does not say %q", name, err, w)
					}
				}
				if len(tc.secret) > 0 && strings.Contains(err.Error(), string(tc.secret)) {
					t.Errorf("%s: %q holds the secret", name, err)
				}
			}
		})
	}
	if _, err := adktool.New(adktool.Config{Sessions: newFakeSessions(), SessionSecret: []byte("sixteen bytes!!!")}); err != nil {
		t.Errorf("a secret of 16 bytes: %v", err)
	}
	if _, err := adktool.New(adktool.Config{Executor: &stubExecutor{}}); err != nil {
		t.Errorf("a stateless tool needs no secret: %v", err)
	}
}

// The tool keys its IDs with a copy of the secret: the caller's slice changing later changes
// nothing.
func TestSessionSecretIsCopied(t *testing.T) {
	t.Parallel()
	secret := bytes.Clone(testSecret)
	fs := newFakeSessions()
	a := statefulAgent(t, adktool.Config{Sessions: fs, SessionSecret: secret})
	copy(secret, "overwritten by the caller")
	askOnce(t, &adktooltest.Conversation{Agent: a}, "x = 1")
	if want := sessionID(t, "session"); len(fs.opened) != 1 || fs.opened[0].ID != want {
		t.Errorf("opened %+v, want %s, keyed with the secret as it was given", fs.opened, want)
	}
}

// A Config, or its secret, in a log line or an error message does not carry the secret: it prints,
// logs and marshals as "[redacted]".
func TestSessionSecretIsNeverPrinted(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cr3t-that-must-not-leak-anywhere")
	cfg := adktool.Config{Sessions: newFakeSessions(), SessionSecret: secret}
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("config", "cfg", cfg, "secret", cfg.SessionSecret)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("config", "cfg", cfg, "secret", cfg.SessionSecret)
	marshaled, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		"%s": fmt.Sprintf("%s", cfg.SessionSecret), "%x": fmt.Sprintf("%x", cfg.SessionSecret), "%q": fmt.Sprintf("%q", cfg.SessionSecret),
		"slog text": text.String(), "slog JSON": js.String(), "json.Marshal": string(marshaled),
	}
	for name, out := range outputs {
		for _, form := range []string{string(secret), hex.EncodeToString(secret), base64.StdEncoding.EncodeToString(secret), fmt.Sprint([]byte(secret))} {
			if strings.Contains(out, form) {
				t.Errorf("%s: %s holds the secret", name, out)
			}
		}
		if !strings.Contains(out, "[redacted]") {
			t.Errorf("%s: %s, want [redacted] where the secret is", name, out)
		}
	}
}

// A Python tool's first session ID is SessionID's, as before there were languages; another
// language's is HMAC-SHA256(secret, language \x00 app \x00 user \x00 session), different for each
// language, so that the tools of two languages in one ADK session do not meet in one session.
func TestLanguageSessionIDKeepsLanguagesApart(t *testing.T) {
	t.Parallel()
	py, err := adktool.SessionID(testSecret, "app", "user", "session")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, lang := range []string{"", "python", "bash", "javascript"} {
		id, err := adktool.LanguageSessionID(testSecret, lang, "app", "user", "session")
		if err != nil {
			t.Fatalf("%q: %v", lang, err)
		}
		want := hmacID(testSecret, lang+"\x00app\x00user\x00session")
		if lang == "" || lang == "python" {
			want = py
		}
		if id != want {
			t.Errorf("LanguageSessionID(%q) = %s, want %s", lang, id, want)
		}
		if other, dup := seen[id]; dup && !(other == "" && lang == "python") {
			t.Errorf("%q and %q share the ID %s", other, lang, id)
		}
		seen[id] = lang
	}
	if _, err := adktool.LanguageSessionID(testSecret, "cobol", "app", "user", "session"); err == nil {
		t.Error("an unknown language must be refused")
	}
	// A NUL in the ADK IDs is refused whatever the language: with one, a Python ID of the app
	// "bash\x00app" would be a bash ID of the app "app".
	if _, err := adktool.LanguageSessionID(testSecret, "bash", "app", "us\x00er", "session"); err == nil {
		t.Error("a NUL in the ADK IDs must be refused, whatever the language")
	}
}
