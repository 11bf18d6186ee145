//go:build e2e

package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// terminal is the master side of a pty, with everything written to the
// slave side so far.
type terminal struct {
	master *os.File
	mu     sync.Mutex
	out    bytes.Buffer
}

// openTerminal opens a pty and keeps reading its master side. The caller
// gives the returned slave to mainstay and closes it once mainstay started.
func openTerminal(t *testing.T) (*terminal, *os.File) {
	t.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	term, done := readTerminal(master)
	t.Cleanup(func() {
		master.Close()
		<-done
	})
	return term, slave
}

// readTerminal keeps reading master into a terminal; done is closed when
// master is closed (or its slave side hung up).
func readTerminal(master *os.File) (term *terminal, done <-chan struct{}) {
	term = &terminal{master: master}
	d := make(chan struct{})
	go func() {
		defer close(d)
		buf := make([]byte, 4096)
		for {
			n, err := master.Read(buf)
			term.mu.Lock()
			term.out.Write(buf[:n])
			term.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return term, d
}

func (term *terminal) output() []byte {
	term.mu.Lock()
	defer term.mu.Unlock()
	return bytes.Clone(term.out.Bytes())
}

// write types s on the terminal.
func (term *terminal) write(t *testing.T, s string) {
	t.Helper()
	if _, err := term.master.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// startOnTerminal runs mainstay as "docker run -it" would: stdin, stdout and
// stderr are the pty, in a new session whose controlling terminal it is.
func startOnTerminal(t *testing.T, m mode, dir string, args ...string) (*run, *terminal) {
	t.Helper()
	term, slave := openTerminal(t)
	r := startWith(t, m, dir, config{
		stdin: slave, stdout: slave, stderr: slave,
		setsid: true, setctty: true, ctty: 0,
		output: term.output,
	}, args...)
	slave.Close()
	return r, term
}

// jobLine is sh code that writes "PID PGID TPGID" of the shell to FILE.
func jobLine(file string) string {
	return `echo $$ $(ps -o pgid=,tpgid= -p $$) > "$D/` + file + `"` + "\n"
}

// job is a process's place in job control, from a jobLine file.
type job struct{ pid, pgid, tpgid int }

func readJob(t *testing.T, path string) job {
	t.Helper()
	f := strings.Fields(waitLine(t, path))
	if len(f) != 3 {
		t.Fatalf("%s: %q, want PID PGID TPGID", filepath.Base(path), f)
	}
	var n [3]int
	for i, s := range f {
		var err error
		if n[i], err = strconv.Atoi(s); err != nil {
			t.Fatalf("%s: %q, want PID PGID TPGID", filepath.Base(path), f)
		}
	}
	return job{n[0], n[1], n[2]}
}

// TestTerminalForeground: with a terminal, the running helper is the
// terminal's foreground job, and main becomes it after the helpers ("fg %1").
func TestTerminalForeground(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		h := "sh " + script(t, dir, "helper.sh", jobLine("helper.job"))
		main := script(t, dir, "main.sh", `trap 'exit 0' TERM
while [ ! -e "$D/go" ]; do sleep 0.05; done
`+jobLine("main.job")+`while :; do sleep 0.05; done
`)
		r, _ := startOnTerminal(t, m, dir, "--log-format", "json", "--helper", h, "--", "sh", main)
		helper := readJob(t, filepath.Join(dir, "helper.job"))
		r.waitLog("main in the foreground")
		touch(t, filepath.Join(dir, "go"))
		mainJob := readJob(t, filepath.Join(dir, "main.job"))
		if helper.pgid != helper.pid || helper.tpgid != helper.pgid {
			t.Errorf("helper %+v was not a foreground job of its own", helper)
		}
		if mainJob.pgid != mainJob.pid || mainJob.tpgid != mainJob.pgid {
			t.Errorf("main %+v is not the foreground job after the helpers", mainJob)
		}
		if helper.pgid == mainJob.pgid {
			t.Errorf("helper and main share process group %d", helper.pgid)
		}
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
		r.mustNotLog("cannot give main the terminal")
	})
}

// TestTerminalInteractiveMain: main reads the terminal. It tries while a
// helper runs, so it is stopped by SIGTTIN as a background job; once in the
// foreground it is continued and reads what is typed.
func TestTerminalInteractiveMain(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `echo $$ > "$D/main.pid"
read line
echo "got:$line" > "$D/got"
exit 7
`)
		h := "sh " + script(t, dir, "helper.sh", `while [ ! -s "$D/main.pid" ]; do sleep 0.05; done # -s: written, not just created
pid=$(cat "$D/main.pid")
i=0
while [ $i -lt 200 ]; do
	if [ "$(cut -d' ' -f3 /proc/$pid/stat)" = T ]; then echo stopped > "$D/main.state"; exit 0; fi
	sleep 0.05; i=$((i+1))
done
echo running > "$D/main.state"
`)
		r, term := startOnTerminal(t, m, dir, "--log-format", "json", "--log-level", "debug", "--helper", h, "--", "sh", main)
		if got := waitLine(t, filepath.Join(dir, "main.state")); got != "stopped" {
			t.Errorf("main reading the terminal in the background was %s, want stopped (SIGTTIN)", got)
		}
		r.waitLog("main in the foreground")
		term.write(t, "hello\n")
		if got := r.wait(long); got != 7 {
			t.Errorf("exit code %d, want main's 7", got)
		}
		if got := lines(filepath.Join(dir, "got")); !slices.Equal(got, []string{"got:hello"}) {
			t.Errorf("main read %q, want [got:hello]", got)
		}
		r.mustLog("continuing stopped main")
	})
}

