package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/alecthomas/kong"
	"github.com/mainstay-dev/mainstay/main/control"
	"github.com/mainstay-dev/mainstay/main/lifecycle"
	"github.com/mainstay-dev/mainstay/main/plan"
)

// CtlCLI is the command line of the subcommands that ask a running
// mainstay: status, restart, stop, start, signal (through its control
// socket) and health (its --ready-file, or the socket).
type CtlCLI struct {
	ControlSocket string   `placeholder:"PATH" env:"MAINSTAY_CONTROL_SOCKET" help:"The control socket of the mainstay to ask (default ${socket})."`
	JSON          bool     `name:"json" help:"status: print the status as JSON, the stable format for scripts."`
	Level         string   `enum:",alive,ready" default:"" placeholder:"alive|ready" help:"health: alive (starting, ready or restarting something: not stopping) or ready (main ready, helpers done, every essential sidecar ready); default ready."`
	ReadyFile     string   `placeholder:"PATH" env:"MAINSTAY_READY_FILE" help:"health: read the state the mainstay publishes in its --ready-file, instead of asking the socket (the ready level only)."`
	Args          []string `arg:"" optional:"" name:"ARG" help:"The children's names (signal: the signal first)."`
}

// ctlOps are the subcommands and what they do, for their --help.
var ctlOps = map[string]string{
	"status":  "mainstay status [NAME...] [--json]: every child (or those named): kind, state, PID, uptime, restarts, last exit, next restart; the lifecycle's phase and whether ready.",
	"restart": "mainstay restart NAME...: stop each sidecar named (its stop signal, --grace at most) and start it again at once, its retries reset; return once it is ready again. Also starts one that gave up or was stopped.",
	"stop":    "mainstay stop NAME...: stop each sidecar named and keep it down. Not a failure: no restart, and an essential sidecar stopped so does not stop the container.",
	"start":   "mainstay start NAME...: start each sidecar named that is stopped or gave up; return once it is ready.",
	"signal":  "mainstay signal SIGNAL NAME...: send SIGNAL (HUP, SIGUSR1, 10) to main (to its group with --signal-group) or to a sidecar's process group.",
	"health":  "mainstay health [--level alive|ready]: print the state and exit 0 when healthy at the level, 1 when not (never 2: Docker reserves it in HEALTHCHECK).",
}

// ctl runs the subcommand op with args, and returns its exit status:
// control.ExitCode's (0 done, 1 refused or failed, 2 usage, 3 no mainstay
// answers), but 0 or 1 only for health.
func ctl(op string, args []string, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(stderr, "mainstay %s: error: %v\n", op, err)
		if op == "health" {
			return min(code, 1)
		}
		return code
	}
	var c CtlCLI
	exited := -1
	parser, err := kong.New(&c, kong.Name("mainstay "+op), kong.Description(ctlOps[op]), kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exited = code }), kong.Vars{"socket": control.DefaultPath},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}))
	if err == nil {
		_, err = parser.Parse(args)
		if err != nil {
			err = usageError(parser, err, func(flag string) string { return flag })
		}
	}
	if exited >= 0 {
		return exited
	}
	if err == nil {
		// MAINSTAY_READY_FILE (an image's, for its HEALTHCHECK) counts for
		// health's ready level alone; elsewhere only the flag is refused.
		if !given(args, "--ready-file") && (op != "health" || c.Level == string(control.LevelAlive)) {
			c.ReadyFile = ""
		}
		err = c.check(op)
	}
	if err != nil {
		return fail(control.ExitUsage, err)
	}
	if op == "health" && c.ReadyFile != "" {
		return lifecycle.ReadyFileHealth(c.ReadyFile, stdout)
	}
	if c.ControlSocket == "off" {
		return fail(control.ExitNoServer, errors.New("the control socket is off: give its path with --control-socket"))
	}
	cl, err := control.Dial(c.ControlSocket)
	if err != nil {
		if op == "health" && errors.Is(err, control.ErrNoServer) {
			fmt.Fprintln(stdout, "gone")
		}
		return fail(control.ExitCode(err), err)
	}
	defer cl.Close()
	ctx := context.Background()
	if op == "status" || op == "health" || op == "signal" { // never blocks the server
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*control.ReadTimeout)
		defer cancel()
	}
	switch op {
	case "status":
		var st *control.Status
		if st, err = cl.Status(ctx, c.Args...); err == nil && c.JSON {
			err = control.WriteJSON(stdout, st)
		} else if err == nil {
			err = control.WriteTable(stdout, st, time.Now())
		}
	case "health":
		h, err := cl.Health(ctx, control.Level(c.Level))
		if err != nil {
			fmt.Fprintf(stdout, "not healthy: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, h.Phase)
		if !h.Healthy {
			return 1
		}
		return 0
	case "restart":
		err = cl.Restart(ctx, c.Args...)
	case "stop":
		err = cl.Stop(ctx, c.Args...)
	case "start":
		err = cl.Start(ctx, c.Args...)
	case "signal":
		sig, perr := plan.ParseSignal(c.Args[0])
		if perr != nil {
			return fail(control.ExitUsage, perr)
		}
		err = cl.Signal(ctx, sig, c.Args[1:]...)
	}
	if err != nil {
		return fail(control.ExitCode(err), err)
	}
	return control.ExitDone
}

// check refuses what op does not take.
func (c *CtlCLI) check(op string) error {
	switch {
	case c.JSON && op != "status":
		return errors.New("--json is status's")
	case (c.Level != "" || c.ReadyFile != "") && op != "health":
		return errors.New("--level and --ready-file are health's")
	case c.Level == string(control.LevelAlive) && c.ReadyFile != "":
		return errors.New("--level alive needs the control socket: the ready file says ready or not only")
	case op == "health" && len(c.Args) > 0:
		return fmt.Errorf("health takes no names (%q)", c.Args[0])
	case op == "signal" && len(c.Args) < 2:
		return errors.New("give a signal and at least one name: mainstay signal HUP web")
	case op != "status" && op != "health" && len(c.Args) == 0:
		return fmt.Errorf("give at least one name: mainstay %s NAME...", op)
	}
	return nil
}
