// Package diagnose says what went wrong: it defines every kind of failure the runner reports
// (the sentinel errors, which runner re-exports), turns an API server's answer into one of them
// naming the call and what to grant or fix, and reads a sandbox Pod's state and events for the
// failures that make waiting pointless.
package diagnose
