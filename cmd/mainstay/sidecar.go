package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/mainstay-dev/mainstay/helpers"
	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
)

// sidecarFlag is one --sidecar: 'COMMAND ARGS' or 'KEY=VALUE ... -- COMMAND
// ARGS'. The words before the first "--" are options only when every one
// of them has the form KEY=VALUE; otherwise the whole value is the command
// (so "runuser -u www-data -- php-fpm -F" is a bare command).
type sidecarFlag struct {
	line       string
	argv       []string
	name       string // "" until named: the program's base name, #N when shared
	named      bool   // name= given
	ready      []readiness.Probe
	after      bool // start=after
	restart    mainproc.Restart
	retries    int
	essential  bool
	stopSignal syscall.Signal
	user       *userFlag // user=, nil for --user's
}

// sidecarKeys lists the options of a --sidecar, for error messages.
const sidecarKeys = "name, ready, start, restart, retries, essential, stop-signal, user"

// parseSidecar reads one --sidecar value.
func parseSidecar(line string) (*sidecarFlag, error) {
	words, err := readiness.SplitCommand(line)
	if err != nil {
		return nil, fmt.Errorf("sidecar %q: %w", line, err)
	}
	sc := &sidecarFlag{line: line, restart: mainproc.RestartOnFailure, retries: 5, essential: true, stopSignal: syscall.SIGTERM}
	opts, argv := optionWords(words)
	if opts != nil && len(argv) == 0 {
		return nil, fmt.Errorf("sidecar %q: no command after --", line)
	}
	sc.argv = argv
	for _, w := range opts {
		key, v, _ := strings.Cut(w, "=")
		if err := sc.setOption(key, v); err != nil {
			return nil, fmt.Errorf("sidecar %q: %q: %w", line, w, err)
		}
	}
	if sc.argv[0] == "" {
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

func (sc *sidecarFlag) setOption(key, v string) error {
	switch key {
	case "name":
		if v == "" {
			return errors.New("empty name")
		}
		sc.name, sc.named = v, true
	case "ready":
		pr, err := readiness.Parse(v)
		if err != nil {
			return err
		}
		if _, ok := pr.(*readiness.Log); ok {
			return fmt.Errorf("probe %q watches main; a sidecar's ready= cannot use it", v)
		}
		if readiness.NotifyOf(sc.ready) != nil && readiness.NotifyOf([]readiness.Probe{pr}) != nil {
			return fmt.Errorf("given more than once; the sidecar has one $%s", readiness.NotifyEnv)
		}
		sc.ready = append(sc.ready, pr)
	case "start":
		switch v {
		case "before":
			sc.after = false
		case "after":
			sc.after = true
		default:
			return errors.New("want before or after")
		}
	case "restart":
		switch r := mainproc.Restart(v); r {
		case mainproc.RestartNo, mainproc.RestartOnFailure, mainproc.RestartAlways:
			sc.restart = r
		default:
			return errors.New("want no, on-failure or always")
		}
	case "retries":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errors.New("want a number, 0 or more")
		}
		sc.retries = n
	case "essential":
		b, err := strconv.ParseBool(v)
		if err != nil {
			return errors.New("want true or false")
		}
		sc.essential = b
	case "stop-signal":
		sig, err := mainproc.ParseSignal(v)
		if err != nil {
			return err
		}
		sc.stopSignal = sig
	case "user":
		u := &userFlag{}
		if err := u.set(v); err != nil {
			return err
		}
		sc.user = u
	default:
		return fmt.Errorf("unknown option %q (want one of %s)", key, sidecarKeys)
	}
	return nil
}

// sidecarList holds the --sidecar values, one per line in MAINSTAY_SIDECAR.
type sidecarList []*sidecarFlag

func (l *sidecarList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "sidecar", func(s string) error {
		sc, err := parseSidecar(s)
		if err == nil {
			*l = append(*l, sc)
		}
		return err
	})
}

