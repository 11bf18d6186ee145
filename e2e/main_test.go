//go:build e2e

// Package e2e drives the built mainstay binary against real programs, as
// PID 1 of a fresh PID namespace and as a plain child (a child subreaper).
// See README.md in this directory for how to run it.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var binFlag = flag.String("mainstay.bin", "", "path of a mainstay binary to test; by default TestMain builds one")

var (
	// bin is the mainstay binary under test.
	bin string
	// unshareErr is why "unshare --pid" does not work here (not root), or nil.
	unshareErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if *binFlag != "" {
		abs, err := filepath.Abs(*binFlag)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: -mainstay.bin:", err)
			return 2
		}
		bin = abs
	} else {
		dir, err := os.MkdirTemp("", "mainstay-e2e-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			return 2
		}
		defer os.RemoveAll(dir)
		bin = filepath.Join(dir, "mainstay")
		build := exec.Command("go", "build", "-o", bin, "github.com/mainstay-dev/mainstay/cmd/mainstay")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: building mainstay: %v\n%s", err, out)
			return 2
		}
	}
	if _, err := os.Stat(bin); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 2
	}
	if out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "true").CombinedOutput(); err != nil {
		unshareErr = fmt.Errorf("unshare --pid --fork --mount-proc: %v: %s", err, out)
	}
	code := m.Run()
	dockerTeardown()
	return code
}
