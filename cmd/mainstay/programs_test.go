package main

import (
	"strings"
	"testing"

	"github.com/mainstay-dev/mainstay/main/lifecycle"
)

// TestCheckProgramsSources: the error names the flag or variable a program
// came from, with the line given, and the first failing program wins.
func TestCheckProgramsSources(t *testing.T) {
	missing := "mainstay-no-such-program"
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"main after --", []string{"--", missing, "x"}, nil, "main command: " + missing},
		{"--main", []string{"--main", missing + " x"}, nil, `--main "` + missing + ` x": `},
		{"MAINSTAY_MAIN", nil, map[string]string{"MAINSTAY_MAIN": missing}, `MAINSTAY_MAIN "` + missing + `"`},
		{"--helper", []string{"--helper", "true", "--helper", missing + " up", "--", "true"}, nil, `--helper "` + missing + ` up"`},
		{"MAINSTAY_HELPER", []string{"--", "true"}, map[string]string{"MAINSTAY_HELPER": "true\n" + missing}, `MAINSTAY_HELPER "` + missing + `"`},
		{"--ready exec", []string{"--ready", "exec:" + missing + " -q", "--", "true"}, nil, `--ready "exec:` + missing + ` -q"`},
		{"MAINSTAY_READY exec", []string{"--", "true"}, map[string]string{"MAINSTAY_READY": "tcp:1\nexec:" + missing}, `MAINSTAY_READY "exec:` + missing + `"`},
		{"--before", []string{"--before", "true", "--before", missing + " up", "--", "true"}, nil, `--before "` + missing + ` up"`},
		{"--wait-for exec", []string{"--wait-for", "exec:" + missing, "--", "true"}, nil, `--wait-for "exec:` + missing + `"`},
		{"--sidecar", []string{"--sidecar", "name=x -- " + missing + " -f", "--", "true"}, nil, `--sidecar "name=x -- ` + missing + ` -f"`},
		{"MAINSTAY_SIDECAR", []string{"--", "true"}, map[string]string{"MAINSTAY_SIDECAR": missing}, `MAINSTAY_SIDECAR "` + missing + `"`},
		{"--sidecar ready=exec", []string{"--sidecar", "ready=exec:" + missing + " -- sleep 1", "--", "true"}, nil, `--sidecar "ready=exec:` + missing + ` -- sleep 1: ready=exec:` + missing + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cli := mustParse(t, tc.args...)
			code, err := checkPrograms(cli)
			if code != 127 || err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("code %d, error %v; want 127 and one line starting %q", code, err, tc.want)
			}
		})
	}
	if code, err := checkPrograms(mustParse(t, "--helper", "true", "--ready", "exec:sh -c true", "--", "sh")); code != 0 || err != nil {
		t.Errorf("all found: code %d, %v", code, err)
	}
}

// checkPrograms checks cli's programs as mainstay does before starting
// any: the exit code it would give, and the error.
func checkPrograms(cli *CLI) (int, error) {
	err := cli.plan().CheckPrograms()
	if err == nil {
		return 0, nil
	}
	return lifecycle.Outcome{Err: err}.Code(), err
}
