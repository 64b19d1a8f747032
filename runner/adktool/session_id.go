package adktool

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/gkexec/gkexec/runner"
)

// MinSessionSecretBytes is the shortest Config.SessionSecret New accepts; 32 random bytes are
// recommended.
const MinSessionSecretBytes = 16

// Secret is key material: a []byte that prints, logs and marshals as "[redacted]", so that a
// Config that ends up in a log line or an error message does not carry it.
type Secret []byte

const redacted = "[redacted]"

// Format prints "[redacted]" for every verb.
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue is "[redacted]".
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText is "[redacted]", for encoding/json and the like.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// SessionID is the gkexec session ID a stateful tool opens first for an ADK session:
//
//	"adk-" + hex(HMAC-SHA256(secret, appName + "\x00" + userID + "\x00" + sessionID))[:32]
//
// A DNS label of 36 characters, the same in every process that holds the same secret, so that
// concurrent first calls (parallel tool calls, agent replicas) meet in one session; and one that
// cannot be computed from the ADK session's IDs without the secret, since a session ID is a
// bearer capability (see Config.SessionSecret). secret is Config.SessionSecret: at least
// MinSessionSecretBytes. IDs that contain a NUL byte, the separator, are refused, so that no two
// ADK sessions map to one gkexec session.
func SessionID(secret []byte, appName, userID, sessionID string) (string, error) {
	if err := checkSecret(secret); err != nil {
		return "", err
	}
	for _, f := range []struct{ name, value string }{{"app name", appName}, {"user ID", userID}, {"session ID", sessionID}} {
		if strings.IndexByte(f.value, 0) >= 0 {
			return "", fmt.Errorf("adktool: the ADK %s %q contains a NUL byte, the separator of the gkexec session ID's derivation", f.name, f.value)
		}
	}
	return keyedID(secret, appName+"\x00"+userID+"\x00"+sessionID), nil
}

// LanguageSessionID is the gkexec session ID a stateful tool whose sessions are in language
// (Config.SessionLanguage) opens first for an ADK session. Python's (and "") is SessionID's, as
// before there were languages; another language's is
//
//	"adk-" + hex(HMAC-SHA256(secret, language + "\x00" + appName + "\x00" + userID + "\x00" + sessionID))[:32]
//
// so that the tools of two languages in one ADK session open sessions of their own (a session
// runs one language). Its three NUL bytes keep it apart from SessionID's two and from a
// successor's one.
func LanguageSessionID(secret []byte, language, appName, userID, sessionID string) (string, error) {
	if !known(language) {
		return "", fmt.Errorf("adktool: language %q: gkexec runs %s", language, strings.Join(runner.Languages(), ", "))
	}
	id, err := SessionID(secret, appName, userID, sessionID)
	if err != nil || language == "" || language == python {
		return id, err
	}
	return keyedID(secret, language+"\x00"+appName+"\x00"+userID+"\x00"+sessionID), nil
}

// nextSessionID follows an ended session. The ended one's ID is not reused: its sandbox may
// still be going away, and would make the new one's ID taken for a while. It is keyed too, so
// that knowing an ended session's ID is not enough to compute its successor's; its one NUL keeps
// it apart from SessionID's two.
func nextSessionID(secret []byte, ended string) string {
	return keyedID(secret, "after\x00"+ended)
}

func keyedID(secret []byte, message string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(message))
	return "adk-" + hex.EncodeToString(mac.Sum(nil))[:32]
}

// checkSecret refuses a session secret too short to key the IDs; the message never holds it.
func checkSecret(secret []byte) error {
	switch {
	case len(secret) == 0:
		return errors.New("adktool: Config.SessionSecret is required with Config.Sessions: the gkexec session IDs are derived from it, " +
			"so that knowing an ADK session's app, user and session IDs is not enough to reach its interpreter. " +
			"Give every replica of the agent the same random bytes (e.g. 32 from `head -c 32 /dev/urandom`, kept in a Kubernetes Secret)")
	case len(secret) < MinSessionSecretBytes:
		return fmt.Errorf("adktool: Config.SessionSecret has %d bytes; at least %d are required (32 random bytes recommended)", len(secret), MinSessionSecretBytes)
	}
	return nil
}
