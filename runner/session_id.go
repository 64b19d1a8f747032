package runner

import (
	"crypto/rand"
	"encoding/hex"
)

// sessionIDBytes is the randomness of a session ID the runner chooses: 128 bits, as 32 hex
// digits, within MaxSessionIDLength.
const sessionIDBytes = 16

// NewSessionID returns a random session ID: 32 hex digits, 128 bits from crypto/rand.
//
// A session ID is a bearer capability: whoever knows it and holds the runner's credentials can
// run code in the session and read what its interpreter holds. So a session opened without an ID
// gets one that cannot be guessed, unlike an execution ID (NewExecutionID), which only has to be
// unique among executions in flight.
func NewSessionID() string {
	var b [sessionIDBytes]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+): it crashes the program instead
	return hex.EncodeToString(b[:])
}
