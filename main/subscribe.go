package mainproc

import (
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Signals is mainstay's one subscription to the signals it forwards. It is
// made before the first child starts, so a signal that arrives before main
// exists (while dependencies are awaited or tasks run before main) is seen
// too; [Start] then hands it to main's signal loop.
type Signals struct {
	c chan os.Signal
}

// Subscribe subscribes to every signal mainstay forwards (see forwarded).
// The subscription is never dropped: a Go PID 1 without a handler exits 2
// on SIGTERM.
func Subscribe() *Signals {
	s := &Signals{c: make(chan os.Signal, 64)}
	signal.Notify(s.c, forwarded...)
	return s
}

// Watch handles the signals while there is no main yet. The first SIGTERM,
// SIGINT or SIGQUIT calls abort with that signal, from Watch's goroutine;
// every other signal has nobody to go to and is dropped, logged at debug.
// The returned stop ends the watch and returns once its goroutine no
// longer reads the subscription, so main's loop can take it over with no
// signal lost.
func (s *Signals) Watch(abort func(syscall.Signal), log *slog.Logger) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		aborted := false
		for {
			select {
			case <-quit:
				return
			case v := <-s.c:
				sig := v.(syscall.Signal)
				switch {
				case asksToStop(sig) && !aborted:
					aborted = true
					log.Info("signal received before main started: aborting", "signal", SignalName(sig))
					abort(sig)
				default:
					log.Debug("signal received before main started: no main to forward it to", "signal", SignalName(sig))
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(quit) })
		wg.Wait()
	}
}
