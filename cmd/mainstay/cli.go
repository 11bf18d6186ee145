package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/mainstay-dev/mainstay/main/control"
	"github.com/mainstay-dev/mainstay/main/plan"
)

// CLI is mainstay's command line. Every flag also reads MAINSTAY_<FLAG>;
// repeatable flags take one value per line there, so commands keep their
// commas, quotes and spaces.
type CLI struct {
	Ready               probeList     `placeholder:"SPEC" help:"Readiness probe; repeatable, all must pass: tcp:PORT, tcp:HOST:PORT (or tcp://HOST:PORT), unix:PATH (or unix:///PATH), http://HOST[:PORT]/PATH, https://... (https+insecure://... accepts any certificate), file:PATH, log:REGEX (a line of main's output), exec:COMMAND, or notify (main sends READY=1 to the $NOTIFY_SOCKET mainstay gives it, the systemd protocol). In MAINSTAY_READY, one probe per line."`
	ReadyTimeout        time.Duration `default:"60s" help:"Give up when main is not ready after this long: main is stopped and mainstay exits 124; 0 waits forever (${default})."`
	ReadyInterval       time.Duration `default:"10ms" help:"First delay between two attempts of a probe; it doubles, with jitter, up to --ready-max-interval (${default})."`
	ReadyMaxInterval    time.Duration `default:"0s" help:"Cap of the delay between two attempts of a probe, around which the ±20% jitter still applies, for every kind. 0 (the default) means per kind: ${cheap_max_interval} for tcp:, unix: and http(s)://, ${max_interval} for exec:, file: and log: (never below --ready-interval)."`
	ReadyAttemptTimeout time.Duration `default:"5s" help:"Longest one attempt of a probe may take; an exec probe still running then is killed with its process group (${default})."`

	Sidecar sidecarList `placeholder:"'[KEY=VALUE ... --] COMMAND'" help:"Long-running companion process, kept up beside main; repeatable. Options before --: name=NAME, ready=SPEC (repeatable, all must pass; notify: the sidecar gets a $NOTIFY_SOCKET of its own), start=before|after (before: started in order before anything else, each ready before the next; after: once the helpers are done), restart=no|on-failure|always (on-failure), retries=N (5; restarts in a row before giving up), essential=true|false (true: when it ends for good, everything stops with its code), stop-signal=SIG (TERM), user=USER[:GROUP] (--user's), env=KEY=VALUE (repeatable; this sidecar's alone), dir=PATH (working directory), ready-timeout=DUR (--ready-timeout's; bounds getting ready), pidfile=PATH (COMMAND forks a daemon away and exits 0: the daemon whose PID it writes to PATH is adopted and supervised, if it is an unregistered child of mainstay started after COMMAND, running as the sidecar's user). In MAINSTAY_SIDECAR, one per line."`

	Cron    cronList    `placeholder:"'SCHEDULE [KEY=VALUE ...] -- COMMAND'" help:"Scheduled job, run beside main from the time main is ready and the helpers are done; repeatable. The -- is required. SCHEDULE: 5 fields (minute hour day-of-month month day-of-week, as crontab(5)), @hourly, @daily, @weekly, @monthly, @yearly, or @every DURATION (from the previous due time). Options before --: name=NAME (the command's base name), user=USER[:GROUP] (--user's), timeout=DUR (none; a run still going then gets SIGTERM to its process group, then SIGKILL 5s later, or --grace later when shorter), overlap=skip|allow (skip: a run due while the previous one runs is skipped, logged once), env=KEY=VALUE (repeatable; over the container's environment), dir=PATH (mainstay's). Output prefixed as --helper-prefix says; a failed run is logged and never stops the container; at the stop, no run starts and running ones get SIGTERM within --grace. In MAINSTAY_CRON, one per line."`
	Crontab crontabFlag `placeholder:"FILE" help:"Crontab file of scheduled jobs, read once at start: each line five fields or @keyword (@every DURATION too), then a command run by sh -c (or the file's SHELL=), named after its first word; NAME=VALUE lines set the environment of the jobs below them. No user field (give such a job as --cron with user=); % is literal. Run as --cron's are, with its defaults."`

	WaitFor        waitForList    `placeholder:"SPEC" help:"Dependency probe that must pass before any --before task or main starts (a database in another container); repeatable, all must pass. The kinds of --ready but log: (which needs main). A host name that does not resolve yet counts as a failed attempt. In MAINSTAY_WAIT_FOR, one probe per line."`
	WaitForTimeout *time.Duration `placeholder:"DUR" help:"Give up when the --wait-for probes have not all passed after this long: nothing is started and mainstay exits 124; 0 waits forever (default: the --ready-timeout in effect)."`
	Before         commandList    `placeholder:"COMMAND" help:"Command to run after --wait-for and before main starts (a migration); repeatable, run in order, each to completion, at every start. Split like --helper; --user, --helper-prefix, --helper-timeout, --helper-retries and --on-helper-failure apply. A failed one: main is never started, mainstay exits with its code. In MAINSTAY_BEFORE, one command per line."`

	Helper          commandList   `placeholder:"COMMAND" help:"Command to run once main is ready; repeatable, run in order, each to completion. Split into words like a shell would, no shell run. In MAINSTAY_HELPER, one command per line."`
	HelperTimeout   time.Duration `default:"0s" help:"Kill a helper (and its process group) that runs longer than this; it counts as failed with exit code 124. 0 means no limit (${default})."`
	OnHelperFailure string        `enum:"stop,continue" default:"stop" help:"What a failed helper or --before task does: stop (stop main, or never start it; exit with the task's code) or continue (log it, run the next) (${default})."`
	HelperRetries   int           `default:"0" placeholder:"N" help:"Run a failed helper or --before task again up to N times, waiting --restart-delay, doubling up to --restart-max-delay (±20% jitter), in between; the last try's code counts. A timeout is a failure; a program that cannot start (126, 127) is not run again (${default})."`
	RestartDelay    time.Duration `default:"100ms" placeholder:"DUR" help:"First delay before a task's retry; it doubles with each retry in a row, with ±20% jitter (${default})."`
	RestartMaxDelay time.Duration `default:"30s" placeholder:"DUR" help:"Cap of the delay between retries, before the ±20% jitter (${default})."`

	HelperPrefix string `default:"[{helper}] " placeholder:"TEMPLATE" help:"Written before each line a helper prints, so logs show who said what; {helper} is the helper's program name (with #N when several share it). Empty: no prefix. Never applied on a terminal, where helpers keep it as their output (${default})."`

	HelpersDir string `placeholder:"DIR" help:"Also run every executable file in DIR, in lexical order, after the --helper commands (/docker-entrypoint.d style); other files are skipped with a warning."`
	OnceMarker string `placeholder:"PATH" help:"Skip the helpers when PATH is a regular file at start (a symlink or directory there is refused); create PATH once every helper succeeded (first-boot initialisation that a failed boot retries)."`
	ReadyFile  string `placeholder:"PATH" help:"Create PATH once main is ready and every helper succeeded; remove it when mainstay starts to stop. Read by 'mainstay health'. Anything at PATH or PATH.state that mainstay did not write is refused at start."`

	StopSignal  signalFlag    `default:"TERM" placeholder:"SIG" help:"Signal that asks main to stop; it replaces SIGTERM when forwarding (TERM, SIGINT, 2, ...) (${default})."`
	Grace       time.Duration `default:"8s" help:"Budget of the whole stop, counted from the stop signal (or main's exit): main, then whatever is left, must exit within it or get SIGKILL, and mainstay waits at most 1s more. Keep it under docker stop's timeout (10s) (${default})."`
	SignalGroup bool          `help:"Send signals to main's whole process group instead of main alone."`

	ControlSocket string `default:"${control_socket}" placeholder:"PATH|off" help:"Listen there for mainstay status, restart, stop, start, signal and health; off: nowhere. At the default path, a failure is one warning and no socket; at another, an error (${default})."`

	User userFlag `placeholder:"USER[:GROUP]" help:"Run main, the helpers and exec probes as this user (name or number) and group; HOME, USER and LOGNAME from the user's entry; supplementary groups reset. Needs mainstay to run as root."`

	LogFormat string `enum:"text,json" default:"text" help:"Format of mainstay's own log lines on stderr: text or json (${default})."`
	LogLevel  string `enum:"debug,info,warn,error" default:"info" help:"Least severe of mainstay's log lines to print: debug, info, warn or error (${default})."`

	Version kong.VersionFlag `env:"-" help:"Print mainstay's version and exit."`

	Main commandFlag `placeholder:"'MAIN ARG...'" help:"Main command as one string, split into words like a shell would (quotes, backslashes), no shell run; instead of MAIN after --."`
	Argv []string    `arg:"" optional:"" passthrough:"partial" name:"MAIN" help:"Main command and its arguments, usually after -- (Dockerfile ENTRYPOINT + CMD)."`

	args []string // the command line, for error messages
	env  []string // the children's environment
}