// TestTerminalCtrlC: Ctrl-C on the terminal reaches main, the foreground
// job, straight from the kernel; mainstay neither gets nor forwards it and
// keeps running.
func TestTerminalCtrlC(t *testing.T) {
	eachMode(t, func(t *testing.T, m mode) {
		dir := t.TempDir()
		main := script(t, dir, "main.sh", `trap 'echo INT >> "$D/main.sigs"; echo "main: got INT"' INT
trap 'echo TERM >> "$D/main.sigs"; exit 0' TERM
echo $$ > "$D/main.pid"
while :; do sleep 0.05; done
`)
		r, term := startOnTerminal(t, m, dir, "--log-format", "json", "--log-level", "debug", "--", "sh", main)
		r.pidFile("main.pid")
		r.waitLog("main in the foreground")
		term.write(t, "\x03")
		sigs := filepath.Join(dir, "main.sigs")
		waitContains(t, sigs, "INT")
		waitFor(t, short, "main's output on the terminal", func() bool {
			return bytes.Contains(term.output(), []byte("main: got INT"))
		})
		if r.exited() {
			t.Fatal("mainstay exited on Ctrl-C")
		}
		r.mustNotLog("forwarding signal")
		r.signal(unix.SIGTERM)
		if got := r.wait(long); got != 0 {
			t.Errorf("exit code %d, want main's 0", got)
		}
		if got := lines(sigs); !slices.Equal(got, []string{"INT", "TERM"}) {
			t.Errorf("main got signals %q, want [INT TERM]", got)
		}
	})
}

// TestNoTerminal: when stdin is not a terminal, mainstay leaves job control
// alone, even with a controlling terminal on stdout ("docker run -t" without
// -i) or no controlling terminal at all; start-up works.
func TestNoTerminal(t *testing.T) {
	for _, ctty := range []bool{true, false} {
		name := "no-ctty"
		if ctty {
			name = "ctty-on-stdout"
		}
		t.Run(name, func(t *testing.T) {
			eachMode(t, func(t *testing.T, m mode) {
				dir := t.TempDir()
				h := "sh " + script(t, dir, "helper.sh", jobLine("helper.job"))
				main := script(t, dir, "main.sh", `while [ ! -e "$D/go" ]; do sleep 0.05; done
`+jobLine("main.job")+`exit 3
`)
				cfg := config{setsid: true}
				if ctty {
					term, slave := openTerminal(t)
					cfg.stdout, cfg.stderr, cfg.setctty, cfg.ctty, cfg.output = slave, slave, true, 1, term.output
					defer slave.Close()
				}
				r := startWith(t, m, dir, cfg, "--log-format", "json", "--helper", h, "--", "sh", main)
				helper := readJob(t, filepath.Join(dir, "helper.job"))
				r.waitLog("main in the foreground")
				touch(t, filepath.Join(dir, "go"))
				mainJob := readJob(t, filepath.Join(dir, "main.job"))
				if got := r.wait(long); got != 3 {
					t.Errorf("exit code %d, want main's 3", got)
				}
				if helper.tpgid == helper.pgid || mainJob.tpgid == mainJob.pgid {
					t.Errorf("helper %+v or main %+v made the foreground job though stdin is not a terminal", helper, mainJob)
				}
				if !ctty && (helper.tpgid != -1 || mainJob.tpgid != -1) {
					t.Errorf("helper %+v or main %+v has a terminal", helper, mainJob)
				}
				r.mustNotLog("cannot give main the terminal")
				r.mustLog("helper succeeded")
			})
		})
	}
}

// TestTerminalTakenBack: a job-control shell (set -m, stty tostop) runs
// mainstay as a foreground job. After the helper and after main ended,
// mainstay takes the terminal back, as a shell does: otherwise its next log
// line, written from the background, would stop it with SIGTTOU (the shell
// then reports 150, "Stopped (tty output)"). Not PID 1 by nature: the
// shell is mainstay's parent in the same session.
func TestTerminalTakenBack(t *testing.T) {
	dir := t.TempDir()
	term, slave := openTerminal(t)
	sh := `set -m; stty tostop; "$0" --helper 'sh -c "echo helped"' -- sh -c 'sleep 0.1; exit 3'; echo "mainstay exited $?"`
	cmd := exec.Command("bash", "-c", sh, bin)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { killTree(cmd.Process.Pid); <-done })
	waitFor(t, long, "the shell's report of mainstay's exit", func() bool {
		return bytes.Contains(term.output(), []byte("mainstay exited "))
	})
	out := term.output()
	if !bytes.Contains(out, []byte("mainstay exited 3")) {
		t.Errorf("terminal shows:\n%s\nwant mainstay exited 3 (main's code)", out)
	}
	if !bytes.Contains(out, []byte(`msg="main exited"`)) {
		t.Errorf("terminal shows:\n%s\nwant mainstay's line on main's exit", out)
	}
}
