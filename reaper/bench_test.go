package reaper

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// BenchmarkOutput measures what the prefix costs a child that writes a lot
// of short lines. A real child (yes, through head -c) writes 16 MiB of
// lines of the given length into a pipe that cat drains to /dev/null:
// unprefixed, the pipe is the child's stdout itself, as a sidecar's is
// with an empty --helper-prefix; prefixed, the child writes into the
// reaper's pipe and the reaper writes each line, after "[bench] ", into
// the pipe to cat, as it does for a sidecar's or helper's output. Each
// iteration runs both; the time is from the start of the child until cat
// has read the last byte. Run it with
//
//	go test -run '^$' -bench BenchmarkOutput -benchtime 5x ./reaper/
//
// It reports, side by side, the child's output in MB/s (of its own bytes,
// without the prefix) and in lines/s, unprefixed (raw-) and prefixed
// (prefixed-), and how many times longer the prefixed run took (x).
func BenchmarkOutput(b *testing.B) {
	const size = 16 << 20
	for _, n := range []int{2, 100} {
		b.Run(fmt.Sprintf("line=%dB", n), func(b *testing.B) {
			var raw, pre time.Duration
			for b.Loop() {
				raw += drained(b, n, size, "")
				pre += drained(b, n, size, "[bench] ")
			}
			runs := float64(b.N)
			lines := float64(size / n)
			b.ReportMetric(runs*size/1e6/raw.Seconds(), "raw-MB/s")
			b.ReportMetric(runs*size/1e6/pre.Seconds(), "prefixed-MB/s")
			b.ReportMetric(runs*lines/raw.Seconds(), "raw-lines/s")
			b.ReportMetric(runs*lines/pre.Seconds(), "prefixed-lines/s")
			b.ReportMetric(pre.Seconds()/raw.Seconds(), "x")
		})
	}
}

// drained runs a child writing size bytes of lines n bytes long into a pipe
// drained by cat, with prefix, and returns how long until cat had it all.
func drained(b *testing.B, n, size int, prefix string) time.Duration {
	b.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	cat, err := shared.Start(Spec{Argv: []string{"cat"}, Stdin: pr})
	pr.Close()
	if err != nil {
		b.Fatal(err)
	}
	// Blocking writes, as to mainstay's own stdout (os.Stdout is not in
	// Go's poller).
	pw.Fd()
	line := strings.Repeat("y", n-1)
	begin := time.Now()
	s := Spec{Argv: []string{"sh", "-c", `yes "$0" | head -c "$1"`, line, fmt.Sprint(size)}, Stdout: pw, Prefix: prefix}
	p, err := shared.Start(s)
	if err != nil {
		b.Fatal(err)
	}
	if exit := p.Wait(); !exit.Success() {
		b.Fatalf("child: %s", exit)
	}
	pw.Close()
	cat.Wait()
	return time.Since(begin)
}
