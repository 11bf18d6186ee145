package lifecycle

import (
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/main/plan"
)

// The delays between tries: --restart-delay doubling up to
// --restart-max-delay, and backoff/v4 applies the ±20 % after the cap, so
// capped delays range over 0.8–1.2 × the cap.
func TestRestartBackOff(t *testing.T) {
	l := &life{plan: &plan.Plan{Restart: plan.Backoff{Delay: 100 * time.Millisecond, MaxDelay: 30 * time.Second}}}
	for range 20 { // the jitter is random: look at several schedules
		b := l.restartBackOff()
		b.Reset()
		base := 100 * time.Millisecond
		for i := range 12 {
			d := b.NextBackOff()
			lo, hi := time.Duration(float64(base)*0.8), time.Duration(float64(base)*1.2)
			if d < lo || d > hi {
				t.Fatalf("delay %d = %s, want %s–%s", i+1, d, lo, hi)
			}
			base = min(2*base, 30*time.Second)
		}
	}
}
