package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/alecthomas/kong"
	"github.com/mainstay-dev/mainstay/main/lifecycle"
)

// HealthCLI is "mainstay health": a readiness check for HEALTHCHECK and
// Kubernetes exec probes in images with no shell or curl.
type HealthCLI struct {
	ReadyFile string `required:"" placeholder:"PATH" env:"MAINSTAY_READY_FILE" help:"The --ready-file of the mainstay to check."`
}

const healthDescription = `Report whether mainstay's main is ready: print its state (starting, ready,
stopping or gone) and exit 0 when ready, 1 when not. Bad usage also exits 1
(with a message): Docker reserves a health check's exit code 2.
Ready means main passed its readiness probes and every helper succeeded.`

// health runs "mainstay health ARGS" and returns its exit code.
func health(args []string, stdout, stderr io.Writer) int {
	var cli HealthCLI
	exited := -1
	parser, err := kong.New(&cli,
		kong.Name("mainstay health"),
		kong.Description(healthDescription),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exited = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "mainstay health: internal error: %v\n", err)
		return 1
	}
	_, err = parser.Parse(args)
	if err != nil {
		err = usageError(parser, err, func(flag string) string { return flag })
	}
	if exited >= 0 { // --help printed; kong went on to complain of the missing flag
		return exited
	}
	if err == nil && cli.ReadyFile == "" {
		err = errors.New("no ready file: give --ready-file or set MAINSTAY_READY_FILE")
	}
	if err != nil {
		fmt.Fprintf(stderr, "mainstay health: error: %v\n", err)
		return 1 // not 2: Docker reserves it in HEALTHCHECK
	}
	state, err := lifecycle.ReadState(cli.ReadyFile)
	if err != nil {
		fmt.Fprintf(stdout, "not ready: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, state)
	if state != lifecycle.StateReady {
		return 1
	}
	return 0
}
