package readiness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/reaper"
	"github.com/mattn/go-shellwords"
)

// Probe is one readiness check.
type Probe interface {
	// Check makes one attempt and returns nil when the probe passes. It
	// returns when ctx is done. An error wrapped in backoff.Permanent
	// means no later attempt can pass.
	// r starts an exec probe's command.
	Check(ctx context.Context, r reaper.Runner) error
	// String is the spec the probe was parsed from, with the password of
	// a URL in it replaced by xxxxx: what log lines and errors show.
	String() string
}

// kinds lists the probe kinds for error messages.
const kinds = "tcp, file, exec, http, https, https+insecure, unix, log, notify"

// Parse reads a probe spec: tcp:PORT, tcp:HOST:PORT (or tcp://HOST:PORT),
// file:PATH, exec:COMMAND, http://HOST[:PORT]/PATH, https://HOST[:PORT]/PATH,
// https+insecure://HOST[:PORT]/PATH (any certificate accepted), unix:PATH
// (or unix:///PATH), log:REGEX (Go RE2 syntax, matched against each line of
// main's output) or notify (main sends READY=1 to $NOTIFY_SOCKET). COMMAND
// is split into words as a shell would split it (quotes and backslashes),
// without running a shell.
//
// A spec that can never pass whatever main does is refused: a host that
// is neither an IP address nor a syntactically valid host name, a socket
// path too long for the kernel, a NUL byte in a path. A host name that
// does not resolve is accepted: it may resolve later.
//
// The probe's String, and every error Parse returns, show the spec with
// the password of its URL replaced by xxxxx (http://USER:xxxxx@HOST/...,
// as (*url.URL).Redacted shows it; a URL inside an exec: command too):
// they end up in log lines. The probe itself uses the real credentials.
func Parse(spec string) (Probe, error) {
	if spec == "notify" {
		return newNotify(), nil
	}
	kind, arg, ok := strings.Cut(spec, ":")
	// What String and every error show: the spec without its password.
	isURL := kind == "http" || kind == "https" || kind == "https+insecure" || kind == "tcp" && strings.HasPrefix(arg, "//")
	shown := redactSpec(spec, isURL)
	if !ok {
		return nil, fmt.Errorf("probe %q: want KIND:ARGUMENT with KIND one of %s", shown, kinds)
	}
	switch kind {
	case "tcp":
		if rest, ok := strings.CutPrefix(arg, "//"); ok {
			return parseTCP(shown, rest, true)
		}
		return parseTCP(shown, arg, false)
	case "file":
		if arg == "" {
			return nil, fmt.Errorf("probe %q: file: needs a path", shown)
		}
		if strings.IndexByte(arg, 0) >= 0 {
			return nil, fmt.Errorf("probe %q: the path contains a NUL byte", shown)
		}
		return File{spec: shown, Path: arg}, nil
	case "exec":
		argv, err := SplitCommand(arg)
		if err != nil {
			// SplitCommand's error quotes the command.
			return nil, fmt.Errorf("probe %q: %s", shown, Redact(err.Error()))
		}
		return Exec{spec: shown, Argv: argv}, nil
	case "http", "https":
		return parseHTTP(shown, spec, spec, false)
	case "https+insecure":
		return parseHTTP(shown, spec, "https"+strings.TrimPrefix(spec, kind), true)
	case "log":
		return parseLog(shown, arg)
	case "unix":
		return parseUnix(shown, arg)
	case "notify":
		return nil, fmt.Errorf("probe %q: notify takes no argument; write it as notify", shown)
	}
	return nil, fmt.Errorf("probe %q: unknown kind %q (want one of %s)", shown, kind, kinds)
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

// parseTCP reads tcp:PORT, tcp:HOST:PORT, or, with url set, the
// tcp://HOST:PORT of dockerize and wait-for (the host is required there).
// spec is the spec as shown.
func parseTCP(spec, arg string, url bool) (Probe, error) {
	want := "want tcp:PORT or tcp:HOST:PORT"
	if url {
		want = "want tcp://HOST:PORT"
		arg = strings.TrimSuffix(arg, "/")
		if strings.Contains(arg, "@") {
			// Not split: its parts could show a password.
			return nil, fmt.Errorf("probe %q: %s, without user information", spec, want)
		}
	}
	host, port := "localhost", arg
	if url || strings.Contains(arg, ":") {
		var err error
		if host, port, err = net.SplitHostPort(arg); err != nil {
			return nil, fmt.Errorf("probe %q: %s", spec, want)
		}
		if host == "" {
			return nil, fmt.Errorf("probe %q: empty host", spec)
		}
		if err := checkHost(host); err != nil {
			return nil, fmt.Errorf("probe %q: %v", spec, err)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("probe %q: port %q is not a number from 1 to 65535", spec, port)
	}
	return TCP{spec: spec, Addr: net.JoinHostPort(host, port)}, nil
}

// checkHost accepts an IP address (IPv6 with a zone too) or a name that
// Go's resolver would look up: letters, digits, '-', '_' and '.', in
// labels of 1 to 63 bytes, 253 bytes at most. Go's resolver answers "no
// such host" for any other name without asking anyone, so such a host can
// never pass. Whether the name resolves is not checked: it may later.
func checkHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	bad := fmt.Errorf("host %q is neither an IP address nor a valid host name", host)
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return bad
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return bad
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return bad
			}
		}
	}
	return nil
}

