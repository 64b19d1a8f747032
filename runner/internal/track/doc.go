// Package track follows sandbox Pods through three shared watches per runner — sandbox Pods by
// label, Warning events, and the autoscaler's scale-up events — and routes each change to the
// Tracker of the sandbox it belongs to, so that however many executions wait, the API server sees
// three watches.
package track
