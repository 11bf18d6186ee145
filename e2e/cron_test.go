//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Scheduled entries (--cron, --crontab) against real processes: runs on
// time and only once main is ready, overlap=skip and allow, timeout=,
// user=, env= and dir=, a crontab's environment lines, the stop during a
// run, and bad input.

// cronLogs are mainstay's records with message msg about the entry name.
func (r *run) cronLogs(msg, name string) []logLine {
	var out []logLine
	for _, l := range r.logsWith(msg) {
		if l.str("cron") == name {
			out = append(out, l)
		}
	}
	return out
}

// waitCronLog waits for n records with message msg about the entry name,
// and returns them.
func (r *run) waitCronLog(msg, name string, n int) []logLine {
	r.t.Helper()
	var ls []logLine
	waitFor(r.t, short, fmt.Sprintf("%d× %q for %s", n, msg, name), func() bool {
		ls = r.cronLogs(msg, name)
		return len(ls) >= n
	})
	return ls
}

// cronEnds are the records of the named entry's ended runs, in order.
func (r *run) cronEnds(name string) []logLine {
	var out []logLine
	for _, l := range r.logs() {
		switch l.str("msg") {
		case "cron run succeeded", "cron run failed", "cron run timed out", "cron run stopped":
			if l.str("cron") == name {
				out = append(out, l)
			}
		}
	}
	return out
}

// logTime reads a time that a record carries as a value (next, due).
func logTime(t *testing.T, l logLine, key string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, l.str(key))
	if err != nil {
		t.Fatalf("record %v: %s: %v", l, key, err)
	}
	return at
}

// TestCronEvery: an @every 1s entry does not run while main is not ready
// (for more than two of its intervals), then runs once per second from
// the time main is ready, each run within its slot, and each run's
// effect is there.
func TestCronEvery(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		gate, runs := filepath.Join(dir, "go"), filepath.Join(dir, "runs")
		job := script(t, dir, "tick.sh", `date +%s.%N >> "$D/runs"`+"\n")
		r := start(t, m, dir, "--log-format", "json", "--ready", "file:"+gate,
			"--cron", "@every 1s name=tick -- "+job, "--", serverMain(t, dir, 0))
		r.waitLog("main started")
		// An observation window, not a wait for a condition: two and a
		// half intervals of the schedule in which nothing may run.
		time.Sleep(2500 * time.Millisecond)
		if n := len(lines(runs)); n != 0 || len(r.logsWith("cron run started")) != 0 || len(r.logsWith("cron entry scheduled")) != 0 {
			t.Fatalf("%d runs, %d logged, before main is ready", n, len(r.logsWith("cron run started")))
		}
		touch(t, gate)
		sched := r.waitLog("cron entry scheduled")
		if sched.str("cron") != "tick" || sched.str("schedule") != "@every 1s" {
			t.Errorf("scheduled line %v", sched)
		}
		first := logTime(t, sched, "next")
		if fg := r.waitLog("main in the foreground"); first.Before(fg.time().Add(900 * time.Millisecond)) {
			t.Errorf("first run due at %s, want a second after main is ready (%s)", first, fg.time())
		}
		// The window: three runs.
		waitFor(t, short, "three runs", func() bool { return len(lines(runs)) >= 3 })
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want main's 0", code)
		}
		starts := r.cronLogs("cron run started", "tick")
		if len(starts) < 3 || len(starts) > 4 {
			t.Fatalf("%d runs started, want 3 (a 4th may have started before the stop)", len(starts))
		}
		for i, l := range starts {
			slot := first.Add(time.Duration(i) * time.Second)
			if at := l.time(); at.Before(slot) || !at.Before(slot.Add(time.Second)) {
				t.Errorf("run %d started at %s, want in its slot [%s, +1s)", i+1, at.Format(time.RFC3339Nano), slot.Format(time.RFC3339Nano))
			}
		}
		ends := r.cronEnds("tick")
		if len(ends) != len(starts) || len(lines(runs)) != len(starts) {
			t.Errorf("%d runs started, %d ended, %d ran", len(starts), len(ends), len(lines(runs)))
		}
		for _, l := range ends {
			if l.str("msg") != "cron run succeeded" || l.num("exit_code") != 0 || l.str("elapsed") == "" || l.num("pid") <= 0 {
				t.Errorf("end of a run: %v", l)
			}
		}
	})
}

