// Package session is a session's lease on its sandbox Pod: which runner process may write to the
// session's stdin, and until when, taken and given back with patches guarded by the Pod's
// resourceVersion so that two processes never interleave, and taken over when the sandbox says
// nothing has run for a while (its holder is gone). The session's terms (idle timeout, lifetime)
// are the sandbox's own to enforce.
package session
