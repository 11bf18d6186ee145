package plan

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mainstay-dev/mainstay/reaper"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// TestCheckProgram: programs are found as exec.Command finds them, and
// checked against the credential the child will have, not mainstay's
// (root's) own.
func TestCheckProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test checks permissions for other users, which needs root to set up")
	}
	base := reapertest.PublicDir(t)
	file := func(name string, mode os.FileMode, uid, gid int) string {
		p := filepath.Join(base, name)
		writeTestFile(t, p, "#!/bin/sh\n")
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	private := filepath.Join(base, "private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	hidden := filepath.Join(private, "tool")
	writeTestFile(t, hidden, "#!/bin/sh\n")
	os.Chmod(hidden, 0o755)
	link := filepath.Join(base, "link")
	if err := os.Symlink(hidden, link); err != nil {
		t.Fatal(err)
	}
	root := &syscall.Credential{Uid: 0, Gid: 0, Groups: []uint32{0}}
	user := &syscall.Credential{Uid: 4242, Gid: 4343, Groups: []uint32{4343}}
	member := &syscall.Credential{Uid: 4242, Gid: 100, Groups: []uint32{100, 777}}
	for _, tc := range []struct {
		name, prog string
		cred       *syscall.Credential
		code       int
		want       string
	}{
		{"in PATH", "sh", user, 0, ""},
		{"not in PATH", "mainstay-no-such-program", root, 127, "not found in $PATH"},
		{"absent path", filepath.Join(base, "absent"), root, 127, "no such file"},
		{"absent directory", filepath.Join(base, "nodir", "x"), root, 127, "no such file"},
		{"no execute bit, root", file("plain", 0o644, 0, 0), root, 126, "cannot execute"},
		{"owner only, root", file("rootonly", 0o700, 0, 0), root, 0, ""},
		{"owner only, other user", file("rootonly2", 0o700, 0, 0), user, 126, "may not execute"},
		{"owner is the user", file("mine", 0o700, 4242, 0), user, 0, ""},
		{"owner without x, others with", file("ownerless", 0o607, 4242, 0), user, 126, "may not execute"},
		{"group x, member", file("grp", 0o710, 0, 777), member, 0, ""},
		{"group x, not member", file("grp2", 0o710, 0, 777), user, 126, "may not execute"},
		{"others x", file("all", 0o701, 0, 0), user, 0, ""},
		{"directory", base, root, 126, "cannot execute"},
		{"unsearchable directory", hidden, user, 126, "may not enter directory " + private},
		{"symlink into an unsearchable directory", link, user, 126, "may not enter directory " + private},
		{"unsearchable directory, root", hidden, root, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := check(checkProgram(tc.prog, tc.cred))
			if code != tc.code {
				t.Errorf("code %d (%v), want %d", code, err, tc.code)
			}
			if tc.want == "" {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.prog) {
				t.Errorf("error %v, want it to name %s and say %q", err, tc.prog, tc.want)
			}
		})
	}
}

// TestCheckProgramACL: a POSIX ACL that lets the user execute what the
// mode bits do not is not refused: the kernel decides at start. The ACL
// is real: the test runs the program as that user to show it executes.
func TestCheckProgramACL(t *testing.T) {
	dir := reapertest.PublicDir(t)
	prog := filepath.Join(dir, "tool")
	writeTestFile(t, prog, "#!/bin/sh\nexit 0\n")
	if err := os.Chmod(prog, 0o700); err != nil {
		t.Fatal(err)
	}
	user := &syscall.Credential{Uid: 4242, Gid: 4343, Groups: []uint32{4343}}
	if code, _ := check(checkProgram(prog, user)); code != 126 {
		t.Fatalf("without an ACL: %d, want 126", code)
	}
	// version 2; user::rwx, user:4242:r-x, group::---, mask::r-x, other::---
	acl := []byte{2, 0, 0, 0}
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{0x01, 7, 0xffffffff}, {0x02, 5, 4242}, {0x04, 0, 0xffffffff}, {0x10, 5, 0xffffffff}, {0x20, 0, 0xffffffff}} {
		acl = append(acl, byte(e.tag), byte(e.tag>>8), byte(e.perm), byte(e.perm>>8),
			byte(e.id), byte(e.id>>8), byte(e.id>>16), byte(e.id>>24))
	}
	if err := unix.Setxattr(prog, "system.posix_acl_access", acl, 0); err != nil {
		t.Skipf("this file system takes no POSIX ACL: %v", err)
	}
	cmd := exec.Command(prog)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: user}
	if err := cmd.Start(); err != nil {
		t.Fatalf("the ACL does not let uid 4242 execute it: %v", err)
	}
	cmd.Process.Kill()
	cmd.Process.Wait()
	if code, err := check(checkProgram(prog, user)); code != 0 {
		t.Errorf("with an ACL granting execute: %d, %v; want 0", code, err)
	}
}