// holdJob writes a job that records its PID in DIR/pids and runs until
// DIR/release exists.
func holdJob(t *testing.T, dir string) string {
	return script(t, dir, "hold.sh", `echo $$ >> "$D/pids"
until [ -e "$D/release" ]; do sleep 0.02; done
`)
}

// TestCronOverlapSkip: a run that falls due while the previous one runs
// is skipped, logged once at WARN (the next ones at DEBUG), and the next
// run starts only after the previous one ended.
func TestCronOverlapSkip(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		r := start(t, m, dir, append(append([]string{"--log-format", "json", "--log-level", "debug"}, mainReady(dir)...),
			"--cron", "@every 1s name=slow -- "+holdJob(t, dir), "--", serverMain(t, dir, 0))...)
		r.waitCronLog("cron run started", "slow", 1)
		skips := r.waitCronLog("cron run skipped: the previous run is still running (overlap=skip)", "slow", 3)
		if n := len(lines(filepath.Join(dir, "pids"))); n != 1 {
			t.Fatalf("%d runs while the first one runs, want 1", n)
		}
		for i, l := range skips {
			want := "DEBUG"
			if i == 0 {
				want = "WARN"
			}
			if l.str("level") != want {
				t.Errorf("skip %d at %s, want %s (logged once)", i+1, l.str("level"), want)
			}
		}
		first := r.pidFile("pids")
		touch(t, filepath.Join(dir, "release"))
		end := r.waitCronLog("cron run succeeded", "slow", 1)[0]
		if end.num("skipped") < 3 {
			t.Errorf("end of the first run %v, want skipped ≥ 3", end)
		}
		mustBeGone(t, "the first run", first)
		second := r.waitCronLog("cron run started", "slow", 2)[1]
		if second.time().Before(end.time()) {
			t.Errorf("second run started at %s, before the first one ended at %s", second.time(), end.time())
		}
		r.waitCronLog("cron run succeeded", "slow", 2)
		if n := len(r.cronLogs("cron run skipped: the previous run is still running (overlap=skip)", "slow")); n != len(skips) {
			t.Errorf("%d skips, want none after the release", n-len(skips))
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})
}

// TestCronOverlapAllow: with overlap=allow, a run that falls due while
// the previous one runs starts too.
func TestCronOverlapAllow(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		r := start(t, m, dir, append(append([]string{"--log-format", "json"}, mainReady(dir)...),
			"--cron", "@every 1s name=slow overlap=allow -- "+holdJob(t, dir), "--", serverMain(t, dir, 0))...)
		pids := filepath.Join(dir, "pids")
		waitFor(t, short, "two runs at once", func() bool { return len(lines(pids)) >= 2 })
		var procs []procRef
		for _, s := range lines(pids)[:2] {
			n, _ := strconv.Atoi(s)
			procs = append(procs, r.hostPID(n))
		}
		for i, p := range procs {
			if !p.alive() {
				t.Errorf("run %d is not running beside the other", i+1)
			}
		}
		touch(t, filepath.Join(dir, "release"))
		r.waitCronLog("cron run succeeded", "slow", 2)
		r.mustNotLog("cron run skipped: the previous run is still running (overlap=skip)")
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		for i, p := range procs {
			mustBeGone(t, fmt.Sprintf("run %d", i+1), p)
		}
	})
}

