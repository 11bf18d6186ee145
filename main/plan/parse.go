package plan

import (
	"fmt"
	"strings"
	"syscall"

	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
)

// Probe is a readiness probe, parsed.
type Probe = readiness.Probe

// The per-kind caps of a probe's retry delay, for --help.
const (
	CheapMaxInterval = readiness.CheapMaxInterval
	MaxInterval      = readiness.MaxInterval
)

// NotifyEnv is the variable of the sd_notify protocol.
const NotifyEnv = readiness.NotifyEnv

// Redact hides the password of every URL in s (USER:xxxxx@), for messages
// that quote what the user wrote.
func Redact(s string) string { return readiness.Redact(s) }

// SplitCommand splits a command line into words as a shell would (quotes,
// backslashes), refusing shell operators; no shell is run.
func SplitCommand(line string) ([]string, error) { return readiness.SplitCommand(line) }

// ParseSignal reads a signal given by name (TERM, SIGTERM) or number.
func ParseSignal(s string) (syscall.Signal, error) { return mainproc.ParseSignal(s) }

// AddReady adds the --ready probe spec to main's probes: any kind, but
// one notify at most (main has one $NOTIFY_SOCKET).
func AddReady(probes []readiness.Probe, spec string) ([]readiness.Probe, error) {
	pr, err := readiness.Parse(spec)
	if err != nil {
		return probes, err
	}
	if readiness.NotifyOf(probes) != nil && readiness.NotifyOf([]readiness.Probe{pr}) != nil {
		return probes, fmt.Errorf("probe %q: given more than once; main has one $%s", spec, readiness.NotifyEnv)
	}
	return append(probes, pr), nil
}

// AddWaitFor adds the --wait-for probe spec to the dependencies: the
// kinds of --ready but those that watch main, which is not started yet.
func AddWaitFor(probes []readiness.Probe, spec string) ([]readiness.Probe, error) {
	pr, err := readiness.Parse(spec)
	if err != nil {
		return probes, err
	}
	if needsMain(pr) {
		return probes, fmt.Errorf("probe %q: watches main, which --wait-for runs before; use it with --ready", spec)
	}
	return append(probes, pr), nil
}

// needsMain reports whether a probe watches main itself (its output, its
// notifications), and so cannot be a --wait-for dependency.
func needsMain(pr readiness.Probe) bool {
	if _, ok := pr.(*readiness.Log); ok {
		return true
	}
	s := pr.String()
	return s == "notify" || strings.HasPrefix(s, "notify:")
}
