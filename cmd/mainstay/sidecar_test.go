package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	mainproc "github.com/mainstay-dev/mainstay/main"
	"github.com/mainstay-dev/mainstay/readiness"
)

func TestSidecarBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"unknown key", "colour=red -- memcached", []string{`"colour=red"`, "colour", "name, ready"}},
		{"nothing after --", "name=x --", []string{"no command after --"}},
		{"bad restart", "restart=sometimes -- memcached", []string{`"restart=sometimes"`, "no, on-failure or always"}},
		{"bad start", "start=later -- memcached", []string{`"start=later"`, "before or after"}},
		{"bad retries", "retries=-1 -- memcached", []string{`"retries=-1"`}},
		{"retries not a number", "retries=many -- memcached", []string{`"retries=many"`}},
		{"bad essential", "essential=maybe -- memcached", []string{`"essential=maybe"`, "true or false"}},
		{"bad stop-signal", "stop-signal=FOO -- memcached", []string{`"stop-signal=FOO"`, `"FOO"`}},
		{"bad ready spec", "ready=tcp:99999 -- memcached", []string{`"ready=tcp:99999"`}},
		{"ready that watches main", "ready=log:x -- memcached", []string{`"ready=log:x"`, "watches main"}},
		{"ready=notify twice", "ready=notify ready=notify -- memcached", []string{`"ready=notify"`, "more than once"}},
		{"unknown user", "user=no-such-user-here -- memcached", []string{`"user=no-such-user-here"`, "no such user"}},
		{"empty name", "name= -- memcached", []string{`"name="`, "empty name"}},
		{"shell operator", "memcached | tee x", []string{"shell operator"}},
		{"unbalanced quote", "name=x -- 'memcached", []string{"cannot split"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := append([]string{"sidecar", "--sidecar|MAINSTAY_SIDECAR"}, tc.want...)
			checkBadInput(t, []string{"--sidecar", tc.spec, argvMain}, nil, want)
		})
	}
	t.Run("duplicate names", func(t *testing.T) {
		checkBadInput(t, []string{"--sidecar", "name=a -- sleep 1", "--sidecar", "name=a -- sleep 2", argvMain}, nil, []string{"--sidecar", `name "a"`, "taken"})
	})
	t.Run("duplicate names in the environment", func(t *testing.T) {
		checkBadInput(t, []string{argvMain}, map[string]string{"MAINSTAY_SIDECAR": "name=a -- sleep 1\nname=a -- sleep 2"}, []string{"MAINSTAY_SIDECAR", `name "a"`, "taken"})
	})
	t.Run("in the environment", func(t *testing.T) {
		checkBadInput(t, []string{argvMain}, map[string]string{"MAINSTAY_SIDECAR": "cron -f\nrestart=never -- memcached"}, []string{"MAINSTAY_SIDECAR|--sidecar", `"restart=never"`})
	})
}

func TestSidecarSpecs(t *testing.T) {
	cli := mustParse(t,
		"--sidecar", "memcached -u nobody",
		"--sidecar", "name=c ready=tcp:11211 ready=notify ready=file:/x start=after restart=always retries=0 essential=false stop-signal=INT -- memcached -p 1",
		"--sidecar", "runuser -u www-data -- php-fpm -F",
		"--sidecar", "sh -c 'a'", "--sidecar", "sh -c 'b'",
		"--", "true")
	l := cli.Sidecar
	if len(l) != 5 {
		t.Fatalf("%d sidecars, want 5", len(l))
	}
	if s := l[0]; s.Name != "memcached" || !slices.Equal(s.Argv, []string{"memcached", "-u", "nobody"}) || s.After || s.Restart != mainproc.RestartOnFailure || s.Retries != 5 || !s.Essential || s.StopSignal != 15 {
		t.Errorf("bare sidecar %+v, want the defaults", s)
	}
	if s := l[1]; s.Name != "c" || len(s.Ready) != 3 || readiness.NotifyOf(s.Ready) == nil || !s.After || s.Restart != mainproc.RestartAlways || s.Retries != 0 || s.Essential || s.StopSignal != 2 || !slices.Equal(s.Argv, []string{"memcached", "-p", "1"}) {
		t.Errorf("sidecar with options %+v", s)
	}
	if s := l[2]; !slices.Equal(s.Argv, []string{"runuser", "-u", "www-data", "--", "php-fpm", "-F"}) {
		t.Errorf("a -- inside a bare command: %q, want the whole line as the command", s.Argv)
	}
	if l[3].Name != "sh#4" || l[4].Name != "sh#5" {
		t.Errorf("names %q %q, want sh#4 sh#5 (position among the sidecars)", l[3].Name, l[4].Name)
	}
}

// TestSidecarNotifyExtend: a start=before sidecar's ready=notify
// EXTEND_TIMEOUT_USEC moves the end of its wait past --ready-timeout;
// without it the same sidecar is not ready in time (124, main never
// started).
func TestSidecarNotifyExtend(t *testing.T) {
	if _, err := exec.LookPath("systemd-notify"); err != nil {
		t.Skip("systemd-notify not installed (e2e/setup.sh installs it)")
	}
	for _, tc := range []struct {
		name, extend string
		code         int
		stderr       string
	}{
		{"extended", "systemd-notify EXTEND_TIMEOUT_USEC=30000000", 0, "readiness deadline extended"},
		{"not extended", "true", 124, "sidecar not ready in time; main not started"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ran := filepath.Join(dir, "main.ran")
			// READY=1 comes when twice --ready-timeout has passed: the
			// time itself is what the test is about.
			sc := "name=slow ready=notify -- sh -c '" + tc.extend + "; sleep 1.2; systemd-notify --ready; exec sleep 1000'"
			code, _, stderr := runMainstay(t, nil, "--ready-timeout", "600ms", "--sidecar", sc, "--", "touch", ran)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, want %d with %q", code, tc.code, tc.stderr)
			}
			if _, err := os.Stat(ran); (err == nil) != (tc.code == 0) {
				t.Errorf("main ran: %v, want %v", err == nil, tc.code == 0)
			}
		})
	}
}