// TestCronTimeout: a run that outlives its timeout= gets SIGTERM, with
// its process group; one that ignores it gets SIGKILL after the kill
// delay (here --grace, 1s, shorter than 5s). Both are logged as timed
// out, and nothing of their groups is left.
func TestCronTimeout(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		polite := script(t, dir, "polite.sh", `sleep 1000 &
echo $! > "$D/polite.child"
echo $$ > "$D/polite.pid"
wait
`)
		stubborn := script(t, dir, "stubborn.sh", `trap '' TERM
sleep 1000 &
echo $! > "$D/stubborn.child"
echo $$ > "$D/stubborn.pid"
wait
`)
		r := start(t, m, dir, append(append([]string{"--log-format", "json", "--grace", "1s"}, mainReady(dir)...),
			"--cron", "@every 1s name=polite timeout=1500ms -- "+polite,
			"--cron", "@every 1s name=stubborn timeout=1500ms -- "+stubborn,
			"--", serverMain(t, dir, 0))...)
		// The timeout leaves the test 1.5s to find the runs' processes.
		procs := map[string][]procRef{}
		for _, name := range []string{"polite", "stubborn"} {
			procs[name] = []procRef{r.pidFile(name + ".pid"), r.pidFile(name + ".child")}
		}
		for name, status := range map[string]string{"polite": "killed by SIGTERM", "stubborn": "killed by SIGKILL"} {
			stopping := r.waitCronLog("cron run timed out; stopping it", name, 1)[0]
			if stopping.str("timeout") != "1.5s" || stopping.str("kill_after") != "1s" {
				t.Errorf("%s: %v, want timeout 1.5s, kill_after 1s", name, stopping)
			}
			end := r.waitCronLog("cron run timed out", name, 1)[0]
			elapsed, _ := time.ParseDuration(end.str("elapsed"))
			min := 1500 * time.Millisecond
			if name == "stubborn" {
				min += time.Second
			}
			if end.str("status") != status || end.str("level") != "WARN" || elapsed < min {
				t.Errorf("%s: %v, want %s at WARN after %s or more", name, end, status, min)
			}
			for _, p := range procs[name] {
				mustBeGone(t, name+"'s process group", p)
			}
		}
		if n := len(r.cronLogs("cron run did not stop after its timeout; killing it", "stubborn")); n < 1 {
			t.Error("no SIGKILL logged for the run that ignores SIGTERM")
		}
		if n := len(r.cronLogs("cron run did not stop after its timeout; killing it", "polite")); n != 0 {
			t.Error("the run that exits on SIGTERM was sent SIGKILL")
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})
}

// TestCronUser: user= runs the job as that user, with its HOME and USER.
func TestCronUser(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		for _, d := range []string{dir, filepath.Dir(dir)} {
			os.Chmod(d, 0o777) // nobody writes its answer here
		}
		job := script(t, dir, "who.sh", `echo "$(id -u) $(id -g) $HOME $USER" > "$D/who.tmp" && mv "$D/who.tmp" "$D/who"`+"\n")
		r := start(t, m, dir, append(append([]string{"--log-format", "json"}, mainReady(dir)...),
			"--cron", "@every 1s user=nobody -- "+job, "--", serverMain(t, dir, 0))...)
		if got := waitLine(t, filepath.Join(dir, "who")); got != "65534 65534 /nonexistent nobody" {
			t.Errorf("the job ran as %q, want nobody's 65534 65534 /nonexistent nobody", got)
		}
		r.waitCronLog("cron run succeeded", "who.sh", 1)
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})
}

// TestCronEnvDir: a run's environment is the container's (without
// MAINSTAY_*) with env= over it, a later value of a name winning; dir=
// is its working directory, mainstay's by default.
func TestCronEnvDir(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		work := filepath.Join(dir, "work")
		if err := os.Mkdir(work, 0o755); err != nil {
			t.Fatal(err)
		}
		body := `echo "$FOO|$CONTAINER_VAR|$(pwd)|$(env | grep -c '^MAINSTAY_')" > "$D/$1.tmp" && mv "$D/$1.tmp" "$D/$1"` + "\n"
		job := script(t, dir, "env.sh", body)
		cfg := config{env: []string{"CONTAINER_VAR=outer", "FOO=container", "MAINSTAY_GRACE=5s"}}
		r := startWith(t, m, dir, cfg, append(append([]string{"--log-format", "json"}, mainReady(dir)...),
			"--cron", "@every 1s name=with env=FOO=bar env=CONTAINER_VAR=inner env=FOO=baz dir="+work+" -- "+job+" with",
			"--cron", "@every 1s name=without -- "+job+" without",
			"--", serverMain(t, dir, 0))...)
		cwd, _ := os.Getwd()
		if got, want := waitLine(t, filepath.Join(dir, "with")), "baz|inner|"+work+"|0"; got != want {
			t.Errorf("with env= and dir=: %q, want %q", got, want)
		}
		if got, want := waitLine(t, filepath.Join(dir, "without")), "container|outer|"+cwd+"|0"; got != want {
			t.Errorf("without: %q, want %q", got, want)
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})
}

