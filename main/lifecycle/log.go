package lifecycle

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
)

// Phases of mainstay's life, carried by every log line as "phase".
const (
	phaseStart     = "start"     // parsing, starting main
	phaseSidecars  = "sidecars"  // starting the sidecars with start=before
	phaseWaitFor   = "wait-for"  // waiting for the --wait-for dependencies
	phaseBefore    = "before"    // running the --before tasks
	phaseReadiness = "readiness" // waiting for the probes
	phaseHelpers   = "helpers"   // running the helpers
	phaseRun       = "run"       // main in the foreground
	phaseStop      = "stop"      // main exited or is being stopped; sweeping
)

// newLogger writes mainstay's own lines to w: text lines prefixed with
// "mainstay: ", or JSON objects with "logger":"mainstay". Every line
// carries the current phase, which setPhase changes.
func newLogger(w io.Writer, format, level string) (*slog.Logger, func(string)) {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(level)) // kong's enum already checked it
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	if format == "json" {
		// Durations as "1.5s", as the flags take them, not nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		h = slog.NewJSONHandler(w, opts).WithAttrs([]slog.Attr{slog.String("logger", "mainstay")})
	} else {
		h = slog.NewTextHandler(prefixWriter{w}, opts)
	}
	ph := &phaseHandler{inner: h, phase: new(atomic.Pointer[string])}
	setPhase := func(p string) { ph.phase.Store(&p) }
	setPhase(phaseStart)
	return slog.New(ph), setPhase
}

// phaseHandler adds the current phase to each record.
type phaseHandler struct {
	inner slog.Handler
	phase *atomic.Pointer[string]
}

func (h *phaseHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *phaseHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(slog.String("phase", *h.phase.Load()))
	return h.inner.Handle(ctx, r)
}

func (h *phaseHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &phaseHandler{inner: h.inner.WithAttrs(as), phase: h.phase}
}

func (h *phaseHandler) WithGroup(name string) slog.Handler {
	return &phaseHandler{inner: h.inner.WithGroup(name), phase: h.phase}
}

// prefixWriter prefixes each record; slog writes one record per Write.
type prefixWriter struct{ w io.Writer }

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := p.w.Write(append([]byte("mainstay: "), b...)); err != nil {
		return 0, err
	}
	return len(b), nil
}