const description = `Run MAIN as the container's main process: wait until it is ready, run the
helpers in order, then keep MAIN in the foreground until it exits. mainstay
reaps zombies, forwards signals and exits with MAIN's exit code.

Operate a running mainstay (through its --control-socket):
  mainstay status [NAME...] [--json]   mainstay restart|stop|start NAME...
  mainstay signal SIGNAL NAME...       mainstay health [--level alive|ready]
(health reads --ready-file when given; it exits 0 or 1 only). These names
are subcommands: give a main program of the same name after --.

Exit codes: MAIN's own (128+N when signal N killed it); 2 bad usage;
124 not ready in time or a helper timed out; a failed helper's own code;
126 cannot execute; 127 not found.`

// envPrefix starts the name of every environment variable mainstay reads.
const envPrefix = "MAINSTAY"

// errHelp is parse's answer when --help or --version was printed.
var errHelp = errors.New("help printed")

// parse reads args and the environment into the plan of the run, writing
// --help and --version to stdout. Bad input is returned as an error that
// names the flag (or variable) and the value.
func parse(args []string, version string, stdout io.Writer) (*plan.Plan, error) {
	cli, err := parseCLI(args, version, stdout)
	if err != nil {
		return nil, err
	}
	return cli.plan(), nil
}

// parseCLI reads args and the environment into a CLI.
func parseCLI(args []string, version string, stdout io.Writer) (*CLI, error) {
	// The children's environment is the start-up one, before anything
	// below changes it.
	env := plan.Environ(os.Environ(), envPrefix)
	cli := CLI{args: args, env: env}
	exited := -1
	parser, err := kong.New(&cli,
		kong.Writers(stdout, os.Stderr),
		kong.Exit(func(code int) { exited = code }),
		kong.Name("mainstay"),
		kong.Description(description),
		kong.DefaultEnvars(envPrefix),
		kong.Vars{
			"version":            version,
			"cheap_max_interval": plan.CheapMaxInterval.String(),
			"max_interval":       plan.MaxInterval.String(),
			"control_socket":     control.DefaultPath,
		},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("internal error: %w", err)
	}
	if err := checkBlank(args); err != nil {
		return nil, err
	}
	known := readOnlyUnsetFlags(parser, args)
	_, err = parser.Parse(args)
	if exited == 0 {
		return nil, errHelp // kong may complain after --help of what is missing
	}
	if err != nil {
		// The message may quote a probe spec or --sidecar line, and kong
		// adds the variable's value: no password of a URL in it shows.
		return nil, errors.New(plan.Redact(usageError(parser, err, cli.source).Error()))
	}
	if err := checkEnvironment(known, os.Environ()); err != nil {
		return nil, err
	}
	return &cli, nil
}

