package main

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

// program is a program a child will run, where it was named (for the
// error line), and who runs it.
type program struct {
	name   string    // argv[0]
	source string    // `--helper "migrate up"`, `main command`, ...
	user   *userFlag // nil: --user's
}

// programs lists every program the configuration names: main, each
// --helper, --before task and --sidecar, and each exec: probe of --ready,
// --wait-for and a sidecar's ready=. --helpers-dir is read when its turn
// comes. A later kind of child adds its argv here.
func (c *CLI) programs() []program {
	var out []program
	add := func(flag, line string, argv []string, u *userFlag) {
		src := "main command"
		if flag != "" {
			src = fmt.Sprintf("%s %q", c.listSource(flag), line)
		}
		out = append(out, program{argv[0], src, u})
	}
	probes := func(flag string, ps []readiness.Probe, u *userFlag) {
		for _, pr := range ps {
			if e, ok := pr.(readiness.Exec); ok {
				add(flag, e.String(), e.Argv, u)
			}
		}
	}
	probes("--wait-for", c.WaitFor, nil)
	for _, b := range c.Before {
		add("--before", b.line, b.argv, nil)
	}
	if c.Main.argv != nil {
		add("--main", c.Main.line, c.Main.argv, nil)
	} else if len(c.Argv) > 0 {
		add("", "", c.Argv, nil)
	}
	probes("--ready", c.Ready, nil)
	for _, h := range c.Helper {
		add("--helper", h.line, h.argv, nil)
	}
	for _, sc := range c.Sidecar {
		add("--sidecar", sc.line, sc.argv, sc.user)
		for _, pr := range sc.ready {
			if e, ok := pr.(readiness.Exec); ok {
				add("--sidecar", sc.line+": ready="+e.String(), e.Argv, sc.user)
			}
		}
	}
	return out
}

// listSource is flag, or its variable when the command line does not give
// it (unlike source, without the value: a list's value has many lines).
func (c *CLI) listSource(flag string) string {
	for _, a := range c.args {
		if a == "--" {
			break
		}
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return flag
		}
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

// checkPrograms finds every program of the configuration the way its start
// will (exec.LookPath on the PATH that mainstay and its children share)
// and checks that the user it runs as (a sidecar's user=, --user, or
// mainstay's own) may execute it. It runs before the first child starts; on failure it
// returns the exit code, 127 (not found) or 126 (cannot execute), and a
// one-line error naming the program and where it was given.
func (c *CLI) checkPrograms() (int, error) {
	for _, p := range c.programs() {
		u := p.user
		if u == nil {
			u = &c.User
		}
		cred := u.cred
		if cred == nil {
			cred = ownCredential()
		}
		if code, err := checkProgram(p.name, cred); err != nil {
			return code, fmt.Errorf("%s: %w", p.source, err)
		}
	}
	return 0, nil
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
// execute what it found: 127 when nothing is found, 126 when it cannot.
func checkProgram(name string, cred *syscall.Credential) (int, error) {
	path, err := exec.LookPath(name)
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		if strings.Contains(name, "/") {
			return 127, fmt.Errorf("%s: no such file", name)
		}
		return 127, fmt.Errorf("%s: not found in $PATH (%s)", name, os.Getenv("PATH"))
	case err != nil:
		reason := errors.Unwrap(err)
		if strings.Contains(name, "/") {
			if why := mayExecute(name, cred); why != nil {
				reason = why // says which bit or mount, where it can
			}
		}
		return 126, fmt.Errorf("%s: cannot execute: %v", name, reason)
	}
	if err := mayExecute(path, cred); err != nil {
		return 126, fmt.Errorf("%s: cannot execute: %v", path, err)
	}
	return 0, nil
}

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
