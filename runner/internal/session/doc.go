// Package session is what a session is on its sandbox Pod, apart from the interpreter inside it:
// its terms (the annotations that say when it ends — idle, or at the end of its lifetime) and its
// lease (which runner process may write to the session's stdin, until when), taken and given back
// with patches guarded by the Pod's resourceVersion, so that two processes never interleave.
package session