// readOnlyUnsetFlags makes kong read a MAINSTAY_* variable only for a flag
// that args does not give (the flag wins: a bad variable beside it is not
// even read), and no empty one: it counts as unset, as compose's
// "MAINSTAY_GRACE: ${GRACE:-}" produces one, where kong would parse "".
// The exception is MAINSTAY_HELPER_PREFIX, where empty means no prefix.
// It returns every variable the flags read.
func readOnlyUnsetFlags(parser *kong.Kong, args []string) (known []string) {
	for _, f := range parser.Model.Flags {
		known = append(known, f.Tag.Envs...)
		if given(args, "--"+f.Name) {
			f.Tag.Envs = nil
			continue
		}
		var keep []string
		for _, name := range f.Tag.Envs {
			if v, ok := os.LookupEnv(name); !ok || v != "" || name == envPrefix+"_HELPER_PREFIX" {
				keep = append(keep, name)
			}
		}
		f.Tag.Envs = keep
	}
	return known
}

// given reports whether args give flag (before a "--").
func given(args []string, flag string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// listFlags are the repeatable flags that take a command or a probe.
var listFlags = []string{"--ready", "--wait-for", "--before", "--helper", "--sidecar", "--cron"}

// checkBlank refuses a blank value of a repeatable flag on the command
// line: "--before $UNSET" must not drop a migration in silence. (In their
// MAINSTAY_* variables, blank lines are skipped: that is how one is
// switched off.)
func checkBlank(args []string) error {
	for i, a := range args {
		if a == "--" {
			return nil
		}
		for _, f := range listFlags {
			v, ok := strings.CutPrefix(a, f+"=")
			if !ok && a == f && i+1 < len(args) {
				v, ok = args[i+1], true
			}
			if ok && strings.TrimSpace(v) == "" {
				return fmt.Errorf("%s: blank value %q: give a %s, or leave the flag out", f, v, what(f))
			}
		}
	}
	return nil
}

// what a list flag takes, for messages.
func what(flag string) string {
	if flag == "--ready" || flag == "--wait-for" {
		return "probe"
	}
	return "command"
}

// Validate checks what kong's types cannot; kong calls it after parsing.
func (c *CLI) Validate() error {
	if len(c.Argv) > 0 && c.Argv[0] == "--" {
		c.Argv = c.Argv[1:]
	}
	switch {
	case c.Main.argv != nil && len(c.Argv) > 0:
		return fmt.Errorf("--main %q and a command after -- (%q) both given; use one", c.Main.line, strings.Join(c.Argv, " "))
	case c.Main.argv == nil && len(c.Argv) == 0:
		return errors.New("no main command: give it after -- or with --main")
	case len(c.Argv) > 0 && c.Argv[0] == "":
		return errors.New("main command: empty program name")
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--ready-timeout", c.ReadyTimeout}, {"--helper-timeout", c.HelperTimeout}, {"--grace", c.Grace},
		{"--ready-max-interval", c.ReadyMaxInterval},
		{"--wait-for-timeout", c.waitForTimeout()},
	} {
		if d.v < 0 {
			return fmt.Errorf("%s: %s is negative", c.source(d.flag), d.v)
		}
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"--ready-interval", c.ReadyInterval}, {"--ready-attempt-timeout", c.ReadyAttemptTimeout},
		{"--restart-delay", c.RestartDelay}, {"--restart-max-delay", c.RestartMaxDelay},
	} {
		if d.v <= 0 {
			return fmt.Errorf("%s: %s is not positive", c.source(d.flag), d.v)
		}
	}
	for _, d := range []struct{ flag, dir string }{
		{"--helpers-dir", c.HelpersDir}, {"--ready-file", parentDir(c.ReadyFile)}, {"--once-marker", parentDir(c.OnceMarker)},
	} {
		if d.dir == "" {
			continue
		}
		if p := dirProblem(d.dir); p != "" {
			return fmt.Errorf("%s: directory %s", c.source(d.flag), p)
		}
	}
	if err := c.User.u.CheckCanSwitch(); err != nil {
		return fmt.Errorf("%s %s: %w", c.source("--user"), c.User.u.Spec, err)
	}
	if err := plan.NameSidecars(c.Sidecar, c.listSource("--sidecar")); err != nil {
		return err
	}
	if err := plan.CheckCanSwitch(c.Sidecar); err != nil {
		return fmt.Errorf("%s: %w", c.listSource("--sidecar"), err)
	}
	for _, cr := range c.Cron {
		cr.Source = fmt.Sprintf("%s %q", c.listSource("--cron"), plan.Redact(cr.Line))
	}
	if err := plan.CheckCrons(c.crons(), c.Sidecar); err != nil {
		return err
	}
	if c.HelperRetries < 0 {
		return fmt.Errorf("%s: %d is negative", c.source("--helper-retries"), c.HelperRetries)
	}
	if c.RestartDelay > c.RestartMaxDelay {
		return fmt.Errorf("%s %s is longer than %s %s", c.source("--restart-delay"), c.RestartDelay, c.source("--restart-max-delay"), c.RestartMaxDelay)
	}
	if c.ReadyMaxInterval > 0 && c.ReadyInterval > c.ReadyMaxInterval {
		return fmt.Errorf("%s %s is longer than %s %s", c.source("--ready-interval"), c.ReadyInterval, c.source("--ready-max-interval"), c.ReadyMaxInterval)
	}
	return nil
}

