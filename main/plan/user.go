package plan

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// User is a resolved USER[:GROUP] (--user, a sidecar's user=): a name or a
// number for each. Like Docker and gosu, a numeric user with no entry in
// /etc/passwd runs with group 0 and HOME=/ (OpenShift's arbitrary UIDs rely
// on it). Supplementary groups become the user's own groups, or just GROUP
// when one is given: none of root's are kept.
type User struct {
	// Spec is USER[:GROUP] as given.
	Spec string
	Cred *syscall.Credential
	// Env is the user's HOME, USER and LOGNAME.
	Env []string
}

// ParseUser resolves USER[:GROUP] against the user and group databases.
func ParseUser(spec string) (*User, error) {
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || (hasGroup && group == "") {
		return nil, fmt.Errorf("%q: want USER or USER:GROUP", spec)
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
		return nil, fmt.Errorf("%q: no such user %q", spec, name)
	}
	if hasGroup {
		gid, ok := parseID(group)
		if !ok {
			g, err := user.LookupGroup(group)
			if err != nil {
				return nil, fmt.Errorf("%q: no such group %q", spec, group)
			}
			gid, _ = parseID(g.Gid)
		}
		cred.Gid, cred.Groups = gid, []uint32{gid}
	}
	if cred.Groups == nil {
		cred.Groups = []uint32{cred.Gid} // never inherit root's supplementary groups
	}
	return &User{Spec: spec, Cred: cred, Env: []string{"HOME=" + home, "USER=" + login, "LOGNAME=" + login}}, nil
}

// parseID reads a non-negative 32-bit user or group ID.
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// CheckCanSwitch fails when mainstay cannot take on u's identity: it must
// run as root with CAP_SETUID and CAP_SETGID (a container started with
// --cap-drop ALL has neither), and in a user namespace u's ids must be
// mapped.
func (u *User) CheckCanSwitch() error {
	if u == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("mainstay runs as uid %d, and only root can switch to another user; drop it or run mainstay as root", os.Geteuid())
	}
	for _, c := range []struct {
		bit  int
		name string
	}{{unix.CAP_SETGID, "CAP_SETGID"}, {unix.CAP_SETUID, "CAP_SETUID"}} {
		if !hasCapability(c.bit) {
			return fmt.Errorf("mainstay runs as root without %s (dropped, as docker run --cap-drop or Kubernetes' restricted profile do), so it cannot switch to another user; give the capability back or drop the user", c.name)
		}
	}
	if !mapped("/proc/self/uid_map", u.Cred.Uid) {
		return fmt.Errorf("uid %d is not mapped in mainstay's user namespace (/proc/self/uid_map)", u.Cred.Uid)
	}
	for _, g := range append([]uint32{u.Cred.Gid}, u.Cred.Groups...) {
		if !mapped("/proc/self/gid_map", g) {
			return fmt.Errorf("gid %d is not mapped in mainstay's user namespace (/proc/self/gid_map)", g)
		}
	}
	return nil
}

// UID is the user u runs as: mainstay's own for a nil u.
func (u *User) UID() int {
	if u == nil {
		return os.Getuid()
	}
	return int(u.Cred.Uid)
}

// Credential is u's credential; nil for a nil u (mainstay's own).
func (u *User) Credential() *syscall.Credential {
	if u == nil {
		return nil
	}
	return u.Cred
}
