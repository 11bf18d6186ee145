package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"syscall"

	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/main/control"
	"github.com/mainstay-dev/mainstay/main/plan"
	"github.com/mainstay-dev/mainstay/main/registry"
)

// controller is the control socket's [control.Handler] over one run: it
// reads the registry and the phase, and hands an operator's restart, stop
// and start to the sidecars' own goroutines, a signal to main's signal
// loop or a sidecar's group. It changes no child itself.
type controller struct {
	srv *control.Server // nil: no socket

	mu       sync.Mutex
	l        *life // nil until the run's life exists
	started  bool  // start-up is over: main ready, helpers done
	stopping bool  // life.stop began
}

// listenControl opens the control socket that p asks for (--control-socket).
// At the default path a failure is one warning and no socket; at a path
// given explicitly it is returned, as a usage error (nothing is started
// yet). "off" is no socket. The controller is never nil.
func listenControl(p *plan.Plan, log *slog.Logger, stderr io.Writer) (*controller, error) {
	c := &controller{}
	path := p.ControlSocket
	if path == "" || path == "off" {
		return c, nil
	}
	srv, err := control.Listen(path, c, log)
	switch {
	case err == nil:
		c.srv = srv
		log.Debug("control socket listening", "path", path)
	case path == control.DefaultPath:
		log.Warn("no control socket: mainstay status, restart, stop, start and signal will not answer", "path", path, "err", err)
	default:
		src := p.ControlSocketSource
		if src == "" {
			src = "--control-socket"
		}
		err = fmt.Errorf("%s: %w", src, err)
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return nil, err
	}
	return c, nil
}

// attach gives the controller the run's life.
func (c *controller) attach(l *life) {
	c.mu.Lock()
	c.l = l
	c.mu.Unlock()
}

// ready marks the end of start-up: restart, stop and start are taken.
func (c *controller) ready() {
	c.mu.Lock()
	c.started = true
	c.mu.Unlock()
}

// stop marks the beginning of the stop: restart, stop and start are refused.
func (c *controller) stop() {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.stopping = true
	c.mu.Unlock()
}

// close closes the socket, once the run is over.
func (c *controller) close() {
	if c.srv != nil {
		c.srv.Close()
	}
}

func (c *controller) state() (l *life, started, stopping bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.l, c.started, c.stopping
}

// Status is every registered child, with its command (passwords
// redacted), the phase and whether the container is ready.
func (c *controller) Status() control.Status {
	l, started, stopping := c.state()
	st := control.Status{Phase: control.PhaseStarting, Children: []control.Child{}}
	switch {
	case stopping:
		st.Phase = control.PhaseStopping
	case !started:
	case l.sidecars.restarting():
		st.Phase = control.PhaseRestarting
	default:
		st.Phase, st.Ready = control.PhaseReady, true
	}
	if l == nil {
		return st
	}
	argv := l.commands()
	for _, i := range l.registry.List() {
		ch := control.ChildFrom(i)
		if a, ok := argv[i.Name]; ok {
			ch.Command = make([]string, len(a))
			for k, w := range a {
				ch.Command[k] = plan.Redact(w)
			}
		}
		st.Children = append(st.Children, ch)
	}
	return st
}

// commands maps the names of the registry to their argv, for status.
func (l *life) commands() map[string][]string {
	p := l.plan
	m := map[string][]string{"main": p.Main.Argv}
	for _, sc := range p.Sidecars {
		m[sc.Name] = sc.Argv
	}
	for _, c := range p.Crons {
		m[c.Name] = c.Argv
	}
	add := func(kind registry.Kind, cmds []plan.Command) {
		argv0s := make([]string, len(cmds))
		for i, c := range cmds {
			argv0s[i] = c.Argv[0]
		}
		for i, n := range plan.ShortNames(argv0s, nil) {
			m[string(kind)+" "+n] = cmds[i].Argv
		}
	}
	add(registry.Before, p.Before)
	if p.HelpersDir == "" { // else the names count the directory's files too
		add(registry.Helper, p.Helpers)
	}
	return m
}