// source names where a flag's value came from: the flag, or its
// environment variable when the command line does not give it.
func (c *CLI) source(flag string) string {
	if given(c.args, flag) {
		return flag
	}
	env := envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))
	if v := os.Getenv(env); v != "" {
		return fmt.Sprintf("%s (from %s=%q)", flag, env, v)
	}
	return flag
}

// waitForTimeout is --wait-for-timeout, or the --ready-timeout in effect
// when it is not given.
func (c *CLI) waitForTimeout() time.Duration {
	if c.WaitForTimeout != nil {
		return *c.WaitForTimeout
	}
	return c.ReadyTimeout
}

// parentDir is the directory path would be created in, or "" for "".
func parentDir(path string) string {
	if path == "" {
		return ""
	}
	return filepath.Dir(path)
}

// listSource is flag, or its variable when the command line does not give
// it (unlike source, without the value: a list's value has many lines).
func (c *CLI) listSource(flag string) string {
	if given(c.args, flag) {
		return flag
	}
	if env := envName(flag); os.Getenv(env) != "" {
		return env
	}
	return flag
}

// envName is the variable that flag reads: --ready-file → MAINSTAY_READY_FILE.
func envName(flag string) string {
	return envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))
}

// crons are the scheduled entries: --cron's, then the --crontab's lines.
func (c *CLI) crons() []*plan.Cron {
	return append(c.Cron[:len(c.Cron):len(c.Cron)], c.Crontab.crons...)
}

