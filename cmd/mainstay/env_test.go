package main

import (
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/main/plan"
)

// TestEmptyEnvIsUnset: an empty MAINSTAY_* variable, as compose produces
// from "${X:-}", counts as unset instead of failing to parse — except
// MAINSTAY_HELPER_PREFIX, where empty means "no prefix".
func TestEmptyEnvIsUnset(t *testing.T) {
	t.Setenv("MAINSTAY_GRACE", "")
	t.Setenv("MAINSTAY_READY_TIMEOUT", "")
	t.Setenv("MAINSTAY_SIGNAL_GROUP", "")
	t.Setenv("MAINSTAY_HELPER", "")
	t.Setenv("MAINSTAY_HELPER_PREFIX", "")
	cli, err := parseCLI([]string{"--", "true"}, "test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cli.Grace != 8*time.Second || cli.ReadyTimeout != 60*time.Second || cli.SignalGroup || len(cli.Helper) != 0 {
		t.Errorf("grace %s, ready timeout %s, signal group %v, helpers %d: want the defaults", cli.Grace, cli.ReadyTimeout, cli.SignalGroup, len(cli.Helper))
	}
	if cli.HelperPrefix != "" {
		t.Errorf("helper prefix %q, want empty", cli.HelperPrefix)
	}
}

// TestListLinesTrimmed: each line of a list value is trimmed, so a YAML
// block's indentation or a trailing space does not end up in a probe.
func TestListLinesTrimmed(t *testing.T) {
	t.Setenv("MAINSTAY_READY", "  file:/  \n\n   tcp:5432\t\n")
	cli, err := parseCLI([]string{"--", "true"}, "test", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(cli.Ready) != 2 || cli.Ready[0].String() != "file:/" || cli.Ready[1].String() != "tcp:5432" {
		t.Errorf("probes %v", cli.Ready)
	}
}

// TestNearestVariable: a misspelt MAINSTAY_ name gets the nearest known
// one, and a name that is nothing like any gets none.
func TestNearestVariable(t *testing.T) {
	known := []string{"MAINSTAY_READY", "MAINSTAY_READY_TIMEOUT", "MAINSTAY_GRACE", "MAINSTAY_HELPER", "MAINSTAY_LOG_LEVEL"}
	for name, want := range map[string]string{
		"MAINSTAY_READY_TIMOUT": "MAINSTAY_READY_TIMEOUT",
		"MAINSTAY_GRCAE":        "MAINSTAY_GRACE",
		"MAINSTAY_HELPERS":      "MAINSTAY_HELPER",
		"MAINSTAY_LOGLEVEL":     "MAINSTAY_LOG_LEVEL",
		"MAINSTAY_READ":         "MAINSTAY_READY",
		"MAINSTAY_FOO":          "",
		"MAINSTAY_X":            "",
		"MAINSTAY_":             "",
	} {
		if got := nearest(name, known); got != want {
			t.Errorf("nearest(%s) = %q, want %q", name, got, want)
		}
	}
}

// TestChildEnvironment: the one environment of main, helpers and exec
// probes has no MAINSTAY_* variable, and keeps every other one.
func TestChildEnvironment(t *testing.T) {
	t.Setenv("MAINSTAY_GRACE", "3s")
	t.Setenv("MAINSTAY_HELPER", "echo hi")
	t.Setenv("MAINSTAYX", "kept")
	t.Setenv("NOT_MAINSTAY_GRACE", "kept")
	for _, args := range [][]string{{"--", "true"}, {"--user", "nobody", "--", "true"}} {
		cli := mustParse(t, args...)
		p := cli.plan()
		env := plan.ChildEnv(p.Env, p.User)
		for _, kv := range env {
			if strings.HasPrefix(kv, "MAINSTAY_") {
				t.Errorf("%q: child gets %s", args, kv)
			}
		}
		for _, want := range []string{"MAINSTAYX=kept", "NOT_MAINSTAY_GRACE=kept"} {
			if !slices.Contains(env, want) {
				t.Errorf("%q: child lacks %s", args, want)
			}
		}
	}
}
