//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/main/control"
)

// The control socket's benchmarks (docs/performance.md, "The control
// socket"): the round trip of `mainstay status` against a real mainstay,
// and what an idle mainstay's socket costs.
//
//	go test -tags e2e ./e2e/ -run '^$' -bench 'BenchmarkControl' -benchtime 200x
//
// BenchmarkControlIdle measures 10 s whatever -benchtime says.

// benchMainstay starts the binary under test as a plain child with args
// (its log discarded) and stops it when the benchmark ends.
func benchMainstay(b *testing.B, args ...string) *exec.Cmd {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "MAINSTAY_CONTROL_SOCKET=")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd
}

// percentiles reports the median and the 90th percentile of ds, in ms.
func percentiles(b *testing.B, ds []time.Duration) {
	if len(ds) == 0 {
		return
	}
	slices.Sort(ds)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(ds[len(ds)/2]), "median-ms")
	b.ReportMetric(ms(ds[(len(ds)-1)*9/10]), "p90-ms")
}

// BenchmarkControlStatus: the round trip of a status request to a real
// mainstay (one sidecar, main sleeping), three ways:
//
//   - client-process: `mainstay status`, the real binary as the client,
//     from fork to exit (the process's start, the dial, the request, the
//     table printed);
//   - process-only: `mainstay --version`, the same process without a
//     request, for what starting the binary costs;
//   - new-connection: dial, one status request, close, in this process;
//   - open-connection: one status request on a connection kept open.
//
// main/control's BenchmarkStatus measures the last two against a fake
// handler, without a lifecycle behind it.
func BenchmarkControlStatus(b *testing.B) {
	dir := b.TempDir()
	sock := filepath.Join(dir, "control.sock")
	benchMainstay(b, "--log-level", "error", "--control-socket", sock,
		"--sidecar", "name=cache -- sleep 1000", "--", "sleep", "1000")
	deadline := time.Now().Add(short)
	for {
		c, err := control.Dial(sock)
		if err == nil {
			st, err := c.Status(context.Background())
			c.Close()
			if err == nil && st.Phase == control.PhaseReady {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("mainstay not ready at %s: %v", sock, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx := context.Background()
	b.Run("client-process", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			t0 := time.Now()
			out, err := exec.Command(bin, "status", "--control-socket", sock).CombinedOutput()
			ds = append(ds, time.Since(t0))
			if err != nil || !strings.HasPrefix(string(out), "phase: ready") {
				b.Fatalf("mainstay status: %v: %s", err, out)
			}
		}
		percentiles(b, ds)
	})
	// The same process with no request: what starting the binary costs.
	b.Run("process-only", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
				b.Fatalf("mainstay --version: %v: %s", err, out)
			}
			ds = append(ds, time.Since(t0))
		}
		percentiles(b, ds)
	})
	b.Run("new-connection", func(b *testing.B) {
		var ds []time.Duration
		for b.Loop() {
			t0 := time.Now()
			c, err := control.Dial(sock)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Status(ctx); err != nil {
				b.Fatal(err)
			}
			c.Close()
			ds = append(ds, time.Since(t0))
		}
		percentiles(b, ds)
	})
	b.Run("open-connection", func(b *testing.B) {
		c, err := control.Dial(sock)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		var ds []time.Duration
		for b.Loop() {
			t0 := time.Now()
			if _, err := c.Status(ctx); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, time.Since(t0))
		}
		percentiles(b, ds)
	})
}

// BenchmarkControlIdle: the context switches (wake-ups) and CPU of all the
// threads of an idle mainstay over 10 s, one second after main is ready,
// with its control socket listening and with --control-socket off, both
// measured at the same time; and the same once more after a status request
// (the served connection closed). Each figure is per second.
func BenchmarkControlIdle(b *testing.B) {
	const window = 10 * time.Second
	type subject struct {
		name string
		args []string
		cmd  *exec.Cmd
		sock string
	}
	dir := b.TempDir()
	subjects := []*subject{
		{name: "socket", sock: filepath.Join(dir, "control.sock")},
		{name: "socket-after-status", sock: filepath.Join(dir, "control2.sock")},
		{name: "off", sock: "off"},
	}
	// Measured once, whatever b.N is (the framework calls the function
	// with b.N 1 and then with -benchtime's count); every call reports it.
	if idleFigures == nil {
		idleFigures = map[string]float64{}
		for _, s := range subjects {
			ready := filepath.Join(dir, s.name+".ready")
			os.Remove(ready)
			s.cmd = benchMainstay(b, "--log-level", "error", "--control-socket", s.sock, "--ready-file", ready,
				"--ready", "file:/", "--", "sleep", "1000")
			waitForB(b, func() bool { _, err := os.Stat(ready); return err == nil })
		}
		if out, err := exec.Command(bin, "status", "--control-socket", subjects[1].sock).CombinedOutput(); err != nil {
			b.Fatalf("status: %v: %s", err, out)
		}
		time.Sleep(time.Second) // start-up's last timers and goroutines
		type sample struct {
			cpu time.Duration
			sw  int
		}
		before := make([]sample, len(subjects))
		for i, s := range subjects {
			before[i].cpu, before[i].sw = procUsage(b, s.cmd.Process.Pid)
		}
		time.Sleep(window)
		for i, s := range subjects {
			cpu, sw := procUsage(b, s.cmd.Process.Pid)
			idleFigures["wakeups/s-"+s.name] = float64(sw-before[i].sw) / window.Seconds()
			idleFigures["cpu%-"+s.name] = 100 * (cpu - before[i].cpu).Seconds() / window.Seconds()
			syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			s.cmd.Wait()
		}
	}
	for unit, v := range idleFigures {
		b.ReportMetric(v, unit)
	}
}

var idleFigures map[string]float64

func waitForB(b *testing.B, cond func() bool) {
	b.Helper()
	deadline := time.Now().Add(short)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// procUsage is a process's CPU time and the context switches of all its
// threads (as e2e/benchready measures mainstay once ready).
func procUsage(b *testing.B, pid int) (time.Duration, int) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	cpu := time.Duration(ut+st) * time.Second / 100 // USER_HZ
	sw := 0
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		body, _ := os.ReadFile(t)
		for _, line := range strings.Split(string(body), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && (k == "voluntary_ctxt_switches" || k == "nonvoluntary_ctxt_switches") {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				sw += n
			}
		}
	}
	return cpu, sw
}
