package lifecycle

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/helpers"
	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/main/plan"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper"
)

// TestOutcomeCode is the exit-code table of docs/usage.md, row by row,
// through the one switch that decides it.
func TestOutcomeCode(t *testing.T) {
	exit := func(code int) *reaper.Exit { e := reaper.ExitedWith(code); return &e }
	killed := func(sig syscall.Signal) *reaper.Exit { e := reaper.KilledBy(sig); return &e }
	notFound := fmt.Errorf("exec: %w", exec.ErrNotFound)
	for _, tc := range []struct {
		name string
		o    Outcome
		want int
	}{
		{"help", Help, 0},
		{"usage", Usage(errors.New("--grace: bad")), 2},
		{"main exited 0 in the foreground", Outcome{Main: exit(0)}, 0},
		{"main exited 3 in the foreground", Outcome{Main: exit(3)}, 3},
		{"main killed by SIGKILL", Outcome{Main: killed(syscall.SIGKILL)}, 137},
		{"main exited during start-up", Outcome{Err: ErrMainExited, Main: exit(4)}, 4},
		{"start-up aborted by SIGTERM, main's code", Outcome{Err: errAborted, Main: killed(syscall.SIGTERM)}, 143},
		{"stop signal before main", Outcome{Err: &signalError{syscall.SIGINT}}, 130},
		{"main not found", Outcome{Err: &mainStartError{err: notFound}}, 127},
		{"main not executable", Outcome{Err: &mainStartError{err: errors.New("permission denied")}}, 126},
		{"program check: not found", Outcome{Err: &plan.ProgramError{Source: "main command", Err: notFound}}, 127},
		{"not ready in time", Outcome{Err: &readiness.NotReadyError{After: time.Second}, Main: exit(0)}, 124},
		{"dependencies not ready", Outcome{Err: fmt.Errorf("%w: %w", errWaitFor, &readiness.NotReadyError{})}, 124},
		{"sidecar not ready", Outcome{Err: &sidecarNotReady{name: "db"}}, 124},
		{"helper failed 5", Outcome{Err: &helpers.Error{Exit: reaper.ExitedWith(5)}, Main: exit(0)}, 5},
		{"helper killed", Outcome{Err: &helpers.Error{Exit: reaper.KilledBy(syscall.SIGKILL)}, Main: exit(0)}, 137},
		{"helper timed out", Outcome{Err: &helpers.Error{TimedOut: time.Second}, Main: exit(0)}, 124},
		{"helper not found", Outcome{Err: &helpers.Error{Err: notFound}, Main: exit(0)}, 127},
		{"essential sidecar exited 5", Outcome{Err: &sidecarError{result: mainproc.SidecarResult{Exit: reaper.ExitedWith(5)}}, Main: exit(0)}, 5},
		{"essential sidecar cannot start", Outcome{Err: &sidecarError{result: mainproc.SidecarResult{Err: notFound, GaveUp: true}}}, 127},
		{"mainstay cannot run", Outcome{Err: &internalError{"reaper", errors.New("x")}}, 1},
	} {
		if got := tc.o.Code(); got != tc.want {
			t.Errorf("%s: code %d, want %d", tc.name, got, tc.want)
		}
	}
}
