// Command pause is the local cluster's pod sandbox ("infra") container: it holds the pod's namespaces, sleeps
// until SIGINT or SIGTERM, and reaps orphaned children like registry.k8s.io/pause does. There is no registry
// here, so test/localcluster builds this into the image localhost/pause:3.10.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
