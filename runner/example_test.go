package runner_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/gkexec/gkexec/runner"
)

// Run code once in a sandbox of namespace agent-sandbox (the kubeconfig or in-cluster identity
// decides the cluster), and read what it produced.
func ExampleRunner_Execute() {
	r, err := runner.New(runner.Options{Namespace: "agent-sandbox", Timeout: time.Minute})
	if err != nil {
		log.Fatal(err) // errors.Is(err, runner.ErrInvalidOptions): the message names every bad field
	}
	defer r.Close()

	res, err := r.Execute(context.Background(), runner.Request{
		Code:  "import sys\nprint(open('data.csv').read().count('\\n'))\nsys.exit(3)",
		Files: map[string][]byte{"data.csv": []byte("a,b\n1,2\n")},
	})
	switch {
	case errors.Is(err, runner.ErrTimeout):
		fmt.Printf("timed out; output so far: %s", res.Stdout)
	case err != nil:
		log.Fatal(err) // infrastructure: the message says what to fix; nothing was left behind
	default:
		fmt.Printf("exit %d, stdout %q, ran %s in a %s sandbox\n", res.ExitCode, res.Stdout, res.CodeDuration, res.Sandbox)
	}
}

// Keep one interpreter across executions, and resume it from another Runner by its ID.
func ExampleRunner_OpenSession() {
	ctx := context.Background()
	r, err := runner.New(runner.Options{Namespace: "agent-sandbox"})
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	s, err := r.OpenSession(ctx, runner.SessionOptions{IdleTimeout: 10 * time.Minute})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close() // ends it and deletes its sandbox; s.Detach() would leave it open
	if _, err := s.Execute(ctx, runner.Request{Code: "total = 41"}); err != nil {
		log.Fatal(err)
	}

	other, err := runner.New(runner.Options{Namespace: "agent-sandbox"})
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()
	same, err := other.Session(ctx, s.ID())
	if err != nil {
		log.Fatal(err) // runner.ErrSessionNotFound once it is closed or expired
	}
	res, err := same.Execute(ctx, runner.Request{Code: "print(total + 1)"})
	if errors.Is(err, runner.ErrSessionBusy) {
		log.Print("another process is executing in it; try again")
	}
	fmt.Printf("%s", res.Stdout) // 42
}
