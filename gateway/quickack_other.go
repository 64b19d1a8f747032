//go:build !linux

package gateway

import "syscall"

// Elsewhere the kernel's delayed ACK stays as it is (the gateway runs on Linux nodes).
func setQuickAck(syscall.RawConn) {}
