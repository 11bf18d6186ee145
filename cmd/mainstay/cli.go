package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
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

	Sidecar sidecarList `placeholder:"'[KEY=VALUE ... --] COMMAND'" help:"Long-running companion process, kept up beside main; repeatable. Options before --: name=NAME, ready=SPEC (repeatable, all must pass; notify: the sidecar gets a $NOTIFY_SOCKET of its own), start=before|after (before: started in order before anything else, each ready before the next; after: once the helpers are done), restart=no|on-failure|always (on-failure), retries=N (5; restarts in a row before giving up), essential=true|false (true: when it ends for good, everything stops with its code), stop-signal=SIG (TERM), user=USER[:GROUP] (--user's). In MAINSTAY_SIDECAR, one per line."`

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

	User userFlag `placeholder:"USER[:GROUP]" help:"Run main, the helpers and exec probes as this user (name or number) and group; HOME, USER and LOGNAME from the user's entry; supplementary groups reset. Needs mainstay to run as root."`

	LogFormat string `enum:"text,json" default:"text" help:"Format of mainstay's own log lines on stderr: text or json (${default})."`
	LogLevel  string `enum:"debug,info,warn,error" default:"info" help:"Least severe of mainstay's log lines to print: debug, info, warn or error (${default})."`

	Version kong.VersionFlag `env:"-" help:"Print mainstay's version and exit."`

	Main commandFlag `placeholder:"'MAIN ARG...'" help:"Main command as one string, split into words like a shell would (quotes, backslashes), no shell run; instead of MAIN after --."`
	Argv []string    `arg:"" optional:"" passthrough:"partial" name:"MAIN" help:"Main command and its arguments, usually after -- (Dockerfile ENTRYPOINT + CMD)."`

	args []string // the command line, for error messages
}

const description = `Run MAIN as the container's main process: wait until it is ready, run the
helpers in order, then keep MAIN in the foreground until it exits. mainstay
reaps zombies, forwards signals and exits with MAIN's exit code.

mainstay health [--ready-file PATH] reports the state published through
--ready-file: it prints starting, ready, stopping or gone, and exits 0 only
when ready (for HEALTHCHECK and Kubernetes exec probes).

Exit codes: MAIN's own (128+N when signal N killed it); 2 bad usage;
124 not ready in time or a helper timed out; a failed helper's own code;
126 cannot execute; 127 not found.`

// envPrefix starts the name of every environment variable mainstay reads.
const envPrefix = "MAINSTAY"

// parse reads args and the environment into a CLI. Bad input is returned
// as an error that names the flag (or variable) and the value.
func parse(args []string, version string) (*CLI, error) {
	// An empty MAINSTAY_* variable counts as unset, as compose's
	// "MAINSTAY_GRACE: ${GRACE:-}" produces one; kong would parse "". The
	// exception is MAINSTAY_HELPER_PREFIX, where empty means no prefix.
	for _, kv := range os.Environ() {
		name, v, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, envPrefix+"_") && v == "" && name != envPrefix+"_HELPER_PREFIX" {
			os.Unsetenv(name)
		}
	}
	cli := CLI{args: args}
	parser, err := kong.New(&cli,
		kong.Name("mainstay"),
		kong.Description(description),
		kong.DefaultEnvars(envPrefix),
		kong.Vars{
			"version":            version,
			"cheap_max_interval": readiness.CheapMaxInterval.String(),
			"max_interval":       readiness.MaxInterval.String(),
		},
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		return nil, fmt.Errorf("internal error: %w", err)
	}
	if _, err := parser.Parse(args); err != nil {
		// The message may quote a probe spec or --sidecar line, and kong
		// adds the variable's value: no password of a URL in it shows.
		return nil, errors.New(readiness.Redact(usageError(parser, err, cli.source).Error()))
	}
	if err := checkEnvironment(parser, os.Environ()); err != nil {
		return nil, err
	}
	return &cli, nil
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
	if err := c.User.checkCanSwitch(); err != nil {
		return err
	}
	if err := c.Sidecar.name(); err != nil {
		return err
	}
	if err := c.Sidecar.checkCanSwitch(); err != nil {
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
	for _, a := range c.args {
		if a == "--" {
			break
		}
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return flag
		}
	}
	env := envPrefix + "_" + strings.ToUpper(strings.ReplaceAll(strings.TrimPrefix(flag, "--"), "-", "_"))
	if v, ok := os.LookupEnv(env); ok {
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

// mainArgv is main's command line, from --main or after --.
func (c *CLI) mainArgv() []string {
	if c.Main.argv != nil {
		return c.Main.argv
	}
	return c.Argv
}

// probeList holds the --ready probes, parsed as each flag is read. Each
// line of a value adds one probe; MAINSTAY_READY is used only when no
// --ready is given.
type probeList []readiness.Probe

func (l *probeList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "spec", func(s string) error {
		pr, err := readiness.Parse(s)
		if err == nil && readiness.NotifyOf(*l) != nil && readiness.NotifyOf([]readiness.Probe{pr}) != nil {
			return fmt.Errorf("probe %q: given more than once; main has one $%s", s, readiness.NotifyEnv)
		}
		if err == nil {
			*l = append(*l, pr)
		}
		return err
	})
}

// waitForList holds the --wait-for probes: those of --ready that do not
// need main.
type waitForList []readiness.Probe

func (l *waitForList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "spec", func(s string) error {
		pr, err := readiness.Parse(s)
		if err != nil {
			return err
		}
		if needsMain(pr) {
			return fmt.Errorf("probe %q: watches main, which --wait-for runs before; use it with --ready", s)
		}
		*l = append(*l, pr)
		return nil
	})
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

// commandList holds the --helper commands, the same way as probeList.
type commandList []commandFlag

func (l *commandList) Decode(ctx *kong.DecodeContext) error {
	return decodeLines(ctx, "command", func(s string) error {
		argv, err := readiness.SplitCommand(s)
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
	argv, err := readiness.SplitCommand(c.line)
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
	sig, err := mainproc.ParseSignal(v)
	if err != nil {
		return err
	}
	*s = signalFlag(sig)
	return nil
}
