package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/gkexec/gkexec/internal/wire"
)

// Conn is an attach to a session's entrypoint whose output is read line by line by one pump, so
// that executions (and pings) take lines with their own deadlines without ever cutting the
// stream.
type Conn struct {
	*Attachment
	lines chan []byte
	wmu   sync.Mutex // one writer at a time on stdin
}

// connLines bounds the lines of output waiting for a reader: with lines of at most
// wire.MaxLineBytes, 1 MiB per attached session beside its execution's decoder.
const connLines = 16

// NewConn starts reading a's output line by line.
func NewConn(a *Attachment) *Conn {
	c := &Conn{Attachment: a, lines: make(chan []byte, connLines)}
	go c.pump()
	return c
}

func (c *Conn) pump() {
	defer close(c.lines)
	br := bufio.NewReaderSize(c.out, wire.MaxLineBytes)
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			for err == bufio.ErrBufferFull { // no record is that long: drop it
				_, err = br.ReadSlice('\n')
			}
			continue
		}
		if len(line) > 0 {
			// Nobody may read the line (the code wrote it between executions, the session is
			// closed): the pump must still end with the attach, not hold its buffers forever.
			select {
			case c.lines <- append([]byte(nil), bytes.TrimRight(line, "\r\n")...):
			case <-c.done:
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Next is the next line of output, newline included.
func (c *Conn) Next(ctx context.Context) ([]byte, error) {
	select {
	case line, ok := <-c.lines:
		if !ok {
			err := c.err
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("the attach stream ended: %w", err)
		}
		return append(line, '\n'), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Send writes b to the entrypoint's stdin, one writer at a time.
func (c *Conn) Send(ctx context.Context, b []byte) error {
	written := make(chan error, 1)
	go func() {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		_, err := c.stdin.Write(b)
		written <- err
	}()
	select {
	case err := <-written:
		if err != nil {
			return c.why(err)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// why is the reason a write to the stream failed: the attach's own error (the API server or the
// kubelet refused it, a connection reset) once the stream ended, not the closed pipe it left.
func (c *Conn) why(err error) error {
	select {
	case <-c.done: // closed after c.err is set
		if c.err != nil && c.err != io.EOF {
			return fmt.Errorf("the attach stream ended: %w", c.err)
		}
	case <-time.After(time.Second):
	}
	return err
}

// Ping checks the attach end to end and asks the entrypoint which session it holds; lines that
// come before the answer (an interrupted execution's) are skipped.
func (c *Conn) Ping(ctx context.Context) (wire.PingAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, AttachTimeout)
	defer cancel()
	if err := c.Send(ctx, wire.Ping); err != nil {
		return wire.PingAnswer{}, err
	}
	for {
		line, err := c.Next(ctx)
		if err != nil {
			return wire.PingAnswer{}, err
		}
		if answer, ok := wire.ParsePing(line); ok {
			return answer, nil
		}
	}
}
