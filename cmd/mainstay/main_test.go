package main

import (
	"os"
	"strings"
	"testing"
)

// runChildEnv, when set to "1", makes the test binary behave as mainstay:
// TestMain calls run with the command-line arguments and exits with its
// code. run starts the process-wide reaper on valid input, so every test
// that gets past parsing runs in such a child process (see startMainstay).
const runChildEnv = "GO_TEST_MAINSTAY_RUN_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(runChildEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// mainstay reads MAINSTAY_* variables: the tests must not see any from
	// the environment they were started in.
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, "MAINSTAY_") {
			os.Unsetenv(name)
		}
	}
	os.Exit(m.Run())
}
