package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestParseCrons: --cron values, then the --crontab's lines, in the plan,
// named (sidecars' names taken into account), with where each was given;
// MAINSTAY_CRON holds one per line and is not read beside --cron.
func TestParseCrons(t *testing.T) {
	ct := filepath.Join(t.TempDir(), "crontab")
	if err := os.WriteFile(ct, []byte("GREETING=hi\n*/5 * * * * echo \"$GREETING\"\n@every 90s tidy --all\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cli := mustParse(t, "--sidecar", "name=cache -- memcached",
		"--cron", "@daily timeout=1m overlap=allow env=A=1 dir=/tmp user=nobody -- /usr/local/bin/backup --all",
		"--cron", "@hourly name=tidy-logs -- find /var/log -delete",
		"--crontab", ct, "--", "app")
	p := cli.plan()
	var names, sources []string
	for _, c := range p.Crons {
		names, sources = append(names, c.Name), append(sources, c.Source)
	}
	if want := []string{"backup", "tidy-logs", "echo", "tidy"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}
	wantSources := []string{`--cron "@daily timeout=1m overlap=allow env=A=1 dir=/tmp user=nobody -- /usr/local/bin/backup --all"`,
		`--cron "@hourly name=tidy-logs -- find /var/log -delete"`, "crontab " + ct + ":2", "crontab " + ct + ":3"}
	if !slices.Equal(sources, wantSources) {
		t.Errorf("sources %q, want %q", sources, wantSources)
	}
	b := p.Crons[0]
	if b.Timeout != time.Minute || b.Overlap != "allow" || !slices.Equal(b.Env, []string{"A=1"}) || b.Dir != "/tmp" || b.User == nil || b.User.UID() != 65534 {
		t.Errorf("options %+v", b)
	}
	if e := p.Crons[2]; !slices.Equal(e.Argv, []string{"/bin/sh", "-c", `echo "$GREETING"`}) || !slices.Equal(e.Env, []string{"GREETING=hi"}) {
		t.Errorf("crontab line %q env %q", e.Argv, e.Env)
	}

	t.Setenv("MAINSTAY_CRON", "@daily -- a\n\n@hourly -- b\n")
	if got := mustParse(t, "--", "app").plan().Crons; len(got) != 2 || got[0].Name != "a" || got[1].Source != `MAINSTAY_CRON "@hourly -- b"` {
		t.Errorf("MAINSTAY_CRON: %+v", got)
	}
	if got := mustParse(t, "--cron", "@daily -- c", "--", "app").plan().Crons; len(got) != 1 || got[0].Name != "c" {
		t.Errorf("--cron beside MAINSTAY_CRON: %+v, want --cron's only", got)
	}
}
