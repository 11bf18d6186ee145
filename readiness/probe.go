package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/reaper"
	"github.com/mattn/go-shellwords"
)

// Runner runs a command to completion and returns how it ended; when ctx is
// done first it kills the command's process group. *reaper.Reaper satisfies it.
type Runner interface {
	Run(ctx context.Context, cmd *exec.Cmd) (reaper.Exit, error)
}

// Probe is one readiness check.
type Probe interface {
	// Check makes one attempt and returns nil when the probe passes. It
	// returns when ctx is done. An error wrapped in backoff.Permanent
	// means no later attempt can pass.
	Check(ctx context.Context, r Runner) error
	// String is the spec the probe was parsed from.
	String() string
}

// kinds lists the probe kinds for error messages.
const kinds = "tcp, file, exec, http, https, https+insecure, unix, log"

// Parse reads a probe spec: tcp:PORT, tcp:HOST:PORT, file:PATH,
// exec:COMMAND, http://HOST[:PORT]/PATH, https://HOST[:PORT]/PATH,
// https+insecure://HOST[:PORT]/PATH (any certificate accepted), unix:PATH
// or log:REGEX (Go RE2 syntax, matched against each line of main's output). COMMAND is split into words as a shell would split it
// (quotes and backslashes), without running a shell.
func Parse(spec string) (Probe, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, fmt.Errorf("probe %q: want KIND:ARGUMENT with KIND one of %s", spec, kinds)
	}
	switch kind {
	case "tcp":
		return parseTCP(spec, arg)
	case "file":
		if arg == "" {
			return nil, fmt.Errorf("probe %q: file: needs a path", spec)
		}
		return File{spec: spec, Path: arg}, nil
	case "exec":
		argv, err := SplitCommand(arg)
		if err != nil {
			return nil, fmt.Errorf("probe %q: %w", spec, err)
		}
		return Exec{spec: spec, Argv: argv}, nil
	case "http", "https":
		return parseHTTP(spec, spec, false)
	case "https+insecure":
		return parseHTTP(spec, "https"+strings.TrimPrefix(spec, kind), true)
	case "log":
		return parseLog(spec, arg)
	case "unix":
		if arg == "" {
			return nil, fmt.Errorf("probe %q: unix: needs a socket path", spec)
		}
		return Unix{spec: spec, Path: arg}, nil
	}
	return nil, fmt.Errorf("probe %q: unknown kind %q (want one of %s)", spec, kind, kinds)
}

// SplitCommand splits a command line into words as a POSIX shell would
// (single and double quotes, backslash escapes) without running one: no
// variables are expanded, and shell operators (; & | < >) are refused
// rather than silently cutting the command short.
func SplitCommand(s string) ([]string, error) {
	p := shellwords.NewParser()
	words, err := p.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("command %q: cannot split it into words: unbalanced quotes, a trailing backslash, or an unquoted ( or )", s)
	}
	if p.Position >= 0 {
		// Position counts characters, not bytes.
		return nil, fmt.Errorf("command %q: contains a shell operator at %q; quote it, or run the command with sh -c", s, string([]rune(s)[p.Position:]))
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("command %q: empty", s)
	}
	return words, nil
}

func parseTCP(spec, arg string) (Probe, error) {
	host, port := "localhost", arg
	if strings.Contains(arg, ":") {
		var err error
		if host, port, err = net.SplitHostPort(arg); err != nil {
			return nil, fmt.Errorf("probe %q: want tcp:PORT or tcp:HOST:PORT", spec)
		}
		if host == "" {
			return nil, fmt.Errorf("probe %q: empty host", spec)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("probe %q: port %q is not a number from 1 to 65535", spec, port)
	}
	return TCP{spec: spec, Addr: net.JoinHostPort(host, port)}, nil
}

// TCP passes when a TCP connection to Addr succeeds.
type TCP struct {
	spec string
	Addr string
}

func (p TCP) String() string { return p.spec }

// Check dials Addr once and closes the connection.
func (p TCP) Check(ctx context.Context, _ Runner) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// File passes when Path exists.
type File struct {
	spec string
	Path string
}

func (p File) String() string { return p.spec }

// Check stats Path once.
func (p File) Check(ctx context.Context, _ Runner) error {
	_, err := os.Stat(p.Path)
	return err
}

// Exec passes when the command exits with status 0.
type Exec struct {
	spec string
	Argv []string
}

func (p Exec) String() string { return p.spec }

// Check runs the command once, in its own process group, with stdin from
// /dev/null; its output is kept only to explain a failure. A command that
// cannot be found or executed fails permanently.
func (p Exec) Check(ctx context.Context, r Runner) error {
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	if cmd.Err != nil {
		return backoff.Permanent(cmd.Err)
	}
	var out tail
	cmd.Stdout, cmd.Stderr = &out, &out
	// A grandchild that keeps the pipe open must not hold the attempt up.
	cmd.WaitDelay = outputDelay
	exit, err := r.Run(ctx, cmd)
	if err != nil {
		if errors.Is(err, reaper.ErrClosed) {
			return err
		}
		return backoff.Permanent(err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if exit.Success() {
		return nil
	}
	if msg := out.lastLine(); msg != "" {
		return fmt.Errorf("%s: %s", exit, msg)
	}
	return errors.New(exit.String())
}