// nameSidecars gives every sidecar without name= its program's base name,
// with "#N" (its position among the sidecars, from 1) when several share
// it, and refuses two sidecars with the same name.
func (l sidecarList) name() error {
	count := map[string]int{}
	for _, sc := range l {
		if !sc.named {
			count[filepath.Base(sc.argv[0])]++
		}
	}
	seen := map[string]bool{}
	for i, sc := range l {
		if !sc.named {
			sc.name = filepath.Base(sc.argv[0])
			if count[sc.name] > 1 {
				sc.name += "#" + strconv.Itoa(i+1)
			}
		}
		if seen[sc.name] {
			return fmt.Errorf("sidecar %q: name %q is taken by another sidecar; give one name=", sc.line, sc.name)
		}
		seen[sc.name] = true
	}
	return nil
}

// checkCanSwitch refuses user= when mainstay cannot switch users.
func (l sidecarList) checkCanSwitch() error {
	for _, sc := range l {
		if sc.user != nil && os.Geteuid() != 0 {
			return fmt.Errorf("sidecar %q: user=%s: mainstay runs as uid %d, and only root can switch to another user", sc.line, sc.user.spec, os.Geteuid())
		}
	}
	return nil
}

// sidecars are the running --sidecar processes, in start order, and the
// policy around them: which ones are essential, what health says.
type sidecars struct {
	cli *CLI
	r   *reaper.Reaper
	log *slog.Logger
	// ended is called once for an essential sidecar that ended for good
	// without being asked to: the stop of everything begins.
	ended func(*sidecarError)

	mu       sync.Mutex
	running  []*runningSidecar
	stopping bool
	health   func() // called when a sidecar's state changes
}

type runningSidecar struct {
	flag *sidecarFlag
	sc   *mainproc.Sidecar
}

// sidecarError is an essential sidecar that ended: its exit decides
// mainstay's exit code.
type sidecarError struct {
	name   string
	result mainproc.SidecarResult
}

func (e *sidecarError) Error() string {
	if e.result.Err != nil {
		return fmt.Sprintf("sidecar %s: %v", e.name, e.result.Err)
	}
	if e.result.GaveUp {
		return fmt.Sprintf("sidecar %s gave up after %d restarts (%s)", e.name, e.result.Restarts, e.result.Exit)
	}
	return fmt.Sprintf("sidecar %s ended (%s)", e.name, e.result.Exit)
}

// any reports whether some sidecar has start=after (after set) or
// start=before.
func (s *sidecars) any(after bool) bool {
	for _, f := range s.cli.Sidecar {
		if f.after == after {
			return true
		}
	}
	return false
}

