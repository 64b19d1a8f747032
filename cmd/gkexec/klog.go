package main

import (
	"io"

	"github.com/urfave/cli/v2"
	"k8s.io/klog/v2"
)

// routeKlog sends client-go's own log lines (it logs through klog, e.g. a reflector's "event
// bookmark expired") to the command's logger: stderr with -v, nowhere without. Left alone, klog
// writes them to the process's stderr, mixed into the code's stderr that `gkexec run` prints.
// It runs before each command's action, before any client-go goroutine exists: klog's logger
// must not change while others log.
func routeKlog(stderr io.Writer) cli.BeforeFunc {
	return func(c *cli.Context) error {
		klog.SetSlogLogger(logger(c, stderr))
		return nil
	}
}
