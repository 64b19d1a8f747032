// Package doctor checks that a namespace is ready for a runner, with the runner's own identity
// and options: the API server, the namespace, every RBAC permission the runner needs, the
// RuntimeClass and a gVisor node, quota headroom, the warm pool, and a smoke execution that
// proves them together. `gkexec doctor` prints its checks; `gkexec serve`'s /readyz is built on
// them.
package doctor
