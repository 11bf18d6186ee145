package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"slices"
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/main/plan"
)

func TestUserFlag(t *testing.T) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatal(err)
	}
	root, err := user.Lookup("root")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec       string
		uid, gid   string
		groups     []string
		home, name string
		wantErr    string
	}{
		{spec: "nobody", uid: nobody.Uid, gid: nobody.Gid, groups: []string{nobody.Gid}, home: nobody.HomeDir, name: "nobody"},
		{spec: nobody.Uid, uid: nobody.Uid, gid: nobody.Gid, groups: []string{nobody.Gid}, home: nobody.HomeDir, name: "nobody"},
		{spec: "nobody:root", uid: nobody.Uid, gid: "0", groups: []string{"0"}, home: nobody.HomeDir, name: "nobody"},
		{spec: "nobody:" + root.Gid, uid: nobody.Uid, gid: root.Gid, groups: []string{root.Gid}, home: nobody.HomeDir, name: "nobody"},
		// An unknown numeric uid runs with gid 0 and HOME=/, like Docker.
		{spec: "4242", uid: "4242", gid: "0", groups: []string{"0"}, home: "/", name: "4242"},
		{spec: "4242:4343", uid: "4242", gid: "4343", groups: []string{"4343"}, home: "/", name: "4242"},
		{spec: "mainstay-no-such-user", wantErr: `no such user "mainstay-no-such-user"`},
		{spec: "nobody:mainstay-no-such-group", wantErr: `no such group "mainstay-no-such-group"`},
		{spec: ":0", wantErr: "want USER or USER:GROUP"},
		{spec: "nobody:", wantErr: "want USER or USER:GROUP"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			cli, err := parseCLI([]string{"--user", tc.spec, "--", "true"}, "test", io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "--user") {
					t.Fatalf("--user %s: %v, want an error naming --user with %q", tc.spec, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := cli.User.u.Cred
			var groups []string
			for _, g := range c.Groups {
				groups = append(groups, fmt.Sprint(g))
			}
			if fmt.Sprint(c.Uid) != tc.uid || fmt.Sprint(c.Gid) != tc.gid || !slices.Equal(groups, tc.groups) {
				t.Errorf("credential uid %d gid %d groups %v, want %s %s %v", c.Uid, c.Gid, groups, tc.uid, tc.gid, tc.groups)
			}
			p := cli.plan()
			env := plan.ChildEnv(p.Env, p.User)
			for _, want := range []string{"HOME=" + tc.home, "USER=" + tc.name, "LOGNAME=" + tc.name} {
				if !slices.Contains(env, want) {
					t.Errorf("environment lacks %s", want)
				}
			}
			for _, kv := range env {
				if strings.HasPrefix(kv, "HOME=") && kv != "HOME="+tc.home {
					t.Errorf("mainstay's own %s kept", kv)
				}
			}
		})
	}
}

// TestUserRefusedWhenNotRoot: only root can switch users; mainstay says so
// at once, exit 2, rather than failing to start main.
func TestUserRefusedWhenNotRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test drops to nobody with setpriv, which needs root")
	}
	marker := t.TempDir() + "/started"
	cmd := exec.Command("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		os.Args[0], "--user", "root", "--", "sh", "-c", "touch "+marker)
	cmd.Env = append(os.Environ(), runChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit: %v, want 2\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); strings.Count(got, "\n") != 0 ||
		!strings.Contains(got, "--user root") || !strings.Contains(got, "only root can switch") {
		t.Errorf("message: %q", got)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("main was started")
	}
}

// TestUserRefusedWithoutCapabilities: root without CAP_SETUID and
// CAP_SETGID (docker run --cap-drop ALL) cannot switch users either, for
// --user and a sidecar's user=: one line naming the flag and the
// capability, exit 2, nothing started, not a 126 blaming the program.
func TestUserRefusedWithoutCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test drops capabilities with setpriv, which needs root")
	}
	for _, tc := range []struct{ name, flag, value, want string }{
		{"--user", "--user", "nobody", "--user nobody"},
		{"sidecar user=", "--sidecar", "user=nobody -- sleep 1", `user=nobody`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := t.TempDir() + "/started"
			cmd := exec.Command("setpriv", "--inh-caps=-all", "--bounding-set=-all",
				os.Args[0], tc.flag, tc.value, "--", "sh", "-c", "touch "+marker)
			cmd.Env = append(os.Environ(), runChildEnv+"=1")
			out, err := cmd.CombinedOutput()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want 2\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); strings.Count(got, "\n") != 0 ||
				!strings.Contains(got, tc.want) || !strings.Contains(got, "without CAP_SET") {
				t.Errorf("message: %q", got)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("main was started")
			}
		})
	}
}