// plan is the run the command line describes.
func (c *CLI) plan() *plan.Plan {
	commands := func(flag string, l commandList) []plan.Command {
		var out []plan.Command
		for _, h := range l {
			out = append(out, plan.Command{Source: fmt.Sprintf("%s %q", c.listSource(flag), h.line), Line: h.line, Argv: h.argv})
		}
		return out
	}
	main := plan.Command{Source: "main command", Line: strings.Join(c.Argv, " "), Argv: c.Argv}
	if c.Main.argv != nil {
		main = plan.Command{Source: fmt.Sprintf("%s %q", c.listSource("--main"), c.Main.line), Line: c.Main.line, Argv: c.Main.argv}
	}
	given := map[string]string{}
	for _, f := range []string{"--ready", "--wait-for", "--sidecar", "--helper", "--before", "--cron"} {
		given[f] = c.listSource(f)
	}
	for _, sc := range c.Sidecar {
		sc.Source = fmt.Sprintf("%s %q", given["--sidecar"], plan.Redact(sc.Line)) // a ready= URL
	}
	return &plan.Plan{
		Given:          given,
		Sidecars:       c.Sidecar,
		WaitFor:        c.WaitFor,
		WaitForTimeout: c.waitForTimeout(),
		Before:         commands("--before", c.Before),
		Main:           main,
		Ready:          c.Ready,
		ReadyTimeout:   c.ReadyTimeout,
		Probing:        plan.Probing{Interval: c.ReadyInterval, MaxInterval: c.ReadyMaxInterval, AttemptTimeout: c.ReadyAttemptTimeout},
		Helpers:        commands("--helper", c.Helper),

		HelpersDir:          c.HelpersDir,
		OnceMarker:          c.OnceMarker,
		Crons:               c.crons(),
		Tasks:               plan.Tasks{Timeout: c.HelperTimeout, OnFailure: c.OnHelperFailure, Retries: c.HelperRetries, Prefix: c.HelperPrefix},
		ReadyFile:           c.ReadyFile,
		ReadyFileSource:     c.source("--ready-file"),
		ControlSocket:       c.ControlSocket,
		ControlSocketSource: c.source("--control-socket"),
		OnceMarkerSource:    c.source("--once-marker"),
		Restart:             plan.Backoff{Delay: c.RestartDelay, MaxDelay: c.RestartMaxDelay},
		StopSignal:          syscall.Signal(c.StopSignal),
		Grace:               c.Grace,
		SignalGroup:         c.SignalGroup,
		User:                c.User.u,
		Env:                 c.env,
		NotifySocket:        os.Getenv(plan.NotifyEnv),
		LogFormat:           c.LogFormat,
		LogLevel:            c.LogLevel,
	}
}

