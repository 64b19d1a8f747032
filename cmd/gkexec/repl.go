package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gkexec/gkexec/runner"
)

// The REPL of `gkexec session repl` (session_repl.go): it reads standard input line by line, groups
// lines into submissions as Python's prompt does, and runs each as one execution in the session.

// repl reads submissions and runs each as one execution in the session.
type repl struct {
	s       liveSession
	term    *terminal
	signals <-chan os.Signal
	block   []string // the lines of a block being typed
}

// replInput is standard input, line by line. A line is read only once the previous one was
// taken, so what a person types while code runs waits its turn.
type replInput struct {
	lines chan string
	err   error // why reading stopped, if not at EOF; set before lines is closed
}

func readLines(r io.Reader, stop <-chan struct{}) *replInput {
	in := &replInput{lines: make(chan string)}
	go func() {
		defer close(in.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64<<10), maxCodeBytes) // no line of code is longer than a request
		for sc.Scan() {
			select {
			case in.lines <- sc.Text():
			case <-stop:
				return
			}
		}
		in.err = sc.Err()
	}()
	return in
}

// run reads and runs until standard input ends, a SIGTERM or the end of the session.
func (p *repl) run(ctx context.Context, in *replInput) error {
	stderr := p.term.stderr
	for {
		prompt := ">>> "
		if len(p.block) > 0 {
			prompt = "... "
		}
		p.term.endLine()
		fmt.Fprint(stderr, prompt)
		select {
		case sig := <-p.signals:
			fmt.Fprintln(stderr)
			if sig != os.Interrupt {
				return cli.Exit("terminated", exitInterrupted)
			}
			fmt.Fprintln(stderr, "KeyboardInterrupt")
			p.block = nil
		case line, ok := <-in.lines:
			if !ok {
				fmt.Fprintln(stderr)
				if in.err != nil {
					return usageError("reading standard input: %v", in.err)
				}
				if len(p.block) > 0 { // input ended inside a block: run what was typed
					return p.submit(ctx, strings.Join(p.block, "\n")+"\n")
				}
				return nil
			}
			if code, ready := p.add(line); ready {
				if err := p.submit(ctx, code); err != nil {
					return err
				}
			}
		}
	}
}

// add takes one line and returns the code to run once a submission is complete.
func (p *repl) add(line string) (string, bool) {
	blank := strings.TrimSpace(line) == ""
	switch {
	case len(p.block) == 0 && blank:
		return "", false
	case len(p.block) == 0 && !opensBlock(line):
		return line + "\n", true
	case !blank:
		p.block = append(p.block, line)
		return "", false
	}
	code := strings.Join(p.block, "\n") + "\n"
	p.block = nil
	return code, true
}

// opensBlock says whether a first line needs more lines: it ends with ':' (a compound statement)
// or '\', is a decorator, or leaves a bracket or a triple-quoted string open. It skips comments
// and strings; what it misjudges costs one empty line to submit, or a SyntaxError to retype.
func opensBlock(line string) bool {
	if strings.HasPrefix(strings.TrimSpace(line), "@") {
		return true
	}
	depth, last := 0, byte(0) // last: the last character outside strings, comments and blanks
	for i := 0; i < len(line); i++ {
		switch ch := line[i]; ch {
		case '#':
			i = len(line)
		case '"', '\'':
			if triple := strings.Repeat(string(ch), 3); strings.HasPrefix(line[i:], triple) {
				end := strings.Index(line[i+3:], triple)
				if end < 0 {
					return true
				}
				i += 3 + end + 2
			} else {
				for i++; i < len(line) && line[i] != ch; i++ {
					if line[i] == '\\' {
						i++
					}
				}
			}
			last = ch
		case '(', '[', '{':
			depth++
			last = ch
		case ')', ']', '}':
			depth--
			last = ch
		case ' ', '\t':
		default:
			last = ch
		}
	}
	return depth > 0 || last == ':' || last == '\\'
}

// submit runs code as one execution, its output streamed; Ctrl-C cancels it, which interrupts
// the code, and the REPL goes on. It returns an error only when the REPL must end.
func (p *repl) submit(ctx context.Context, code string) error {
	var res runner.Result
	var err error
	sig := interruptible(ctx, p.signals, func(ctx context.Context) {
		res, err = p.s.Execute(ctx, runner.Request{Code: code, Output: p.term.write})
	})
	var said bytes.Buffer
	notes(&said, res)
	if said.Len() > 0 || err != nil || sig != nil {
		p.term.endLine()
	}
	_, _ = said.WriteTo(p.term.stderr)
	switch {
	case errors.Is(err, runner.ErrSessionEnded):
		return cli.Exit(err, exitSessionEnded)
	case sig != nil && sig != os.Interrupt:
		return cli.Exit("terminated", exitInterrupted)
	case sig != nil && err != nil:
		fmt.Fprintln(p.term.stderr, "KeyboardInterrupt (the session goes on)")
	case err != nil:
		fmt.Fprintln(p.term.stderr, "gkexec:", err)
	}
	return nil
}

// interruptible runs f with a context that the first signal to come cancels, and returns that
// signal, or nil if none came.
func interruptible(ctx context.Context, sigs <-chan os.Signal, f func(context.Context)) os.Signal {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	got := make(chan os.Signal, 1)
	go func() {
		defer close(got)
		select {
		case sig := <-sigs:
			got <- sig
			cancel()
		case <-done:
		}
	}()
	f(ctx)
	close(done)
	return <-got
}