// TestCronCrontab: a crontab's NAME=VALUE lines set the environment of
// the jobs below them; each job runs by sh -c, named after its command's
// first word (#N when shared); % is literal; its output is prefixed.
func TestCronCrontab(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		ct := filepath.Join(dir, "crontab")
		writeFile(t, ct, fmt.Sprintf(`# jobs of the test
GREETING=hello
@every 1s echo "$GREETING ${LATER:-unset}" > %[1]s/first.tmp && mv %[1]s/first.tmp %[1]s/first
LATER = "set later"
@every 1s echo "$GREETING $LATER" > %[1]s/second.tmp && mv %[1]s/second.tmp %[1]s/second
@every 1s printf '%%s\n' 100%% > %[1]s/pct.tmp && mv %[1]s/pct.tmp %[1]s/pct
@every 1s echo from the crontab
`, dir), 0o644)
		r := start(t, m, dir, append(append([]string{"--log-format", "json", "--crontab", ct}, mainReady(dir)...),
			"--", serverMain(t, dir, 0))...)
		if got := waitLine(t, filepath.Join(dir, "first")); got != "hello unset" {
			t.Errorf("first job: %q, want %q (LATER is set below it)", got, "hello unset")
		}
		if got := waitLine(t, filepath.Join(dir, "second")); got != "hello set later" {
			t.Errorf("second job: %q, want %q", got, "hello set later")
		}
		if got := waitLine(t, filepath.Join(dir, "pct")); got != "100%" {
			t.Errorf("%% in a command: %q, want 100%% (literal, as written)", got)
		}
		waitFor(t, short, "the prefixed output", func() bool {
			return contains(lines(filepath.Join(dir, "mainstay.out")), "[echo#4] from the crontab")
		})
		var names []string
		for _, l := range r.logsWith("cron entry scheduled") {
			names = append(names, l.str("cron")+" "+l.str("schedule"))
		}
		if got := strings.Join(names, ", "); got != "echo#1 @every 1s, echo#2 @every 1s, printf @every 1s, echo#4 @every 1s" {
			t.Errorf("entries %q", got)
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})
}