// start starts the sidecars with start=after when after is set, else
// those with start=before, in order. A start=before sidecar must be ready
// before the next one starts: start returns a *sidecarNotReady when one is
// not ready within --ready-timeout, its *sidecarError when it ended first,
// and the cause when ctx is done first.
func (s *sidecars) start(ctx context.Context, after bool) error {
	for _, f := range s.cli.Sidecar {
		if f.after != after {
			continue
		}
		rs := s.launch(f)
		if after {
			continue
		}
		if err := s.waitReady(ctx, rs); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits until a run of rs is ready: for --ready-timeout from its
// start, across its restarts, a limit its ready=notify's
// EXTEND_TIMEOUT_USEC may move later. It returns a *sidecarNotReady when
// the time is up, its *sidecarError when it ended first, and the cause
// when ctx is done first.
func (s *sidecars) waitReady(ctx context.Context, rs *runningSidecar) error {
	f := rs.flag
	dl := readiness.NewDeadline(s.cli.ReadyTimeout)
	defer dl.Stop()
	extended := readiness.NotifyOf(f.ready).Extensions()
	for {
		select {
		case <-rs.sc.FirstReady():
			return nil
		case <-rs.sc.Ended():
			return &sidecarError{name: f.name, result: rs.sc.Result()}
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-dl.C():
			return &sidecarNotReady{name: f.name, after: dl.Timeout()}
		case until := <-extended:
			dl.Extend(until, s.log.With("sidecar", f.name))
		}
	}
}

// sidecarNotReady is a start=before sidecar not ready in time.
type sidecarNotReady struct {
	name  string
	after time.Duration
}

func (e *sidecarNotReady) Error() string {
	return fmt.Sprintf("sidecar %s not ready after %s", e.name, e.after)
}

func (s *sidecars) launch(f *sidecarFlag) *runningSidecar {
	c := s.cli
	u := &c.User
	if f.user != nil {
		u = f.user
	}
	spec := mainproc.SidecarSpec{
		Name: f.name,
		Spec: reaper.Spec{
			Argv:       f.argv,
			Env:        u.environ(),
			Credential: u.cred,
			Stdout:     os.Stdout,
			Stderr:     os.Stderr,
			Prefix:     helpers.ExpandPrefix(c.HelperPrefix, f.name),
		},
		StopSignal: f.stopSignal,
		Restart:    f.restart,
		Retries:    f.retries,
		NewBackOff: c.restartBackOff,
		MaxDelay:   c.RestartMaxDelay,
		OnState:    func(mainproc.State) { s.changed() },
	}
	if len(f.ready) > 0 {
		cfg := c.probeConfig(s.r, 0, s.log.With("sidecar", f.name))
		cfg.Runner = u.runner(s.r)
		spec.Ready = func() (mainproc.ReadyCheck, error) {
			probes, notify := readiness.ForRun(f.ready)
			if notify != nil {
				if err := notify.Listen(); err != nil {
					return nil, err
				}
			}
			return &runReady{probes: probes, notify: notify, uid: u.uid(), cfg: cfg}, nil
		}
	}
	s.mu.Lock()
	rs := &runningSidecar{flag: f}
	s.running = append(s.running, rs)
	s.mu.Unlock()
	rs.sc = mainproc.StartSidecar(s.r, spec, s.log)
	go func() {
		<-rs.sc.Ended()
		res := rs.sc.Result()
		if res.Stopped || s.isStopping() {
			return
		}
		if f.essential {
			s.ended(&sidecarError{name: f.name, result: res})
			return
		}
		s.log.Warn("non-essential sidecar ended; left down", "sidecar", f.name, "exit_code", res.Code, "restart", res.Restarts, "gave_up", res.GaveUp)
	}()
	return rs
}

// runReady is the ready= check of one run of a sidecar: its probes and,
// with ready=notify, the run's own notify socket, whose address only this
// run gets; it is closed once the run has exited. The sidecar's STOPPING=1
// is only logged: health's "stopping" means the container is going away,
// and the sidecar's exit that follows is handled as any exit (a restart,
// health "restarting", or the end of everything).
type runReady struct {
	probes []readiness.Probe
	notify *readiness.Notify // nil without ready=notify
	uid    int               // the sidecar's user: its messages are believed
	cfg    readiness.Config  // no timeout: sidecars.waitReady bounds the wait
}

func (c *runReady) Env() []string {
	if c.notify == nil {
		return nil
	}
	return []string{c.notify.Env()}
}

func (c *runReady) Wait(ctx context.Context, pid int) error {
	if c.notify != nil {
		c.notify.Start(pid, c.uid, c.cfg.Log)
	}
	return readiness.Wait(ctx, c.probes, c.cfg)
}

func (c *runReady) Close() { c.notify.Close() }

func (s *sidecars) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

func (s *sidecars) changed() {
	s.mu.Lock()
	h := s.health
	s.mu.Unlock()
	if h != nil {
		h()
	}
}

// restarting reports whether an essential sidecar is not running and
// ready: health is then "restarting", not "ready".
func (s *sidecars) restarting() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rs := range s.running {
		if rs.flag.essential && rs.sc.State() != mainproc.Ready {
			return true
		}
	}
	return false
}

// stopAll ends mainstay's children once main has exited (or never
// started): the sidecars, then the sweep of whatever is left, all by the
// stop's one deadline.
func (s *sidecars) stopAll(deadline time.Time) {
	s.stop(deadline)
	s.r.Sweep(deadline)
}

// stop stops every sidecar, in the reverse of their start order, each with
// its own stop signal, all within the stop's one deadline.
func (s *sidecars) stop(deadline time.Time) {
	s.mu.Lock()
	s.stopping = true
	list := s.running
	s.mu.Unlock()
	for i := len(list) - 1; i >= 0; i-- {
		list[i].sc.Stop(deadline)
	}
}
