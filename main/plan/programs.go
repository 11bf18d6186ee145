package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/mainstay-dev/mainstay/readiness"
)

// ProgramError is a program of the plan that cannot be run: Err wraps
// [exec.ErrNotFound] when it does not exist, [fs.ErrPermission] when it
// cannot be executed (see [reaper.StartFailureCode]).
type ProgramError struct {
	Source string
	Err    error
}

func (e *ProgramError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *ProgramError) Unwrap() error { return e.Err }

// commands lists every program the plan names: main, each --helper,
// --before task, --sidecar and scheduled entry (--cron, a --crontab's
// line: its shell), and each exec: probe of --ready, --wait-for and a
// sidecar's ready=. --helpers-dir is read when its turn comes. A
// later kind of child adds its commands here.
func (p *Plan) commands() []Command {
	var out []Command
	probes := func(flag, line string, ps []readiness.Probe, u *User) {
		for _, pr := range ps {
			if e, ok := pr.(readiness.Exec); ok {
				out = append(out, Command{Source: fmt.Sprintf("%s %q", p.given(flag), readiness.Redact(line)+e.String()), Argv: e.Argv, User: u})
			}
		}
	}
	probes("--wait-for", "", p.WaitFor, nil)
	out = append(out, p.Before...)
	out = append(out, p.Main)
	probes("--ready", "", p.Ready, nil)
	out = append(out, p.Helpers...)
	for _, sc := range p.Sidecars {
		out = append(out, sc.Command)
		probes("--sidecar", sc.Line+": ready=", sc.Ready, sc.User)
	}
	for _, c := range p.Crons {
		out = append(out, c.Command)
	}
	return out
}

// given is where flag was given: Given's entry, or flag itself.
func (p *Plan) given(flag string) string {
	if g := p.Given[flag]; g != "" {
		return g
	}
	return flag
}

// CheckPrograms finds every program of the plan the way its start will
// (exec.LookPath on the PATH that mainstay and its children share) and
// checks that the user it runs as (a sidecar's user=, --user, or
// mainstay's own) may execute it. It runs before the first child starts;
// its error is a *[ProgramError], a one-line message naming the program
// and where it was given.
func (p *Plan) CheckPrograms() error {
	for _, c := range p.commands() {
		u := c.User
		if u == nil {
			u = p.User
		}
		cred := u.Credential()
		if cred == nil {
			cred = ownCredential()
		}
		if err := checkProgram(c.Argv[0], cred); err != nil {
			return &ProgramError{Source: c.Source, Err: err}
		}
	}
	return nil
}

// ownCredential is mainstay's effective identity.
func ownCredential() *syscall.Credential {
	cred := &syscall.Credential{Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	groups, _ := os.Getgroups()
	for _, g := range groups {
		cred.Groups = append(cred.Groups, uint32(g))
	}
	return cred
}

// checkProgram finds name as reaper.Start would and checks that cred may
// execute what it found: the error wraps exec.ErrNotFound when nothing is
// found, fs.ErrPermission when it cannot be executed.
func checkProgram(name string, cred *syscall.Credential) error {
	path, err := exec.LookPath(name)
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		if strings.Contains(name, "/") {
			return fmt.Errorf("%s: no such file%w", name, notFound)
		}
		return fmt.Errorf("%s: not found in $PATH (%s)%w", name, os.Getenv("PATH"), notFound)
	case err != nil:
		reason := errors.Unwrap(err)
		if strings.Contains(name, "/") {
			if why := mayExecute(name, cred); why != nil {
				reason = why // says which bit or mount, where it can
			}
		}
		return fmt.Errorf("%s: cannot execute: %v%w", name, reason, cannotExecute)
	}
	if err := mayExecute(path, cred); err != nil {
		return fmt.Errorf("%s: cannot execute: %v%w", path, err, cannotExecute)
	}
	return nil
}

// notFound and cannotExecute mark checkProgram's errors for
// [reaper.StartFailureCode] without changing their text.
var (
	notFound      = quiet{exec.ErrNotFound}
	cannotExecute = quiet{fs.ErrPermission}
)

// quiet wraps an error and adds nothing to a message.
type quiet struct{ err error }

func (q quiet) Error() string { return "" }
func (q quiet) Unwrap() error { return q.err }

// mayExecute checks, from the mode bits, owners and mount flags, that
// cred may execute the file at path: every directory on the way (as given
// and with symlinks resolved) searchable, the file executable, and not on
// a noexec mount. access(2) cannot tell: it checks mainstay's real uid.
// Where a POSIX ACL could grant more than the mode bits, the kernel has the
// last word at start.
func mayExecute(path string, cred *syscall.Credential) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return err
	}
	for _, p := range []string{abs, real} {
		for d := filepath.Dir(p); ; d = filepath.Dir(d) {
			var st unix.Stat_t
			if err := unix.Stat(d, &st); err != nil {
				return err
			}
			if !permits(&st, cred, 1) && !hasACL(d) {
				return fmt.Errorf("uid %d may not enter directory %s (mode %s, owner %d:%d)", cred.Uid, d, fs.FileMode(st.Mode&0o777), st.Uid, st.Gid)
			}
			if d == "/" {
				break
			}
		}
	}
	var st unix.Stat_t
	if err := unix.Stat(real, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return errors.New("not a regular file")
	}
	if !permits(&st, cred, 1) && !hasACL(real) {
		return fmt.Errorf("uid %d may not execute it (mode %s, owner %d:%d)", cred.Uid, fs.FileMode(st.Mode&0o777), st.Uid, st.Gid)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(real, &sfs); err == nil && sfs.Flags&unix.ST_NOEXEC != 0 {
		return errors.New("it is on a file system mounted noexec")
	}
	return nil
}

// permits reports whether cred has permission bit (4 read, 2 write,
// 1 execute/search) on the file st describes, as the kernel decides
// without ACLs: root may execute when any execute bit is set (and search
// any directory); anyone else gets the owner's, the group's or the
// others' bits, the first class that applies.
func permits(st *unix.Stat_t, cred *syscall.Credential, bit uint32) bool {
	mode := st.Mode & 0o777
	if cred.Uid == 0 {
		return st.Mode&unix.S_IFMT == unix.S_IFDIR || mode&0o111 != 0
	}
	switch {
	case st.Uid == cred.Uid:
		return mode>>6&bit != 0
	case inGroup(st.Gid, cred):
		return mode>>3&bit != 0
	default:
		return mode&bit != 0
	}
}

// hasACL reports whether path has a POSIX access ACL, which may grant
// what the mode bits do not: mainstay then leaves the decision to the
// kernel when the program starts rather than refuse what might run.
func hasACL(path string) bool {
	n, err := unix.Getxattr(path, "system.posix_acl_access", nil)
	return err == nil && n > 0
}

func inGroup(gid uint32, cred *syscall.Credential) bool {
	if gid == cred.Gid {
		return true
	}
	for _, g := range cred.Groups {
		if g == gid {
			return true
		}
	}
	return false
}
