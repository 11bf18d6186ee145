// Command benchready measures how soon mainstay notices that main is
// ready, what waiting costs, and what mainstay costs once main is ready.
// It prints medians and 95th percentiles next to the hand-written
// baselines users have today (a bash "until ...; do sleep 1; done" loop and
// Debian's wait-for-it), all measured in the same run on the same machine.
//
// Run it with e2e/bench.sh, which builds mainstay and this program.
//
//	benchready -mainstay BIN [-runs 20] [-delays 100ms,1s,5s] [-kinds tcp,unix,...] [-baselines=false]
//
// It also serves as its own test server and time stamper:
//
//	benchready serve KIND ADDR DELAY STAMP  become ready after DELAY, write the time to STAMP
//	benchready stamp FILE                   write the time to FILE (the helper)
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			serve(os.Args[2], os.Args[3], os.Args[4], os.Args[5])
			return
		case "stamp":
			stamp(os.Args[2])
			return
		}
	}
	bin := flag.String("mainstay", "", "mainstay binary")
	runs := flag.Int("runs", 20, "runs per case")
	delays := flag.String("delays", "100ms,1s,5s", "how long the server takes to become ready")
	waitFor := flag.Duration("wait", 10*time.Second, "how long to measure CPU while waiting, and while idle")
	jitter := flag.Duration("jitter", 0, "add a uniformly random 0..jitter to each run's delay, so the ready moment falls anywhere in a polling loop's cycle")
	only := flag.Bool("lag-only", false, "measure detection lag only, not CPU")
	kindList := flag.String("kinds", strings.Join(kinds, ","), "probe kinds to measure")
	baselines := flag.Bool("baselines", true, "also measure the bash loop and wait-for-it")
	flag.Parse()
	kinds = strings.Split(*kindList, ",")
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "benchready: -mainstay BIN is required")
		os.Exit(2)
	}
	self, _ := os.Executable()
	b := &bench{mainstay: *bin, self: self}
	fmt.Printf("# benchready: %d runs per case; mainstay at its default settings; delay jitter %s\n", *runs, *jitter)
	fmt.Printf("# machine: %s, %d CPUs\n\n", kernel(), numCPU())
	fmt.Printf("%-28s %8s %10s %10s %10s\n", "detection lag", "delay", "median", "p95", "max")
	for _, ds := range strings.Split(*delays, ",") {
		d, err := time.ParseDuration(ds)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchready:", err)
			os.Exit(2)
		}
		for _, c := range b.cases(*baselines) {
			var lags []time.Duration
			for i := 0; i < *runs; i++ {
				lags = append(lags, c.run(d+time.Duration(rand.Int64N(int64(*jitter)+1))))
			}
			sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
			fmt.Printf("%-28s %8s %10s %10s %10s\n", c.name, d, ms(pct(lags, 50)), ms(pct(lags, 95)), ms(lags[len(lags)-1]))
		}
	}
	if *only {
		return
	}
	fmt.Printf("\n%-28s %14s\n", "CPU while waiting", "% of one core")
	for _, k := range kinds {
		if k == "notify" {
			continue // nothing is polled
		}
		fmt.Printf("%-28s %14.3f\n", "mainstay "+k, b.waitingCPU(k, *waitFor))
	}
	cpu, wakeups := b.idle(*waitFor)
	fmt.Printf("\nonce main is ready, over %s: mainstay used %.3f %% of one core and woke %.2f times a second\n", *waitFor, cpu, wakeups)
}

var kinds = []string{"tcp", "unix", "http", "file", "log", "exec", "notify"}

type bench struct{ mainstay, self string }

type lagCase struct {
	name string
	run  func(delay time.Duration) time.Duration
}

func (b *bench) cases(baselines bool) []lagCase {
	var cs []lagCase
	for _, k := range kinds {
		cs = append(cs, lagCase{"mainstay " + k + ":", func(d time.Duration) time.Duration { return b.mainstayLag(k, d) }})
	}
	if !baselines {
		return cs
	}
	cs = append(cs,
		lagCase{"bash until/sleep 1 (tcp)", func(d time.Duration) time.Duration { return b.bashLag(d) }},
		lagCase{"wait-for-it (tcp)", func(d time.Duration) time.Duration { return b.waitForItLag(d) }})
	return cs
}

