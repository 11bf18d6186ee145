// Command mainstay is a container entrypoint: it starts the main process,
// waits until it is ready, runs helper tasks in order, then keeps main in
// the foreground — reaping zombies, forwarding signals and exiting with
// main's exit code. See docs/usage.md.
//
// This package is the command line only: it reads flags and MAINSTAY_*
// variables with kong into a [plan.Plan], and hands it to
// [lifecycle.Run]; the exit code is [lifecycle.Outcome.Code]'s.
package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/mainstay-dev/mainstay/main/lifecycle"
)

// version is set at build time with -ldflags "-X main.version=..."; it
// falls back to the module version Go recorded.
var version = ""

func main() {
	// One P while mainstay starts main and polls its probes; two once
	// main is in the foreground (see lifecycle.Run). Set here, not in the
	// environment, which main would inherit; setting it also stops the
	// runtime's periodic update from the cgroup's CPU limit, and keeps a
	// big host from giving a PID 1 that mostly sleeps dozens of Ps.
	runtime.GOMAXPROCS(1)
	if len(os.Args) > 1 && ctlOps[os.Args[1]] != "" { // status, restart, ..., health
		os.Exit(ctl(os.Args[1], os.Args[2:], os.Stdout, os.Stderr))
	}
	keepWritesFromKilling()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// keepWritesFromKilling subscribes to SIGPIPE. Without a subscription, the
// Go runtime kills the program when a write to fd 1 or 2 fails with EPIPE
// (a closed log pipe, "mainstay ... | head"): mainstay would die with main
// orphaned, or as PID 1 exit 2 and take main down with it. Subscribed, the
// write just fails, and mainstay goes on supervising. Notify rather than
// Ignore: SIG_IGN would be inherited by every child. The channel is never
// read; its one slot fills and later SIGPIPEs are dropped.
func keepWritesFromKilling() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)
}

// run is mainstay from its arguments to its exit code: parse them into a
// plan, run it.
func run(args []string, stdout, stderr io.Writer) int {
	p, err := parse(args, buildVersion(), stdout)
	switch {
	case err == errHelp:
		return lifecycle.Help.Code()
	case err != nil:
		fmt.Fprintf(stderr, "mainstay: error: %v\n", err)
		return lifecycle.Usage(err).Code()
	}
	return lifecycle.Run(p, stderr).Code()
}

func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	v := "devel"
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && len(s.Value) >= 12:
			v += " " + s.Value[:12]
		case s.Key == "vcs.modified" && s.Value == "true":
			v += "+dirty"
		}
	}
	return v
}
