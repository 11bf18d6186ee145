package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/mainstay-dev/mainstay/reaper"
)

// userFlag is --user USER[:GROUP], for main, the helpers and the exec
// probes (so pg_isready connects as the server's user, not as root); it is
// resolved when the flag is read: a name
// or a number for each. Like Docker and gosu, a numeric user with no entry
// in /etc/passwd runs with group 0 and HOME=/ (OpenShift's arbitrary UIDs
// rely on it). Supplementary groups become the user's own groups, or just
// GROUP when one is given: none of root's are kept.
type userFlag struct {
	spec string
	cred *syscall.Credential
	env  []string // HOME, USER, LOGNAME
}

func (u *userFlag) Decode(ctx *kong.DecodeContext) error {
	var spec string
	if err := ctx.Scan.PopValueInto("user", &spec); err != nil {
		return err
	}
	return u.set(spec)
}

// set resolves USER[:GROUP] (also a sidecar's user=).
func (u *userFlag) set(spec string) error {
	u.spec = spec
	name, group, hasGroup := strings.Cut(u.spec, ":")
	if name == "" || (hasGroup && group == "") {
		return fmt.Errorf("%q: want USER or USER:GROUP", u.spec)
	}
	cred := &syscall.Credential{}
	home, login := "/", name
	uid, numeric := parseID(name)
	var entry *user.User
	var err error
	if numeric {
		entry, err = user.LookupId(name)
	} else {
		entry, err = user.Lookup(name)
	}
	switch {
	case err == nil:
		id, _ := parseID(entry.Uid)
		gid, _ := parseID(entry.Gid)
		cred.Uid, cred.Gid = id, gid
		login = entry.Username
		if entry.HomeDir != "" {
			home = entry.HomeDir
		}
		if ids, err := entry.GroupIds(); err == nil {
			for _, g := range ids {
				if n, ok := parseID(g); ok {
					cred.Groups = append(cred.Groups, n)
				}
			}
		}
	case numeric && errors.As(err, new(user.UnknownUserIdError)):
		cred.Uid, cred.Gid = uid, 0
	default:
		return fmt.Errorf("%q: no such user %q", u.spec, name)
	}
	if hasGroup {
		gid, ok := parseID(group)
		if !ok {
			g, err := user.LookupGroup(group)
			if err != nil {
				return fmt.Errorf("%q: no such group %q", u.spec, group)
			}
			gid, _ = parseID(g.Gid)
		}
		cred.Gid, cred.Groups = gid, []uint32{gid}
	}
	if cred.Groups == nil {
		cred.Groups = []uint32{cred.Gid} // never inherit root's supplementary groups
	}
	u.cred = cred
	u.env = []string{"HOME=" + home, "USER=" + login, "LOGNAME=" + login}
	return nil
}

// parseID reads a non-negative 32-bit user or group ID.
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// checkCanSwitch fails when --user is given but mainstay cannot change its
// identity: only root can (setgroups fails with EPERM otherwise).
func (u *userFlag) checkCanSwitch() error {
	if u.cred == nil || os.Geteuid() == 0 {
		return nil
	}
	return fmt.Errorf("--user %s: mainstay runs as uid %d, and only root can switch to another user; drop --user or run mainstay as root", u.spec, os.Geteuid())
}

// runner starts helpers and exec probes through r with the children's
// environment (environ), as the --user user when one is given.
func (u *userFlag) runner(r *reaper.Reaper) reaper.Runner {
	return asUser{r: r, base: reaper.Spec{Env: u.environ(), Credential: u.cred}}
}

// asUser runs children through the reaper with the Env and Credential of
// base: the children's environment and, when not nil, the user's
// credentials.
type asUser struct {
	r    *reaper.Reaper
	base reaper.Spec
}

func (a asUser) Run(ctx context.Context, s reaper.Spec) (reaper.Exit, error) {
	s.Env, s.Credential = a.base.Env, a.base.Credential
	return a.r.Run(ctx, s)
}

// uid is the user main runs as.
func (u *userFlag) uid() int {
	if u.cred == nil {
		return os.Getuid()
	}
	return int(u.cred.Uid)
}

// environ is the one environment of every child: main, helpers and exec
// probes. It is mainstay's own without any MAINSTAY_* variable (mainstay's
// configuration is not theirs: a mainstay run by main must not inherit the
// outer helpers), with the user's HOME, USER and LOGNAME when --user is
// given.
func (u *userFlag) environ() []string {
	out := []string{}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, envPrefix+"_") {
			continue
		}
		if u.cred != nil && (k == "HOME" || k == "USER" || k == "LOGNAME") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, u.env...)
}