// maxSocketPath is the longest path a Unix socket address holds
// (sun_path is 108 bytes, the last one a NUL).
const maxSocketPath = 107

// parseUnix reads unix:PATH or the unix:///PATH of dockerize and wait-for;
// spec is the spec as shown.
func parseUnix(spec, arg string) (Probe, error) {
	path := arg
	if rest, ok := strings.CutPrefix(arg, "//"); ok {
		if !strings.HasPrefix(rest, "/") {
			return nil, fmt.Errorf("probe %q: want unix:///ABSOLUTE/PATH or unix:PATH", spec)
		}
		path = rest
	}
	switch {
	case path == "":
		return nil, fmt.Errorf("probe %q: unix: needs a socket path", spec)
	case strings.IndexByte(path, 0) >= 0:
		return nil, fmt.Errorf("probe %q: the path contains a NUL byte", spec)
	case len(path) > maxSocketPath:
		return nil, fmt.Errorf("probe %q: socket path is %d bytes, longer than the %d a Unix socket address holds", spec, len(path), maxSocketPath)
	}
	return Unix{spec: spec, Path: path}, nil
}

// TCP passes when a TCP connection to Addr succeeds.
type TCP struct {
	spec string
	Addr string
}

func (p TCP) String() string { return p.spec }

// Check dials Addr once and closes the connection.
func (p TCP) Check(ctx context.Context, _ reaper.Runner) error {
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
func (p File) Check(ctx context.Context, _ reaper.Runner) error {
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
// cannot be found or executed fails permanently; any other failure to
// start it (no process, file descriptor or memory to spare) is a failed
// attempt like a non-zero exit. A grandchild that keeps the output open
// does not hold the attempt up: the reaper stops reading it
// [reaper.DefaultOutputWait] after the command exited.
func (p Exec) Check(ctx context.Context, r reaper.Runner) error {
	var out tail
	exit, err := r.Run(ctx, reaper.Spec{Name: "probe " + p.spec, Argv: p.Argv, Stdout: &out, Stderr: &out})
	if err != nil {
		if cannotExecute(err) {
			return backoff.Permanent(err)
		}
		// Out of processes, file descriptors or memory (EAGAIN, EMFILE,
		// ENOMEM, ...), or the reaper closing: a later attempt may start.
		return err
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

// cannotExecute reports whether a start error means the program can never
// run: it does not exist, or exists but cannot be executed. These are the
// errors for which a shell exits 127 or 126.
func cannotExecute(err error) bool {
	if errors.Is(err, exec.ErrNotFound) {
		return true
	}
	for _, errno := range []syscall.Errno{
		syscall.ENOENT, syscall.ENOTDIR, syscall.ELOOP, syscall.ENAMETOOLONG, // not found
		syscall.EACCES, syscall.EPERM, syscall.ENOEXEC, syscall.EISDIR, syscall.ELIBBAD, syscall.E2BIG, // cannot execute
	} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
