package plan

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"

	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
)

// Sidecar is one --sidecar: 'COMMAND ARGS' or 'KEY=VALUE ... -- COMMAND
// ARGS'. The words before the first "--" are options only when every one
// of them has the form KEY=VALUE; otherwise the whole value is the command
// (so "runuser -u www-data -- php-fpm -F" is a bare command).
type Sidecar struct {
	Command
	// Name is name=, or (once [NameSidecars] ran) the program's base
	// name, with #N when several share it.
	Name       string
	named      bool
	Ready      []readiness.Probe
	After      bool // start=after
	Restart    mainproc.Restart
	Retries    int
	Essential  bool
	StopSignal syscall.Signal
	// PIDFile is pidfile=: the command is a start command that forks a
	// daemon away, which writes its PID there; "": none.
	PIDFile string
	// readyTimeout is ready-timeout=; nil: --ready-timeout's.
	readyTimeout *time.Duration
}

// ReadyTimeout is how long the sidecar has to get ready (and, with
// pidfile=, to have its daemon adopted): its ready-timeout=, else
// global, --ready-timeout's. 0: no bound.
func (sc *Sidecar) ReadyTimeout(global time.Duration) time.Duration {
	if sc.readyTimeout != nil {
		return *sc.readyTimeout
	}
	return global
}

// sidecarKeys lists the options of a --sidecar, for error messages.
const sidecarKeys = "name, ready, start, restart, retries, essential, stop-signal, user, pidfile, env, dir, ready-timeout"

// ParseSidecar reads one --sidecar value.
func ParseSidecar(line string) (*Sidecar, error) {
	words, err := readiness.SplitCommand(line)
	if err != nil {
		return nil, fmt.Errorf("sidecar %q: %w", line, err)
	}
	sc := &Sidecar{Command: Command{Source: fmt.Sprintf("sidecar %q", readiness.Redact(line)), Line: line}, Restart: mainproc.RestartOnFailure, Retries: 5, Essential: true, StopSignal: syscall.SIGTERM}
	opts, argv := optionWords(words)
	if opts != nil && len(argv) == 0 {
		return nil, fmt.Errorf("sidecar %q: no command after --", line)
	}
	sc.Argv = argv
	seen := map[string]bool{}
	for _, w := range opts {
		key, v, _ := strings.Cut(w, "=")
		if seen[key] && key != "ready" && key != "env" {
			return nil, fmt.Errorf("sidecar %q: %q: %s= given more than once", line, w, key)
		}
		seen[key] = true
		if err := sc.setOption(key, v); err != nil {
			return nil, fmt.Errorf("sidecar %q: %q: %w", line, w, err)
		}
	}
	if sc.Argv[0] == "" {
		return nil, fmt.Errorf("sidecar %q: empty program name", line)
	}
	return sc, nil
}

// optionWords splits words into options and command: the words before the
// first "--" are options when each is KEY=VALUE (and there is a "--").
func optionWords(words []string) (opts, argv []string) {
	for i, w := range words {
		if w == "--" {
			return words[:i:i], words[i+1:]
		}
		if k, _, ok := strings.Cut(w, "="); !ok || k == "" || strings.ContainsAny(k, "/ ") {
			break
		}
	}
	return nil, words
}

func (sc *Sidecar) setOption(key, v string) error {
	switch key {
	case "name":
		if err := checkName(v); err != nil {
			return err
		}
		sc.Name, sc.named = v, true
	case "ready":
		pr, err := readiness.Parse(v)
		if err != nil {
			return err
		}
		if _, ok := pr.(*readiness.Log); ok {
			return fmt.Errorf("probe %q watches main; a sidecar's ready= cannot use it", v)
		}
		if readiness.NotifyOf(sc.Ready) != nil && readiness.NotifyOf([]readiness.Probe{pr}) != nil {
			return fmt.Errorf("given more than once; the sidecar has one $%s", readiness.NotifyEnv)
		}
		sc.Ready = append(sc.Ready, pr)
	case "start":
		switch v {
		case "before":
			sc.After = false
		case "after":
			sc.After = true
		default:
			return errors.New("want before or after")
		}
	case "restart":
		switch r := mainproc.Restart(v); r {
		case mainproc.RestartNo, mainproc.RestartOnFailure, mainproc.RestartAlways:
			sc.Restart = r
		default:
			return errors.New("want no, on-failure or always")
		}
	case "retries":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("want a number, 0 or more")
		}
		sc.Retries = n
	case "essential":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		sc.Essential = b
	case "stop-signal":
		sig, err := mainproc.ParseSignal(v)
		if err != nil {
			return err
		}
		sc.StopSignal = sig
	case "pidfile":
		if !filepath.IsAbs(v) || strings.ContainsRune(v, 0) {
			return errors.New("want an absolute path")
		}
		if strings.HasSuffix(v, "/") {
			return errors.New("want a file's path, not a directory's")
		}
		sc.PIDFile = filepath.Clean(v)
	case "user", "env", "dir":
		return sc.setCommandOption(key, v)
	case "ready-timeout":
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return errors.New("want a duration, as 90s or 3m (0: no bound)")
		}
		sc.readyTimeout = &d
	default:
		return fmt.Errorf("unknown option %q (want one of %s)", key, sidecarKeys)
	}
	return nil
}

// checkName refuses a name= that cannot name a child: empty, or with
// control characters, which would reach the terminal raw in every
// prefixed line.
func checkName(v string) error {
	if v == "" {
		return errors.New("empty name")
	}
	if strings.ContainsFunc(v, unicode.IsControl) {
		return errors.New("a name may not hold control characters")
	}
	return nil
}

// NameSidecars gives every sidecar without name= its program's base name,
// with "#N" (its position among the sidecars, from 1) when several share
// it, and refuses two sidecars with the same name; flag names where they
// were given (--sidecar, or MAINSTAY_SIDECAR).
func NameSidecars(l []*Sidecar, flag string) error {
	argv0s, given := make([]string, len(l)), make([]string, len(l))
	for i, sc := range l {
		argv0s[i] = sc.Argv[0]
		if sc.named {
			given[i] = sc.Name
		}
	}
	seen := map[string]bool{}
	for i, name := range ShortNames(argv0s, given) {
		l[i].Name = name
		if seen[name] {
			return fmt.Errorf("%s: sidecar %q: name %q is taken by another sidecar; give one name=", flag, l[i].Line, name)
		}
		seen[name] = true
	}
	return nil
}

// CheckCanSwitch refuses a sidecar's user= when mainstay cannot switch
// users.
func CheckCanSwitch(l []*Sidecar) error {
	for _, sc := range l {
		if sc.User != nil {
			if err := sc.User.CheckCanSwitch(); err != nil {
				return fmt.Errorf("sidecar %q: user=%s: %w", sc.Line, sc.User.Spec, err)
			}
		}
	}
	return nil
}

// CheckDaemons refuses pidfile= when mainstay is neither PID 1 nor a child
// subreaper (subreaper is false): a daemon its start command forks away
// would not become mainstay's child, so it could be neither adopted nor
// reaped.
func (p *Plan) CheckDaemons(subreaper bool) error {
	if subreaper {
		return nil
	}
	for _, sc := range p.Sidecars {
		if sc.PIDFile != "" {
			return fmt.Errorf("sidecar %q: pidfile= needs mainstay to be PID 1 or a child subreaper, and the kernel refused PR_SET_CHILD_SUBREAPER", sc.Line)
		}
	}
	return nil
}
