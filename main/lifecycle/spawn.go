package lifecycle

import (
	"context"
	"os/exec"
	"syscall"

	"github.com/mainstay-dev/mainstay/reaper"
)

// asUser runs commands through the reaper with the children's environment
// and, when cred is not nil, the user's credentials.
type asUser struct {
	r    *reaper.Reaper
	cred *syscall.Credential
	env  []string
}

func (a asUser) Run(ctx context.Context, cmd *exec.Cmd) (reaper.Exit, error) {
	if a.cred != nil {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Credential = a.cred
	}
	cmd.Env = a.env
	return a.r.Run(ctx, cmd)
}