// target describes the server for one run: where it becomes ready and the
// --ready spec that notices it.
func target(kind, dir string, port int) (addr, spec string) {
	switch kind {
	case "tcp":
		addr = fmt.Sprintf("127.0.0.1:%d", port)
		return addr, "tcp:" + addr
	case "http":
		addr = fmt.Sprintf("127.0.0.1:%d", port)
		return addr, "http://" + addr + "/"
	case "unix":
		addr = filepath.Join(dir, "sock")
		return addr, "unix:" + addr
	case "file":
		addr = filepath.Join(dir, "ready")
		return addr, "file:" + addr
	case "exec":
		addr = filepath.Join(dir, "ready")
		return addr, "exec:test -e " + addr
	case "log":
		return "-", "log:^server is ready$"
	case "notify":
		return "-", "notify"
	}
	panic(kind)
}

func (b *bench) mainstayLag(kind string, delay time.Duration) time.Duration {
	dir, _ := os.MkdirTemp("", "benchready-")
	defer os.RemoveAll(dir)
	addr, spec := target(kind, dir, freePort())
	readyTS, helperTS := filepath.Join(dir, "ready.ts"), filepath.Join(dir, "helper.ts")
	cmd := exec.Command(b.mainstay, "--log-level", "error", "--ready", spec,
		"--helper", b.self+" stamp "+helperTS,
		"--", b.self, "serve", kind, addr, delay.String(), readyTS)
	return b.measure(cmd, readyTS, helperTS)
}

func (b *bench) bashLag(delay time.Duration) time.Duration {
	dir, _ := os.MkdirTemp("", "benchready-")
	defer os.RemoveAll(dir)
	port := freePort()
	readyTS, helperTS := filepath.Join(dir, "ready.ts"), filepath.Join(dir, "helper.ts")
	script := fmt.Sprintf(`%[1]s serve tcp 127.0.0.1:%[2]d %[3]s %[4]s &
until (exec 3<>/dev/tcp/127.0.0.1/%[2]d) 2>/dev/null; do sleep 1; done
%[1]s stamp %[5]s
wait`, b.self, port, delay, readyTS, helperTS)
	return b.measure(exec.Command("bash", "-c", script), readyTS, helperTS)
}

func (b *bench) waitForItLag(delay time.Duration) time.Duration {
	dir, _ := os.MkdirTemp("", "benchready-")
	defer os.RemoveAll(dir)
	port := freePort()
	readyTS, helperTS := filepath.Join(dir, "ready.ts"), filepath.Join(dir, "helper.ts")
	script := fmt.Sprintf(`%[1]s serve tcp 127.0.0.1:%[2]d %[3]s %[4]s &
wait-for-it -q -t 0 127.0.0.1:%[2]d -- %[1]s stamp %[5]s
wait`, b.self, port, delay, readyTS, helperTS)
	return b.measure(exec.Command("bash", "-c", script), readyTS, helperTS)
}

// measure runs cmd in its own process group until the helper stamped,
// then kills the group and returns helper stamp - ready stamp.
func (b *bench) measure(cmd *exec.Cmd, readyTS, helperTS string) time.Duration {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	deadline := time.Now().Add(time.Minute)
	var h int64
	for h == 0 {
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			fail(fmt.Errorf("%v: no helper stamp after a minute", cmd.Args))
		}
		time.Sleep(time.Millisecond)
		h = readStamp(helperTS)
	}
	r := readStamp(readyTS)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	cmd.Wait()
	if r == 0 {
		fail(fmt.Errorf("%v: helper ran before the server was ready", cmd.Args))
	}
	return time.Duration(h - r)
}

