package runner

import (
	"encoding/hex"
	"testing"
)

// A session ID the runner chooses is a valid session ID that cannot be guessed: 128 random bits,
// never the same twice.
func TestNewSessionIDIsAnUnguessableSessionID(t *testing.T) {
	t.Parallel()
	seen := make(map[string]bool, 10000)
	for range 10000 {
		id := NewSessionID()
		if problems := SessionIDProblems(id); len(problems) > 0 {
			t.Fatalf("NewSessionID() = %q: not a session ID: %v", id, problems)
		}
		if b, err := hex.DecodeString(id); err != nil || len(b)*8 != 128 {
			t.Fatalf("NewSessionID() = %q: want 32 hex digits (128 bits)", id)
		}
		if seen[id] {
			t.Fatalf("NewSessionID() gave %q twice", id)
		}
		seen[id] = true
	}
}

// Every bit varies: a generator that fixed some (a counter, a timestamp, a short random part
// padded out) would leave a bit position the same in all of them.
func TestNewSessionIDUsesEveryBit(t *testing.T) {
	t.Parallel()
	var ones, zeros [16]byte
	for range 256 {
		b, _ := hex.DecodeString(NewSessionID())
		for i := range b {
			ones[i] |= b[i]
			zeros[i] |= ^b[i]
		}
	}
	for i := range ones {
		if ones[i] != 0xff || zeros[i] != 0xff {
			t.Errorf("byte %d: bits set %08b, bits clear %08b over 256 IDs; want every bit both", i, ones[i], zeros[i])
		}
	}
}
