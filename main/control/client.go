package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	mainproc "github.com/mainstay-dev/mainstay/main"
)

// Exit statuses of the client subcommands (status, restart, stop, start,
// signal). health exits only 0 or 1: Docker reserves 2 in a HEALTHCHECK.
const (
	ExitDone     = 0 // done
	ExitFailed   = 1 // refused, denied, unknown name, failed, busy, no answer
	ExitUsage    = 2 // bad usage, found by the command before dialling
	ExitNoServer = 3 // no mainstay answers at the path ([ErrNoServer])
)

// ExitCode is the exit status of a client subcommand that ended with err
// (not health's: 0 when healthy, 1 otherwise, errors included).
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitDone
	case errors.Is(err, ErrNoServer):
		return ExitNoServer
	default:
		return ExitFailed
	}
}

// maxResponse bounds an answer line the client reads: the socket's
// directory may belong to another user, who could put a server of their
// own in its place.
const maxResponse = 4 << 20

// Client is one connection to a control socket; its requests go one after
// the other. A Client is not safe for concurrent use.
type Client struct {
	conn net.Conn
	r    *bufio.Reader
	path string
}

// Dial connects to the control socket at path ([DefaultPath] when empty).
// Nothing there, or a socket nobody serves, is [ErrNoServer]; any other
// failure (permission denied) is returned as it is, with the path.
func Dial(path string) (*Client, error) {
	if path == "" {
		path = DefaultPath
	}
	if strings.HasPrefix(path, "@") {
		return nil, fmt.Errorf("%s: an abstract socket is never used: give a file path", path)
	}
	conn, err := net.Dial("unix", path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR) {
			return nil, fmt.Errorf("%w at %s", ErrNoServer, path)
		}
		var oe *net.OpError
		if errors.As(err, &oe) {
			err = oe.Err
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Client{conn: conn, r: bufio.NewReader(conn), path: path}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Do sends req (its V set to [Version] when 0) and reads the answer; it
// blocks until the answer, ctx's deadline or ctx's cancellation. A
// refusal, or any answer with OK false, is returned as the answer's
// [*Error].
func (c *Client) Do(ctx context.Context, req Request) (*Response, error) {
	if req.V == 0 {
		req.V = Version
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	_, werr := c.conn.Write(append(b, '\n'))
	line, err := c.readLine()
	if err != nil {
		if werr != nil {
			err = werr
		}
		return nil, c.ioError(ctx, err)
	}
	// A line read after a failed write is a refusal the server sent as it
	// accepted the connection ("busy"), closing it before the request
	// came: its answer, not the broken pipe, says what happened.
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("%s: not an answer of mainstay's: %v", c.path, err)
	}
	if !resp.OK {
		if resp.Error == nil {
			return nil, fmt.Errorf("%s: an answer neither ok nor an error", c.path)
		}
		return &resp, resp.Error
	}
	return &resp, nil
}

// readLine reads one answer line, at most maxResponse bytes.
func (c *Client) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, err := c.r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxResponse {
			return nil, fmt.Errorf("answer longer than %d bytes", maxResponse)
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("connection closed without an answer")
			}
			return line, err
		}
	}
}

func (c *Client) ioError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: no answer: %w", c.path, context.Cause(ctx))
	}
	var oe *net.OpError // its addresses are the server's view of the path
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return fmt.Errorf("%s: %w", c.path, err)
}

// Status asks for the children named (every child when none).
func (c *Client) Status(ctx context.Context, names ...string) (*Status, error) {
	resp, err := c.Do(ctx, Request{Op: OpStatus, Names: names})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, fmt.Errorf("%s: a status answer without a status", c.path)
	}
	return resp.Status, nil
}

// Health asks for the health at level; the client exits 0 when it is
// Healthy, 1 otherwise.
func (c *Client) Health(ctx context.Context, level Level) (*Health, error) {
	resp, err := c.Do(ctx, Request{Op: OpHealth, Level: level})
	if err != nil {
		return nil, err
	}
	if resp.Health == nil {
		return nil, fmt.Errorf("%s: a health answer without a health", c.path)
	}
	return resp.Health, nil
}

// Restart restarts the children named and returns once they are ready
// again (or failed to be).
func (c *Client) Restart(ctx context.Context, names ...string) error {
	_, err := c.Do(ctx, Request{Op: OpRestart, Names: names})
	return err
}

// Stop stops the children named and keeps them down.
func (c *Client) Stop(ctx context.Context, names ...string) error {
	_, err := c.Do(ctx, Request{Op: OpStop, Names: names})
	return err
}

// Start starts the children named, stopped or given up, and returns once
// they are ready (or failed to be).
func (c *Client) Start(ctx context.Context, names ...string) error {
	_, err := c.Do(ctx, Request{Op: OpStart, Names: names})
	return err
}

// Signal sends sig to the children named.
func (c *Client) Signal(ctx context.Context, sig syscall.Signal, names ...string) error {
	_, err := c.Do(ctx, Request{Op: OpSignal, Signal: mainproc.SignalName(sig), Names: names})
	return err
}
