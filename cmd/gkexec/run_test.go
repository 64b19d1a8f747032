package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// countingReader is stdin that counts what gkexec read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Code must fit in a ConfigMap: gkexec reads at most 1 MiB + 1 byte of it, and refuses more as a
// usage error before it contacts a cluster.
// Not parallel: urfave/cli shares its help and version flags between apps as globals.
func TestRunBoundsTheCodeItReads(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.py")
	if err := os.WriteFile(big, bytes.Repeat([]byte("#"), 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		stdin int64
		args  []string
		fits  bool
	}{
		{name: "stdin of 8 MiB", stdin: 8 << 20, args: []string{"-"}},
		{name: "stdin of 1 MiB + 1 byte", stdin: maxCodeBytes + 1},
		{name: "a file of 8 MiB", args: []string{big}},
		{name: "stdin of exactly 1 MiB", stdin: maxCodeBytes, fits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := &countingReader{r: io.LimitReader(zeros{}, tc.stdin)}
			var stdout, stderr bytes.Buffer
			// An unreadable kubeconfig: had gkexec got as far as the cluster, it would fail otherwise.
			args := append([]string{"gkexec", "run", "--kubeconfig", "/nonexistent/kubeconfig"}, tc.args...)
			code := runApp(context.Background(), newApp(in, &stdout, &stderr), args)
			if tc.fits {
				if code == exitUsage || strings.Contains(stderr.String(), "larger than") {
					t.Errorf("1 MiB of code was refused: %s", stderr.String())
				}
				return
			}
			if code != exitUsage || !strings.Contains(stderr.String(), "the code is larger than 1 MiB") {
				t.Errorf("exit %d stderr %q; want %d and a message that the code is larger than 1 MiB", code, stderr.String(), exitUsage)
			}
			if in.n > maxCodeBytes+1 {
				t.Errorf("read %d bytes of stdin, want at most %d", in.n, maxCodeBytes+1)
			}
		})
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = '#'
	}
	return len(p), nil
}