// waitingCPU runs mainstay with a probe of kind that never passes, for d,
// and returns the CPU time it used (its probes' included) as a percentage
// of one core.
func (b *bench) waitingCPU(kind string, d time.Duration) float64 {
	dir, _ := os.MkdirTemp("", "benchready-")
	defer os.RemoveAll(dir)
	_, spec := target(kind, dir, freePort()) // nothing will ever listen, appear or print
	cmd := exec.Command(b.mainstay, "--log-level", "error", "--ready", spec,
		"--ready-timeout", d.String(), "--", "sleep", "1000")
	start := time.Now()
	cmd.Run() // exits 124 after d
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return 100 * cpu.Seconds() / time.Since(start).Seconds()
}

// idle measures mainstay once main is in the foreground and nothing
// happens: CPU and context switches (wake-ups) of all its threads over d.
func (b *bench) idle(d time.Duration) (cpuPercent, wakeupsPerSec float64) {
	dir, _ := os.MkdirTemp("", "benchready-")
	defer os.RemoveAll(dir)
	ready := filepath.Join(dir, "ready")
	cmd := exec.Command(b.mainstay, "--log-level", "error", "--ready-file", ready,
		"--ready", "file:/", "--helper", "true", "--", "sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fail(err)
	}
	defer func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() }()
	for !exists(ready) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Second) // let start-up's last timers and goroutines finish
	pid := cmd.Process.Pid
	cpu0, sw0 := usage(pid)
	time.Sleep(d)
	cpu1, sw1 := usage(pid)
	return 100 * (cpu1 - cpu0).Seconds() / d.Seconds(), float64(sw1-sw0) / d.Seconds()
}

// usage is a process's CPU time and the context switches of all its threads.
func usage(pid int) (time.Duration, int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		fail(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.Atoi(f[11])
	st, _ := strconv.Atoi(f[12])
	cpu := time.Duration(ut+st) * time.Second / 100 // USER_HZ
	sw := 0
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		s, _ := os.ReadFile(t)
		for _, line := range strings.Split(string(s), "\n") {
			if strings.HasPrefix(line, "voluntary_ctxt_switches:") || strings.HasPrefix(line, "nonvoluntary_ctxt_switches:") {
				n, _ := strconv.Atoi(strings.TrimSpace(line[strings.IndexByte(line, ':')+1:]))
				sw += n
			}
		}
	}
	return cpu, sw
}

// serve sleeps delay, becomes ready in the way of kind, stamps the time
// and serves until killed.
func serve(kind, addr, delay, stampFile string) {
	d, _ := time.ParseDuration(delay)
	time.Sleep(d)
	switch kind {
	case "tcp", "http", "unix":
		network := "tcp"
		if kind == "unix" {
			network = "unix"
		}
		l, err := net.Listen(network, addr)
		if err != nil {
			fail(err)
		}
		stamp(stampFile)
		if kind == "http" {
			http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		}
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	case "file", "exec":
		stamp(stampFile)
		if err := os.WriteFile(addr, nil, 0o644); err != nil {
			fail(err)
		}
	case "log":
		stamp(stampFile)
		fmt.Println("server is ready")
	case "notify":
		// What sd_notify(3) does: one datagram to $NOTIFY_SOCKET.
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fail(err)
		}
		stamp(stampFile)
		if err := unix.Sendto(fd, []byte("READY=1"), 0, &unix.SockaddrUnix{Name: os.Getenv("NOTIFY_SOCKET")}); err != nil {
			fail(err)
		}
		unix.Close(fd)
	}
	for {
		time.Sleep(time.Hour) // until killed
	}
}

func stamp(file string) {
	now := time.Now().UnixNano()
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(now, 10)), 0o644); err != nil {
		fail(err)
	}
	if err := os.Rename(tmp, file); err != nil {
		fail(err)
	}
}

func readStamp(file string) int64 {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(string(b), 10, 64)
	return n
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	if i > 0 {
		i--
	}
	return sorted[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return "Linux " + strings.TrimSpace(string(b))
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(b), "processor\t:")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "benchready:", err)
	os.Exit(1)
}
