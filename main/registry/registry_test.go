package registry_test

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/main/registry"
	"github.com/mainstay-dev/mainstay/reaper"
)

// TestChildLife follows one sidecar through a start, a crash, a backoff
// and a restart, as its owner reports them.
func TestChildLife(t *testing.T) {
	r := registry.New()
	c := r.Add("cache", registry.Sidecar)
	if got := c.Info(); got.State != registry.Pending || got.PID != 0 || got.LastExit != nil {
		t.Fatalf("new entry %+v, want pending with no PID or exit", got)
	}
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c.Started(42, t0, registry.Starting)
	c.Set(registry.Running)
	c.Exited(reaper.KilledBy(syscall.SIGKILL), t0.Add(time.Minute), registry.Exited)
	c.Backoff(t0.Add(61*time.Second), 1)
	got := c.Info()
	if got.State != registry.Backoff || got.PID != 0 || got.Restarts != 1 || !got.NextRestart.Equal(t0.Add(61*time.Second)) {
		t.Errorf("after a crash %+v, want backoff, no PID, 1 restart, next restart set", got)
	}
	if e := got.LastExit; e == nil || e.Code != 137 || e.Status != "killed by SIGKILL" || !e.At.Equal(t0.Add(time.Minute)) {
		t.Errorf("last exit %+v, want 137 killed by SIGKILL at the exit's time", e)
	}
	c.Started(43, t0.Add(62*time.Second), registry.Running)
	if got := c.Info(); got.PID != 43 || got.State != registry.Running || !got.NextRestart.IsZero() || got.LastExit == nil {
		t.Errorf("restarted %+v, want PID 43 running, no next restart, the last exit kept", got)
	}
}

// TestRegistryNames: a name is entered once (a restarted child keeps its
// entry), List keeps the order entered and gives copies.
func TestRegistryNames(t *testing.T) {
	r := registry.New()
	m := r.Add("main", registry.Main)
	r.Add("helper migrate", registry.Helper)
	if again := r.Add("main", registry.Main); again != m {
		t.Error("Add of a name already there made a second entry")
	}
	if r.Get("nope") != nil || r.Get("main") != m {
		t.Error("Get does not find the entries by name")
	}
	m.Exited(reaper.ExitedWith(3), time.Now(), registry.Exited)
	list := r.List()
	if len(list) != 2 || list[0].Name != "main" || list[1].Name != "helper migrate" || list[1].Kind != registry.Helper {
		t.Fatalf("List = %+v", list)
	}
	list[0].LastExit.Code = 99
	if m.Info().LastExit.Code != 3 {
		t.Error("List handed out the entry's own last exit")
	}
}

// TestNilChild: code that runs an unregistered child reports to nil.
func TestNilChild(t *testing.T) {
	var c *registry.Child
	c.Started(1, time.Now(), registry.Running)
	c.Exited(reaper.ExitedWith(0), time.Now(), registry.Exited)
	c.Set(registry.Stopped)
	c.Backoff(time.Now(), 1)
}

// TestConcurrent: owners write while readers list (run with -race).
func TestConcurrent(t *testing.T) {
	r := registry.New()
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := r.Add(name, registry.Sidecar)
			for i := range 200 {
				c.Started(i+1, time.Now(), registry.Running)
				c.Exited(reaper.ExitedWith(1), time.Now(), registry.Exited)
			}
		}()
	}
	for range 200 {
		r.List()
	}
	wg.Wait()
	if n := len(r.List()); n != 3 {
		t.Errorf("%d entries, want 3", n)
	}
}

// TestCronEntry follows a cron entry: scheduled with its next due time,
// a run, back to scheduled with the run's exit, and stopped.
func TestCronEntry(t *testing.T) {
	r := registry.New()
	c := r.Add("tidy", registry.Cron)
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	c.Due(t0)
	c.Set(registry.Scheduled)
	c.Started(7, t0, registry.Running)
	c.Due(t0.Add(5 * time.Minute))
	c.Exited(reaper.ExitedWith(1), t0.Add(time.Second), registry.Scheduled)
	got := c.Info()
	if got.Kind != registry.Cron || got.State != registry.Scheduled || got.PID != 0 || !got.NextDue.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("after a run %+v, want scheduled, no PID, next due 5m later", got)
	}
	if got.LastExit == nil || got.LastExit.Code != 1 {
		t.Errorf("last exit %+v, want 1", got.LastExit)
	}
	c.Due(time.Time{})
	c.Set(registry.Stopped)
	if got := c.Info(); got.State != registry.Stopped || !got.NextDue.IsZero() {
		t.Errorf("stopped %+v, want no next due", got)
	}
	var none *registry.Child
	none.Due(t0) // records nothing
}
