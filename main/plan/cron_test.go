package plan

import (
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseCron(t *testing.T) {
	c, err := ParseCron("*/5 * * * * name=tidy user=nobody -- find /var/log/app -name *.log -mmin +60 -delete")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "tidy" || c.Schedule != "*/5 * * * *" || c.User == nil || c.User.Spec != "nobody" || c.Overlap != OverlapSkip || c.Timeout != 0 || c.Dir != "" || c.Env != nil {
		t.Errorf("the issue's example: %+v", c)
	}
	if want := []string{"find", "/var/log/app", "-name", "*.log", "-mmin", "+60", "-delete"}; !slices.Equal(c.Argv, want) {
		t.Errorf("argv %q, want %q", c.Argv, want)
	}
	if c.When.String() != c.Schedule {
		t.Errorf("When %q", c.When)
	}

	c, err = ParseCron("@every 1m timeout=30s overlap=allow env=A=1 env=B=x=y dir=/srv -- sh -c 'echo $A'")
	if err != nil {
		t.Fatal(err)
	}
	if c.When.Every() != time.Minute || c.Timeout != 30*time.Second || c.Overlap != OverlapAllow || c.Dir != "/srv" || !slices.Equal(c.Env, []string{"A=1", "B=x=y"}) || !slices.Equal(c.Argv, []string{"sh", "-c", "echo $A"}) {
		t.Errorf("every option: %+v", c)
	}

	// Options may come first; the schedule's words keep their order.
	c, err = ParseCron("name=nightly 0 3 timeout=0 * * 1-5 -- backup --all")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "nightly" || c.Schedule != "0 3 * * 1-5" || c.Timeout != 0 {
		t.Errorf("options first: %+v", c)
	}
}

// TestParseCronErrors: one line, naming the entry and the bad word.
func TestParseCronErrors(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"* * * * * echo hi", "no -- between the schedule and the command"},
		{"@daily --", "no command after --"},
		{"@daily -- ''", "empty program name"},
		{"name=x -- true", "no schedule before --"},
		{"61 * * * * -- true", `minute "61": end of range (61) above maximum (59)`},
		{"0 * * * * * -- true", "got 6 words"},
		{"* * * * -- true", "got 4 words"},
		{"0 0 * * 7 -- true", `day-of-week "7"`},
		{"@reboot -- true", "--before task"},
		{"@every 100ms -- true", `@every "100ms"`},
		{"@daily stop-signal=INT -- x", `"stop-signal=INT": unknown option "stop-signal" (want one of name, user, timeout, overlap, env, dir)`},
		{"@daily =x -- x", `"=x": unknown option ""`},
		{"@daily name=a name=b -- x", `"name=b": name= given more than once`},
		{"@daily overlap=skip overlap=allow -- x", `"overlap=allow": overlap= given more than once`},
		{"@daily name= -- x", `"name=": empty name`},
		{"@daily name=a\x1b[31m -- x", "control characters"},
		{"@daily user=mainstay-no-such-user -- x", "no such user"},
		{"@daily timeout=soon -- x", `"timeout=soon": want a duration`},
		{"@daily timeout=-1s -- x", `"timeout=-1s": want a duration`},
		{"@daily overlap=queue -- x", `"overlap=queue": want skip or allow`},
		{"@daily env=FOO -- x", `"env=FOO": want env=KEY=VALUE`},
		{"@daily env==x -- x", `"env==x": want env=KEY=VALUE`},
		{"@daily dir= -- x", `"dir=": empty directory`},
		{"@daily -- echo a > /tmp/x", "shell operator"},
		{"@daily -- echo 'a", "cannot split"},
		{"@daily -- curl https://user:secret@example.com >", "https://user:xxxxx@example.com"},
	} {
		t.Run(tc.line, func(t *testing.T) {
			_, err := ParseCron(tc.line)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseCron: %v; want an error with %q", err, tc.want)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "cron ") || strings.Contains(msg, "\n") || strings.Contains(msg, "secret") {
				t.Errorf("want one line naming the entry: %q", msg)
			}
		})
	}
}