// probeList holds the --ready probes, parsed as each flag is read. Each
// line of a value adds one probe; MAINSTAY_READY is used only when no
// --ready is given.
type probeList []plan.Probe

func (l *probeList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "spec", func(s string) (err error) {
		*l, err = plan.AddReady(*l, s)
		return err
	})
}

// waitForList holds the --wait-for probes: those of --ready that do not
// need main.
type waitForList []plan.Probe

func (l *waitForList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "spec", func(s string) (err error) {
		*l, err = plan.AddWaitFor(*l, s)
		return err
	})
}

// commandList holds the --helper commands, the same way as probeList.
type commandList []commandFlag

func (l *commandList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "command", func(s string) error {
		argv, err := plan.SplitCommand(s)
		if err == nil {
			*l = append(*l, commandFlag{line: s, argv: argv})
		}
		return err
	})
}

// decodeLines reads one flag value and passes each of its non-blank lines,
// trimmed, to add: a newline separates items, which is how MAINSTAY_READY
// and MAINSTAY_HELPER hold several, and an empty value holds none. Commas,
// quotes and inner spaces are kept.
func decodeLines(ctx *kong.DecodeContext, what string, add func(string) error) error {
	var v string
	if err := ctx.Scan.PopValueInto(what, &v); err != nil {
		return err
	}
	for _, line := range strings.Split(v, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue // so MAINSTAY_HELPER= switches off helpers baked into an image
		}
		if err := add(line); err != nil {
			return err
		}
	}
	return nil
}

// commandFlag is a command given as one string, split when the flag is read.
type commandFlag struct {
	line string
	argv []string
}

func (c *commandFlag) Decode(ctx *kong.DecodeContext) error {
	if err := ctx.Scan.PopValueInto("command", &c.line); err != nil {
		return err
	}
	argv, err := plan.SplitCommand(c.line)
	if err != nil {
		return err
	}
	c.argv = argv
	return nil
}

// signalFlag is a signal given by name or number.
type signalFlag syscall.Signal

func (s *signalFlag) Decode(ctx *kong.DecodeContext) error {
	var v string
	if err := ctx.Scan.PopValueInto("signal", &v); err != nil {
		return err
	}
	sig, err := plan.ParseSignal(v)
	if err != nil {
		return err
	}
	*s = signalFlag(sig)
	return nil
}

// sidecarList holds the --sidecar values, one per line in MAINSTAY_SIDECAR.
type sidecarList []*plan.Sidecar

func (l *sidecarList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "sidecar", func(s string) error {
		sc, err := plan.ParseSidecar(s)
		if err == nil {
			*l = append(*l, sc)
		}
		return err
	})
}

// userFlag is --user USER[:GROUP], for main, the helpers and the exec
// probes (so pg_isready connects as the server's user, not as root),
// resolved when the flag is read.
type userFlag struct{ u *plan.User }

func (f *userFlag) Decode(ctx *kong.DecodeContext) error {
	var spec string
	if err := ctx.Scan.PopValueInto("user", &spec); err != nil {
		return err
	}
	u, err := plan.ParseUser(spec)
	f.u = u
	return err
}

// cronList holds the --cron values, one per line in MAINSTAY_CRON.
type cronList []*plan.Cron

func (l *cronList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "cron", func(s string) error {
		c, err := plan.ParseCron(s)
		if err == nil {
			*l = append(*l, c)
		}
		return err
	})
}

// crontabFlag is --crontab FILE, read and checked when the flag is read.
type crontabFlag struct{ crons []*plan.Cron }

func (f *crontabFlag) Decode(ctx *kong.DecodeContext) error {
	var path string
	if err := ctx.Scan.PopValueInto("file", &path); err != nil {
		return err
	}
	crons, err := plan.ParseCrontab(path)
	f.crons = crons
	return err
}
