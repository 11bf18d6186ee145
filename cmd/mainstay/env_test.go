package main

import (
	"testing"
	"time"
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
	cli, err := parse([]string{"--", "true"}, "test")
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
	cli, err := parse([]string{"--", "true"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(cli.Ready) != 2 || cli.Ready[0].String() != "file:/" || cli.Ready[1].String() != "tcp:5432" {
		t.Errorf("probes %v", cli.Ready)
	}
}