// noexecDirEnv, in the re-run test binary of TestCheckProgramNoexec, is a
// noexec tmpfs mounted in that process's own mount namespace.
const noexecDirEnv = "GO_TEST_MAINSTAY_NOEXEC_DIR"

// TestCheckProgramNoexec: a program on a file system mounted noexec is
// refused with 126, even for root. The mount is made in a mount namespace
// of its own (unshare -m), where the test binary runs again.
func TestCheckProgramNoexec(t *testing.T) {
	if dir := os.Getenv(noexecDirEnv); dir != "" {
		prog := filepath.Join(dir, "tool")
		writeTestFile(t, prog, "#!/bin/sh\n")
		if err := os.Chmod(prog, 0o755); err != nil {
			t.Fatal(err)
		}
		root := &syscall.Credential{}
		code, err := check(checkProgram(prog, root))
		if code != 126 || err == nil || !strings.Contains(err.Error(), "noexec") {
			t.Errorf("on a noexec mount: %d, %v; want 126 saying noexec", code, err)
		}
		return
	}
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o noexec none "$1" && exec "$2" -test.run='^TestCheckProgramNoexec$' -test.v`, "sh", dir, os.Args[0])
	cmd.Env = append(os.Environ(), noexecDirEnv+"="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestCheckProgramNoexec") {
		t.Errorf("in a mount namespace: %v\n%s", err, out)
	}
}

// check is the exit code of checkProgram's err, with err.
func check(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	return reaper.StartFailureCode(err), err
}

func writeTestFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCheckProgramsSidecarUser: a sidecar's or a cron entry's program is
// checked as its own user=, others as --user's.
func TestCheckProgramsSidecarUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to set up a root-only program")
	}
	dir := reapertest.PublicDir(t)
	prog := filepath.Join(dir, "rootonly")
	writeTestFile(t, prog, "#!/bin/sh\n")
	if err := os.Chmod(prog, 0o700); err != nil {
		t.Fatal(err)
	}
	sidecar := func(line string) *Sidecar {
		sc, err := ParseSidecar(line)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	cron := func(line string) []*Cron {
		c, err := ParseCron(line)
		if err != nil {
			t.Fatal(err)
		}
		return []*Cron{c}
	}
	user := func(spec string) *User {
		u, err := ParseUser(spec)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	main := Command{Source: "main command", Argv: []string{"true"}}
	for _, tc := range []struct {
		name string
		plan *Plan
		code int
	}{
		{"as root", &Plan{Main: main, Sidecars: []*Sidecar{sidecar(prog)}}, 0},
		{"sidecar user=nobody", &Plan{Main: main, Sidecars: []*Sidecar{sidecar("user=nobody -- " + prog)}}, 126},
		{"sidecar user=root under --user nobody", &Plan{Main: main, User: user("nobody"), Sidecars: []*Sidecar{sidecar("user=root -- " + prog)}}, 0},
		{"helper under --user nobody", &Plan{Main: main, User: user("nobody"), Helpers: []Command{{Source: "--helper", Argv: []string{prog}}}}, 126},
		{"cron as root", &Plan{Main: main, Crons: cron("@daily -- " + prog)}, 0},
		{"cron user=nobody", &Plan{Main: main, Crons: cron("@daily user=nobody -- " + prog)}, 126},
		{"cron under --user nobody", &Plan{Main: main, User: user("nobody"), Crons: cron("@daily -- " + prog)}, 126},
		{"cron user=root under --user nobody", &Plan{Main: main, User: user("nobody"), Crons: cron("@daily user=root -- " + prog)}, 0},
	} {
		code, err := check(tc.plan.CheckPrograms())
		if code != tc.code || (code == 126 && !strings.Contains(err.Error(), "uid 65534 may not execute")) {
			t.Errorf("%s: %d, %v; want %d", tc.name, code, err, tc.code)
		}
	}
}
