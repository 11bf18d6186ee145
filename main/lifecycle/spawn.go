package lifecycle

import (
	"context"

	"github.com/mainstay-dev/mainstay/main/plan"
	"github.com/mainstay-dev/mainstay/reaper"
)

// spec is where a child of the plan becomes the reaper's description of
// it, for every kind of child: its words, and the environment and
// credential of the user it runs as (u, or --user's when nil). Its owner
// adds what is its own (main's stdin and terminal, a sidecar's prefix).
func (l *life) spec(argv []string, u *plan.User) reaper.Spec {
	u = l.user(u)
	return reaper.Spec{Argv: argv, Env: plan.ChildEnv(l.plan.Env, u), Credential: u.Credential()}
}

// command is spec for a command of the plan that has its own env= and
// dir= (a sidecar, a --cron entry): its Env set over the user's
// environment, and its Dir.
func (l *life) command(c *plan.Command) reaper.Spec {
	s := l.spec(c.Argv, c.User)
	s.Env, s.Dir = c.Environ(s.Env), c.Dir
	return s
}

// asUser runs the children of helpers and probes, whose words those
// packages give, through the reaper with base's environment and
// credential.
type asUser struct {
	r    *reaper.Reaper
	base reaper.Spec
}

func (a asUser) Run(ctx context.Context, s reaper.Spec) (reaper.Exit, error) {
	s.Env, s.Credential = a.base.Env, a.base.Credential
	return a.r.Run(ctx, s)
}