func (c *controller) Restart(ctx context.Context, names []string) error {
	return c.each(ctx, names, (*mainproc.Sidecar).Restart)
}

func (c *controller) Stop(ctx context.Context, names []string) error {
	return c.each(ctx, names, (*mainproc.Sidecar).Down)
}

func (c *controller) Start(ctx context.Context, names []string) error {
	return c.each(ctx, names, (*mainproc.Sidecar).Start)
}

// each checks that every name is a sidecar and that it is the time, then
// does f to each of them, at once, and returns their errors.
func (c *controller) each(ctx context.Context, names []string, f func(*mainproc.Sidecar, context.Context, string) error) error {
	l, started, stopping := c.state()
	if l == nil {
		return control.ErrStarting
	}
	list := make([]*mainproc.Sidecar, len(names))
	for i, n := range names {
		sc, err := l.find(n)
		if err != nil {
			return err
		}
		if sc == nil {
			return control.Refused("%s is not a sidecar: only sidecars are restarted, stopped and started", n)
		}
		list[i] = sc
	}
	switch {
	case stopping:
		return control.ErrStopping
	case !started:
		return control.ErrStarting
	}
	who := "an operator"
	if caller, ok := control.CallerOf(ctx); ok {
		who = caller.String()
	}
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, sc := range list {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(sc, ctx, who); err != nil {
				if errors.Is(err, mainproc.ErrFinalStop) {
					err = control.ErrStopping
				} else {
					err = fmt.Errorf("%s: %w", sc.Name(), err)
				}
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == control.ErrStopping {
			return err
		}
	}
	return errors.Join(errs...)
}

// find is the sidecar named name; nil, nil for another child; ErrMain for
// main; an unknown name error listing the names.
func (l *life) find(name string) (*mainproc.Sidecar, error) {
	if name == "main" {
		return nil, control.ErrMain
	}
	l.sidecars.mu.Lock()
	for _, rs := range l.sidecars.running {
		if rs.plan.Name == name && rs.sc != nil {
			l.sidecars.mu.Unlock()
			return rs.sc, nil
		}
	}
	l.sidecars.mu.Unlock()
	if l.registry.Get(name) != nil {
		return nil, nil
	}
	var known []string
	for _, i := range l.registry.List() {
		known = append(known, i.Name)
	}
	for _, sc := range l.plan.Sidecars { // not started yet
		if !slices.Contains(known, sc.Name) {
			known = append(known, sc.Name)
		}
	}
	if slices.ContainsFunc(l.plan.Sidecars, func(sc *plan.Sidecar) bool { return sc.Name == name }) {
		return nil, control.Refused("sidecar %s has not started yet", name)
	}
	return nil, control.UnknownName(name, known)
}

// Signal sends sig to main (its signal loop: as --signal-group says) or to
// a sidecar's process group.
func (c *controller) Signal(sig syscall.Signal, names []string) error {
	l, started, stopping := c.state()
	if l == nil {
		return control.ErrStarting
	}
	var errs []error
	for _, n := range names {
		if n == "main" {
			// l.main is read once start-up is over or the stop began:
			// c.mu orders it after the write.
			if !started && !stopping {
				return control.Refused("starting: main is signalled once it is ready and the helpers are done")
			}
			m := l.main
			if m == nil {
				return control.Refused("main has not started")
			}
			if err := m.Signal(sig); errors.Is(err, mainproc.ErrExited) {
				errs = append(errs, control.Refused("main has exited"))
			} else if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		sc, err := l.find(n)
		if err != nil && err != control.ErrMain {
			return err
		}
		if sc == nil {
			return control.Refused("%s is not main or a sidecar: only they are signalled", n)
		}
		if err := sc.Signal(sig); errors.Is(err, mainproc.ErrNotRunning) {
			errs = append(errs, control.Refused("sidecar %s is not running", n))
		} else if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}
