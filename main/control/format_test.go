package control

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestWriteTable(t *testing.T) {
	now := started.Add(3*time.Hour + 5*time.Minute + 7*time.Second)
	up := int64(now.Sub(started) / time.Second)
	next := now.Add(1500 * time.Millisecond)
	exitAt := now.Add(-42 * time.Second)
	st := &Status{Phase: PhaseRestarting, Children: []Child{
		{Name: "main", Kind: "main", State: "running", PID: 7, Started: &started, Uptime: &up},
		{Name: "cache", Kind: "sidecar", State: "backoff", Started: &started, Restarts: 2,
			LastExit: &Exit{Code: 1, Status: "exit status 1", At: exitAt}, NextRestart: &next},
		{Name: "helper migrate", Kind: "helper", State: "exited", Started: &started,
			LastExit: &Exit{Code: 0, Status: "exit status 0", At: started}},
		{Name: "web", Kind: "sidecar", State: "pending"},
		{Name: "tidy", Kind: "cron", State: "scheduled", Started: &started,
			LastExit: &Exit{Code: 0, Status: "exit status 0", At: exitAt}, NextDue: &next},
		{Name: "report", Kind: "cron", State: "scheduled", NextDue: &next},
	}}
	var b bytes.Buffer
	if err := WriteTable(&b, st, now); err != nil {
		t.Fatal(err)
	}
	want := `phase: restarting, ready: no
NAME            KIND     STATE      PID  UPTIME  RESTARTS  LAST EXIT
main            main     running    7    3h05m   0         -
cache           sidecar  backoff    -    -       2         exit status 1, 42s ago; restart in 1s
helper migrate  helper   exited     -    -       0         exit status 0, 3h05m ago
web             sidecar  pending    -    -       0         -
tidy            cron     scheduled  -    -       0         exit status 0, 42s ago; next run in 1s
report          cron     scheduled  -    -       0         next run in 1s
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestShort(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0:                                     "0s",
		-time.Second:                          "0s",
		250 * time.Millisecond:                "250ms",
		42 * time.Second:                      "42s",
		5*time.Minute + 3*time.Second:         "5m03s",
		3*time.Hour + 5*time.Minute:           "3h05m",
		50*time.Hour + 59*time.Minute:         "2d02h",
		400*24*time.Hour + 23*time.Hour:       "400d23h",
		59*time.Second + 999*time.Millisecond: "59s",
	} {
		if got := short(d); got != want {
			t.Errorf("short(%v) = %q, want %q", d, got, want)
		}
	}
}

// status --json: every key present, null where it does not apply.
func TestWriteJSON(t *testing.T) {
	up := int64(12)
	st := &Status{Phase: PhaseReady, Ready: true, Children: []Child{
		{Name: "main", Kind: "main", State: "running", PID: 7, Started: &started, Uptime: &up, Command: []string{"sleep", "1"}},
		{Name: "web", Kind: "sidecar", State: "pending"},
	}}
	var b bytes.Buffer
	if err := WriteJSON(&b, st); err != nil {
		t.Fatal(err)
	}
	want := `{
  "phase": "ready",
  "ready": true,
  "children": [
    {
      "name": "main",
      "kind": "main",
      "state": "running",
      "pid": 7,
      "started": "2025-03-01T12:00:00Z",
      "uptime_seconds": 12,
      "restarts": 0,
      "last_exit": null,
      "next_restart": null,
      "next_due": null,
      "command": [
        "sleep",
        "1"
      ]
    },
    {
      "name": "web",
      "kind": "sidecar",
      "state": "pending",
      "pid": 0,
      "started": null,
      "uptime_seconds": null,
      "restarts": 0,
      "last_exit": null,
      "next_restart": null,
      "next_due": null,
      "command": null
    }
  ]
}
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// The round trip of one status request, on an open connection and on a
// new connection each time (dial, request, answer, close).
func BenchmarkStatus(b *testing.B) {
	srv, err := listen(benchPath(b), newFake(), discard, defaultLimits)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	b.Run("open-connection", func(b *testing.B) {
		c, err := Dial(srv.Path())
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		for b.Loop() {
			if _, err := c.Status(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new-connection", func(b *testing.B) {
		for b.Loop() {
			c, err := Dial(srv.Path())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Status(ctx); err != nil {
				b.Fatal(err)
			}
			c.Close()
		}
	})
}

func benchPath(b *testing.B) string {
	return b.TempDir() + "/control.sock"
}