// TestCronStop: SIGTERM to mainstay during runs. Main takes 1.5s to stop;
// meanwhile slots fall due and no run starts. Then the running jobs get
// SIGTERM: one exits, one ignoring it is killed at the end of --grace
// (counted from main's stop signal). Mainstay's exit is main's, within
// --grace (and the 1s it may wait after SIGKILL); nothing is left.
func TestCronStop(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `trap 'echo TERM >> "$D/main.sigs"; sleep 1.5; exit 7' TERM
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		longJob := script(t, dir, "long.sh", `trap 'echo TERM >> "$D/long.sigs"; exit 0' TERM
echo $$ > "$D/long.pid"
while :; do sleep 0.02; done
`)
		stubborn := script(t, dir, "stubborn.sh", `trap '' TERM
echo $$ > "$D/stubborn.pid"
while :; do sleep 0.02; done
`)
		tick := script(t, dir, "tick.sh", `echo run >> "$D/ticks"`+"\n")
		const grace = 3 * time.Second
		r := start(t, m, dir, append(append([]string{"--log-format", "json", "--log-level", "debug", "--grace", grace.String()}, mainReady(dir)...),
			"--cron", "@every 1s name=long -- "+longJob,
			"--cron", "@every 1s name=stubborn -- "+stubborn,
			"--cron", "@every 1s name=tick -- "+tick,
			"--", main)...)
		procs := []procRef{r.pidFile("long.pid"), r.pidFile("stubborn.pid")}
		r.waitCronLog("cron run succeeded", "tick", 1)
		signalled := time.Now()
		r.signal(syscall.SIGTERM)
		code := r.wait(long)
		took := r.endedAt().Sub(signalled)
		if code != 7 {
			t.Errorf("exit %d, want main's 7", code)
		}
		if took < grace || took > grace+1500*time.Millisecond {
			t.Errorf("mainstay exited %s after SIGTERM, want at the end of --grace %s (the stubborn run's SIGKILL), within 1s more", took, grace)
		}
		if got := lines(filepath.Join(dir, "long.sigs")); len(got) != 1 {
			t.Errorf("the long run got %q, want one TERM", got)
		}
		if l := r.cronLogs("cron run stopped", "long"); len(l) != 1 || l[0].str("status") != "exit status 0" {
			t.Errorf("long's end %v, want stopped, exit status 0", l)
		}
		if len(r.cronLogs("cron run did not exit within grace; killing it", "stubborn")) != 1 {
			t.Error("the stubborn run's SIGKILL at the end of --grace is not logged")
		}
		if l := r.cronLogs("cron run stopped", "stubborn"); len(l) != 1 || l[0].str("status") != "killed by SIGKILL" {
			t.Errorf("stubborn's end %v, want stopped, killed by SIGKILL", l)
		}
		stopping := r.mustLog("stopping main")
		if stopping == nil {
			return
		}
		for _, l := range r.logsWith("cron run started") {
			if l.time().After(stopping.time().Add(100 * time.Millisecond)) {
				t.Errorf("a run started once main was asked to stop: %v", l)
			}
		}
		if len(r.logsWith("cron run not started: the stop has begun")) == 0 {
			t.Error("no slot fell due while main was stopping (1.5s, every 1s)")
		}
		for _, p := range procs {
			mustBeGone(t, "a cron run", p)
		}
	})
}

// TestCronBadInput: a bad schedule or option in --cron, MAINSTAY_CRON or
// a --crontab is exit 2, one line naming the entry and the bad word, and
// nothing started.
func TestCronBadInput(t *testing.T) {
	ctDir := t.TempDir()
	crontab := func(name, body string) string {
		path := filepath.Join(ctDir, name)
		writeFile(t, path, body, 0o644)
		return path
	}
	userField := crontab("userfield", "0 3 * * * root tidy --all\n")
	badDow := crontab("baddow", "# tidy\nPATH=/usr/bin:/bin\n0 3 * * 7 tidy --all\n")
	cases := []struct {
		name  string
		args  []string
		env   []string
		names []string // the line names one of these
		value string   // and this
	}{
		{"cron-minute", []string{"--cron", "61 * * * * -- tidy"}, nil, []string{`--cron: cron "61 * * * * -- tidy"`}, `minute "61"`},
		{"cron-every", []string{"--cron", "@every 10ms -- tidy"}, nil, []string{`--cron: cron "@every 10ms -- tidy"`}, `"10ms"`},
		{"cron-no-separator", []string{"--cron", "@daily tidy"}, nil, []string{`--cron: cron "@daily tidy"`}, "no --"},
		{"cron-overlap", []string{"--cron", "@daily overlap=queue -- tidy"}, nil, []string{`--cron: cron "@daily overlap=queue -- tidy"`}, `"overlap=queue"`},
		{"cron-timeout", []string{"--cron", "@daily timeout=-1s -- tidy"}, nil, []string{`--cron`}, `"timeout=-1s"`},
		{"cron-user", []string{"--cron", "@daily user=mainstay-no-such-user -- tidy"}, nil, []string{`--cron`}, "mainstay-no-such-user"},
		{"cron-name-main", []string{"--cron", "@daily name=main -- tidy"}, nil, []string{`--cron "@daily name=main -- tidy"`}, `name "main"`},
		{"env-cron-second-line", nil, []string{"MAINSTAY_CRON=@daily -- true\n@hourly overlap=queue -- tidy"}, []string{"MAINSTAY_CRON"}, `"overlap=queue"`},
		{"env-cron-schedule", nil, []string{"MAINSTAY_CRON=0 0 31 2 * -- tidy"}, []string{"MAINSTAY_CRON"}, `"0 0 31 2 *"`},
		{"env-cron-names", nil, []string{"MAINSTAY_CRON=@daily -- tidy\n@hourly name=tidy -- true"}, []string{`MAINSTAY_CRON "@hourly name=tidy -- true"`}, `name "tidy"`},
		{"crontab-user-field", []string{"--crontab", userField}, nil, []string{"--crontab: crontab " + userField + ":1"}, `"root"`},
		{"crontab-day-of-week", []string{"--crontab", badDow}, nil, []string{"--crontab: crontab " + badDow + ":3"}, `"7"`},
		{"env-crontab-absent", nil, []string{"MAINSTAY_CRONTAB=" + ctDir + "/absent"}, []string{"MAINSTAY_CRONTAB"}, ctDir + "/absent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				marker := filepath.Join(dir, "started")
				args := append(append([]string{"--log-format", "json"}, c.args...), "--", "touch", marker)
				r := startWith(t, m, dir, config{env: c.env}, args...)
				if got := r.wait(long); got != 2 {
					t.Errorf("exit code %d, want 2", got)
				}
				if exists(marker) {
					t.Error("main was started")
				}
				checkUsageLine(t, r.stderr(), c.names, c.value)
			})
		})
	}
}

// TestCronStatus: mainstay status shows each entry as a child of kind
// cron: pending before main is ready, running with the run's PID, then
// scheduled with the run's exit, and when the next run is due; restart
// of an entry is refused.
func TestCronStatus(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		sock, gate := filepath.Join(dir, "control.sock"), filepath.Join(dir, "go")
		r := start(t, m, dir, "--log-format", "json", "--control-socket", sock, "--ready", "file:"+gate,
			"--cron", "@every 1s name=slow -- "+holdJob(t, dir), "--", serverMain(t, dir, 0))
		r.waitLog("main started")
		if c := childOf(statusOf(t, sock), "slow"); c.Kind != "cron" || c.State != "pending" || c.NextDue != nil {
			t.Errorf("before main is ready: %+v", c)
		}
		touch(t, gate)
		r.waitCronLog("cron run started", "slow", 1)
		run := r.pidFile("pids")
		c := childOf(statusOf(t, sock), "slow")
		if c.State != "running" || c.PID == 0 || c.Uptime == nil || c.NextDue == nil || !strings.HasSuffix(strings.Join(c.Command, " "), "hold.sh") {
			t.Errorf("during a run: %+v", c)
		}
		if _, errOut, code := ctlOut(t, sock, nil, "restart", "slow"); code != 1 || !strings.Contains(errOut, "not a sidecar") {
			t.Errorf("restart of an entry: exit %d, %q", code, errOut)
		}
		touch(t, filepath.Join(dir, "release"))
		mustBeGoneSoon(t, "the run", run)
		waitFor(t, short, "the entry scheduled again", func() bool {
			c = childOf(statusOf(t, sock), "slow")
			return c.State == "scheduled" && c.LastExit != nil
		})
		if c.PID != 0 || c.LastExit.Code != 0 || c.NextDue == nil || !c.NextDue.After(c.LastExit.At.Add(-time.Second)) {
			t.Errorf("between runs: %+v", c)
		}
		r.signal(syscall.SIGTERM)
		if code := r.wait(long); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
	})
}

// mustBeGoneSoon waits until the process has exited.
func mustBeGoneSoon(t *testing.T, what string, p procRef) {
	t.Helper()
	waitFor(t, short, what+" to exit", func() bool { return !p.alive() })
}