func writeCrontab(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "crontab")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParseCrontab: comments and blank lines skipped, NAME=VALUE lines set
// the environment of the jobs below them (quotes keep blanks; SHELL= runs
// them), keywords and @every, "%" kept as written, CRLF endings.
func TestParseCrontab(t *testing.T) {
	p := writeCrontab(t, `# a comment
   # an indented one

*/5 * * * * /usr/local/bin/tidy.sh --old
SHELL=/bin/bash
PATH = /usr/local/bin:/usr/bin:/bin
GREETING="hello world  "
@daily   date +%F > /tmp/today  # not a comment: cron keeps it too
@every 90s FOO=1 backup --fast`+"\r\n"+`GREETING=bye
0 3 * * 1-5	tidy.sh again
`)
	crons, err := ParseCrontab(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(crons) != 4 {
		t.Fatalf("%d jobs, want 4", len(crons))
	}
	for i, want := range []struct {
		source, schedule string
		argv             []string
		env              []string
	}{
		{p + ":4", "*/5 * * * *", []string{"/bin/sh", "-c", "/usr/local/bin/tidy.sh --old"}, nil},
		{p + ":8", "@daily", []string{"/bin/bash", "-c", "date +%F > /tmp/today  # not a comment: cron keeps it too"}, []string{"SHELL=/bin/bash", "PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello world  "}},
		{p + ":9", "@every 90s", []string{"/bin/bash", "-c", "FOO=1 backup --fast"}, []string{"SHELL=/bin/bash", "PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello world  "}},
		{p + ":11", "0 3 * * 1-5", []string{"/bin/bash", "-c", "tidy.sh again"}, []string{"SHELL=/bin/bash", "PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=bye"}},
	} {
		c := crons[i]
		if c.Source != "crontab "+want.source || c.Schedule != want.schedule || !slices.Equal(c.Argv, want.argv) || !slices.Equal(c.Env, want.env) || c.Overlap != OverlapSkip {
			t.Errorf("job %d: %s %q %q %q; want %s %q %q %q", i+1, c.Source, c.Schedule, c.Argv, c.Env, want.source, want.schedule, want.argv, want.env)
		}
	}
	if err := NameCrons(crons, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range crons {
		names = append(names, c.Name)
	}
	if want := []string{"tidy.sh#1", "date", "backup", "tidy.sh#4"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q (the command's first word, not the shell)", names, want)
	}
}

// TestParseCrontabErrors: the file, the line number and the bad word, in
// one line; a user field points to user=.
func TestParseCrontabErrors(t *testing.T) {
	for _, tc := range []struct{ name, text, want string }{
		{"user field", "# jobs\n* * * * * root echo hi\n", `:2: "root": a user field (the /etc/cron.d form), which a crontab here does not have: its jobs run as --user (or mainstay's user); for another user, give the job as --cron '* * * * * user=root -- COMMAND'`},
		{"user field nobody", "@hourly nobody /bin/true\n", `:1: "nobody": a user field`},
		{"bad minute", "A=1\n61 * * * * x\n", `:2: minute "61"`},
		{"four fields", "* * * cmd\n", `:1: "* * * cmd": want 5 fields`},
		{"no command", "* * * * *\n", `:1: "* * * * *": no command after the schedule`},
		{"keyword alone", "@daily\n", `:1: "@daily": no command after the schedule`},
		{"not a line", "echo hi\n", `:1: "echo hi": neither a job`},
		{"bad keyword", "@reboot x\n", `:1: "@reboot" is not a schedule here`},
		{"CRON_TZ", "CRON_TZ=UTC\n0 0 * * * x\n", `:1: "CRON_TZ=UTC": CRON_TZ is not supported`},
		{"empty SHELL", "SHELL=\n", `:1: "SHELL=": empty SHELL`},
		{"password", "* * * * https://u:secret@example.com/x\n", `:1: day-of-week "https://u:xxxxx@example.com/x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeCrontab(t, tc.text)
			_, err := ParseCrontab(p)
			if err == nil || !strings.Contains(err.Error(), "crontab "+p+tc.want) {
				t.Fatalf("ParseCrontab: %v; want an error with %q", err, "crontab "+p+tc.want)
			}
			if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "secret") {
				t.Errorf("error of more than one line, or showing a password: %q", err)
			}
		})
	}
	_, err := ParseCrontab("/mainstay-no-such-crontab")
	if err == nil || err.Error() != "crontab /mainstay-no-such-crontab: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
	if _, err := ParseCrontab(" "); err == nil || !strings.Contains(err.Error(), "blank file name") {
		t.Errorf("blank path: %v", err)
	}
}

// TestCheckCrons: the entries are named after the sidecars' names, and a
// user= is checked.
func TestCheckCrons(t *testing.T) {
	c, err := ParseCron("@daily -- memcached --flush")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ParseSidecar("name=memcached -- memcached")
	if err != nil {
		t.Fatal(err)
	}
	if err := NameCrons([]*Cron{c}, nil); err != nil || c.Name != "memcached" {
		t.Fatalf("alone: %q, %v", c.Name, err)
	}
	if err := CheckCrons([]*Cron{c}, []*Sidecar{sc}); err == nil || !strings.Contains(err.Error(), `name "memcached" is taken by a sidecar`) {
		t.Errorf("beside the sidecar: %v", err)
	}
}

// TestCrontabUserNamedProgram: a user name that is also a program on the
// job's PATH is a command (Debian has users named backup, mail, sync),
// and a user name alone on the line is the command.
func TestCrontabUserNamedProgram(t *testing.T) {
	if _, err := user.Lookup("backup"); err != nil {
		t.Skip("no user named backup here")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "backup"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := writeCrontab(t, "PATH="+dir+"\n0 1 * * * backup --all\n0 2 * * * nobody\n")
	crons, err := ParseCrontab(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(crons) != 2 || crons[0].Argv[2] != "backup --all" {
		t.Errorf("jobs %+v", crons)
	}
	p = writeCrontab(t, "0 1 * * * backup --all\n")
	if _, err := ParseCrontab(p); err == nil || !strings.Contains(err.Error(), "user=backup") {
		t.Errorf("backup not on PATH: %v; want the user field refused", err)
	}
}

func TestNameCrons(t *testing.T) {
	parse := func(lines ...string) []*Cron {
		t.Helper()
		var l []*Cron
		for _, line := range lines {
			c, err := ParseCron(line)
			if err != nil {
				t.Fatal(err)
			}
			l = append(l, c)
		}
		return l
	}
	l := parse("@daily -- /bin/sleep 1", "@hourly -- sleep 2", "@hourly name=tidy -- sleep 3", "@daily -- backup")
	if err := NameCrons(l, []string{"cache"}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range l {
		names = append(names, c.Name)
	}
	if want := []string{"sleep#1", "sleep#2", "tidy", "backup"}; !slices.Equal(names, want) {
		t.Errorf("names %q, want %q", names, want)
	}

	crontab, err := ParseCrontab(writeCrontab(t, "@daily cache --warm\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		crons []*Cron
		taken []string
		want  string
	}{
		{"main", parse("@daily name=main -- x"), nil, `cron "@daily name=main -- x": name "main" is main's; give one name=`},
		{"main by default", parse("@daily -- /app/main"), nil, `name "main" is main's`},
		{"twice", parse("@daily name=a -- x", "@daily name=a -- y"), nil, `cron "@daily name=a -- y": name "a" is taken by another cron entry; give one name=`},
		{"default taken by name=", parse("@daily name=x -- y", "@daily -- x"), nil, `cron "@daily -- x": name "x" is taken by another cron entry`},
		{"a sidecar's", parse("@daily -- memcached"), []string{"memcached"}, `name "memcached" is taken by a sidecar; give one name=`},
		{"crontab line, a sidecar's", crontab, []string{"cache"}, `:1: name "cache" is taken by a sidecar; a crontab line is named after its command: rename the other with name=, or give this job as --cron with name=`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := NameCrons(tc.crons, tc.taken)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NameCrons: %v; want an error with %q", err, tc.want)
			}
		})
	}
}

func TestCronEnviron(t *testing.T) {
	c, err := ParseCron("@daily env=HOME=/srv env=B=2 env=B=3 -- x")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Environ([]string{"PATH=/bin", "HOME=/root", "A=1"})
	if want := []string{"PATH=/bin", "A=1", "HOME=/srv", "B=3"}; !slices.Equal(got, want) {
		t.Errorf("Environ %q, want %q", got, want)
	}
}
