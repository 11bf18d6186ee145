package control

import (
	"errors"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mainstay-dev/mainstay/main/registry"
)

// Every request, one after the other on one connection, reaches the
// handler with its names and answers as the handler said.
func TestRoundTrip(t *testing.T) {
	h := newFake()
	srv, logs := serve(t, h, defaultLimits)
	c := dial(t, srv.Path())
	ctx := testContext(t)

	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != PhaseReady || !st.Ready || len(st.Children) != 3 {
		t.Fatalf("status: %+v", st)
	}
	main := st.Children[0]
	if main.Name != "main" || main.PID != 7 || !reflect.DeepEqual(main.Command, []string{"postgres", "-c", "password=secret"}) {
		t.Errorf("main as root sees it: %+v", main)
	}
	if main.Uptime == nil || *main.Uptime < int64(time.Since(started)/time.Second)-1 {
		t.Errorf("main's uptime: %v, want about %v", main.Uptime, time.Since(started))
	}
	if st.Children[2].Uptime != nil {
		t.Errorf("a finished helper has an uptime: %v", *st.Children[2].Uptime)
	}

	st, err = c.Status(ctx, "cache", "main", "cache")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Children) != 2 || st.Children[0].Name != "cache" || st.Children[1].Name != "main" {
		t.Errorf("status cache main cache: %+v", st.Children)
	}

	_, err = c.Status(ctx, "nginx")
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindUnknown || e.Message != `no child named "nginx"; the children are: main, cache, helper migrate` {
		t.Errorf("status nginx: %v", err)
	}
	if ExitCode(err) != ExitFailed {
		t.Errorf("exit code of an unknown name: %d", ExitCode(err))
	}

	for _, level := range []Level{LevelReady, LevelAlive, ""} {
		hl, err := c.Health(ctx, level)
		if err != nil {
			t.Fatal(err)
		}
		want := level
		if want == "" {
			want = LevelReady
		}
		if hl.Level != want || !hl.Healthy || hl.Phase != PhaseReady {
			t.Errorf("health %q: %+v", level, hl)
		}
	}

	if err := c.Restart(ctx, "cache"); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(ctx, "cache", "web"); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, "cache"); err != nil {
		t.Fatal(err)
	}
	if err := c.Signal(ctx, syscall.SIGHUP, "main", "cache"); err != nil {
		t.Fatal(err)
	}
	want := []string{"restart cache", "stop cache web", "start cache", "signal 1 main cache"}
	if got := h.Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("handler calls: %q, want %q", got, want)
	}
	// Each changing request is logged with who asked and the result.
	for _, op := range []string{"restart", "stop", "start", "signal"} {
		if !strings.Contains(logs.String(), "msg=\"control request\" op="+op) {
			t.Errorf("no log line for %s:\n%s", op, logs)
		}
	}
	if !strings.Contains(logs.String(), "caller_uid=0 caller_pid=") || !strings.Contains(logs.String(), "result=done") {
		t.Errorf("log lines without caller or result:\n%s", logs)
	}
}

// The handler's errors travel with their kind; any other error is
// "failed". All exit 1.
func TestHandlerErrors(t *testing.T) {
	h := newFake()
	srv, logs := serve(t, h, defaultLimits)
	c := dial(t, srv.Path())
	ctx := testContext(t)
	for _, tc := range []struct {
		err  error
		kind string
		msg  string
	}{
		{ErrStarting, KindRefused, ErrStarting.Message},
		{ErrStopping, KindRefused, "stopping"},
		{ErrMain, KindRefused, "main's lifetime is the container's: use docker restart"},
		{UnknownName("web", []string{"main", "cache"}), KindUnknown, `no child named "web"; the children are: main, cache`},
		{errors.New("cache: not ready after 10s"), KindFailed, "cache: not ready after 10s"},
	} {
		h.mu.Lock()
		h.err = tc.err
		h.mu.Unlock()
		err := c.Restart(ctx, "cache")
		var e *Error
		if !errors.As(err, &e) || e.Kind != tc.kind || e.Message != tc.msg {
			t.Errorf("handler's %v: client got %#v", tc.err, err)
		}
		if ExitCode(err) != ExitFailed {
			t.Errorf("handler's %v: exit code %d", tc.err, ExitCode(err))
		}
		if !strings.Contains(logs.String(), "result="+tc.kind) {
			t.Errorf("handler's %v: not logged as %s", tc.err, tc.kind)
		}
	}
}

// Health's levels: ready is Status.Ready; alive fails only once stopping.
func TestHealthy(t *testing.T) {
	for _, tc := range []struct {
		phase                string
		ready                bool
		wantAlive, wantReady bool
	}{
		{PhaseStarting, false, true, false},
		{PhaseReady, true, true, true},
		{PhaseRestarting, false, true, false},
		{PhaseStopping, false, false, false},
	} {
		st := Status{Phase: tc.phase, Ready: tc.ready}
		if got := healthy(LevelAlive, st); got != tc.wantAlive {
			t.Errorf("%s: alive %v", tc.phase, got)
		}
		if got := healthy(LevelReady, st); got != tc.wantReady {
			t.Errorf("%s: ready %v", tc.phase, got)
		}
	}
}

// What a request may not be; each answer names the fault.
func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		line, kind, msg string
	}{
		{`hello`, KindBadRequest, "not a JSON request object"},
		{`null`, KindBadRequest, `no "v"`},
		{`{}`, KindBadRequest, `no "v"`},
		{`[1]`, KindBadRequest, "not a JSON request object"},
		{`{"v":2,"op":"status"}`, KindVersion, "protocol version 2"},
		{`{"v":"1","op":"status"}`, KindBadRequest, "not a JSON request object"},
		{`{"v":1}`, KindBadRequest, `no "op"`},
		{`{"v":1,"op":"reload"}`, KindBadRequest, `unknown op "reload"`},
		{`{"v":1,"op":"status","name":"x"}`, KindBadRequest, `unknown field "name"`},
		{`{"v":1,"op":"status"} {"v":1,"op":"status"}`, KindBadRequest, "more than one JSON value"},
		{`{"v":1,"op":"status","level":"ready"}`, KindBadRequest, "status takes names only"},
		{`{"v":1,"op":"health","level":"live"}`, KindBadRequest, `unknown health level "live"`},
		{`{"v":1,"op":"health","names":["x"]}`, KindBadRequest, "health takes a level only"},
		{`{"v":1,"op":"restart"}`, KindBadRequest, "restart needs at least one name"},
		{`{"v":1,"op":"stop","names":[""]}`, KindBadRequest, "an empty name"},
		{`{"v":1,"op":"start","names":["x"],"signal":"HUP"}`, KindBadRequest, "start takes no signal"},
		{`{"v":1,"op":"signal","names":["x"]}`, KindBadRequest, "signal needs a signal"},
		{`{"v":1,"op":"signal","names":["x"],"signal":"WINK"}`, KindBadRequest, `unknown signal "WINK"`},
		{`{"v":1,"op":"signal","names":["x"],"signal":"0"}`, KindBadRequest, "signal number 0"},
	} {
		req, bad := parseRequest([]byte(tc.line + "\n"))
		if bad == nil {
			t.Errorf("%s: accepted as %+v", tc.line, req)
			continue
		}
		if bad.OK || bad.Error.Kind != tc.kind || !strings.Contains(bad.Error.Message, tc.msg) {
			t.Errorf("%s: answer %+v, want %s with %q", tc.line, bad.Error, tc.kind, tc.msg)
		}
	}
	req, bad := parseRequest([]byte(`{"v":1,"op":"signal","signal":"sighup","names":["a","b","a"]}`))
	if bad != nil || req.Signal != "sighup" || !reflect.DeepEqual(req.Names, []string{"a", "b"}) {
		t.Errorf("a good signal request: %+v %+v", req, bad)
	}
}

// Garbage, an oversized request and a silent client each get an error
// answer and a closed connection, while another client is served
// meanwhile.
func TestBadClients(t *testing.T) {
	lim := defaultLimits
	lim.readTimeout = 300 * time.Millisecond
	srv, _ := serve(t, newFake(), lim)
	ctx := testContext(t)

	silent := dialRaw(t, srv.Path())
	garbage := dialRaw(t, srv.Path())
	big := dialRaw(t, srv.Path())
	partial := dialRaw(t, srv.Path())
	garbage.send("\x00\xffhello\n")
	big.send(strings.Repeat("x", MaxRequest+100))
	partial.send(`{"v":1,"op":"sta`)

	good := dial(t, srv.Path())
	if _, err := good.Status(ctx); err != nil {
		t.Fatalf("a good client beside bad ones: %v", err)
	}

	for _, tc := range []struct {
		name string
		c    *raw
		msg  string
	}{
		{"garbage", garbage, "not a JSON request object"},
		{"oversized", big, "longer than 4096 bytes"},
		{"silent", silent, "no complete request line within 300ms"},
		{"partial", partial, "no complete request line within 300ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.t = t
			resp := tc.c.answer()
			if resp.OK || resp.Error == nil || resp.Error.Kind != KindBadRequest || !strings.Contains(resp.Error.Message, tc.msg) {
				t.Errorf("answer %+v, want %q", resp.Error, tc.msg)
			}
			tc.c.closed()
		})
	}
	// The good client's connection idled out meanwhile: a new one.
	if _, err := dial(t, srv.Path()).Status(ctx); err != nil {
		t.Fatalf("a good client after the bad ones: %v", err)
	}
}

// A last request without its newline, the client half-closing, is
// answered (socat, nc -U -N).
func TestLastLineWithoutNewline(t *testing.T) {
	srv, _ := serve(t, newFake(), defaultLimits)
	c := dialRaw(t, srv.Path())
	c.send(`{"v":1,"op":"health","level":"alive"}`)
	c.conn.(interface{ CloseWrite() error }).CloseWrite()
	resp := c.answer()
	if !resp.OK || resp.Health == nil || !resp.Health.Healthy {
		t.Errorf("answer %+v", resp)
	}
	c.closed()
}

// A request refused as bad closes the connection; a denied or refused
// one does not.
func TestKeepAfterRefusal(t *testing.T) {
	h := newFake()
	h.err = ErrStarting
	srv, _ := serve(t, h, defaultLimits)
	c := dialRaw(t, srv.Path())
	c.send(`{"v":1,"op":"restart","names":["cache"]}` + "\n")
	if resp := c.answer(); resp.OK || resp.Error.Kind != KindRefused {
		t.Errorf("answer %+v", resp)
	}
	c.send(`{"v":1,"op":"status"}` + "\n")
	if resp := c.answer(); !resp.OK {
		t.Errorf("status after a refusal: %+v", resp.Error)
	}
	c.send(`{"v":1,"op":"nope"}` + "\n")
	c.answer()
	c.closed()
}

// At most MaxConns connections are served; the next gets "busy" and is
// closed; once one closes, a new one is served again.
func TestConnectionCap(t *testing.T) {
	srv, _ := serve(t, newFake(), defaultLimits)
	ctx := testContext(t)
	var open []*Client
	for range MaxConns {
		c := dial(t, srv.Path())
		if _, err := c.Status(ctx); err != nil { // served: it holds a slot
			t.Fatal(err)
		}
		open = append(open, c)
	}
	extra := dialRaw(t, srv.Path())
	resp := extra.answer()
	if resp.OK || resp.Error.Kind != KindBusy || !strings.Contains(resp.Error.Message, "8 connections") {
		t.Errorf("connection %d: %+v", MaxConns+1, resp.Error)
	}
	extra.closed()

	open[0].Close()
	// The slot is free once the server has seen the close: poll.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := Dial(srv.Path())
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Status(ctx)
		c.Close()
		var e *Error
		if err == nil {
			break
		}
		if !errors.As(err, &e) || e.Kind != KindBusy || time.Now().After(deadline) {
			t.Fatalf("after a close: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, c := range open[1:] {
		if _, err := c.Status(ctx); err != nil {
			t.Errorf("an open connection after the cap: %v", err)
		}
	}
}

// At most MaxChanging changing requests are in the handler at once; the
// next is "busy", status is still answered.
func TestChangingCap(t *testing.T) {
	h := newFake()
	h.entered = make(chan struct{})
	h.release = make(chan struct{})
	srv, _ := serve(t, h, defaultLimits)
	ctx := testContext(t)

	errs := make(chan error, MaxChanging)
	for range MaxChanging {
		c := dial(t, srv.Path())
		go func() { errs <- c.Restart(ctx, "cache") }()
		<-h.entered
	}
	err := dial(t, srv.Path()).Restart(ctx, "cache")
	var e *Error
	if !errors.As(err, &e) || e.Kind != KindBusy {
		t.Errorf("restart %d: %v", MaxChanging+1, err)
	}
	if _, err := dial(t, srv.Path()).Status(ctx); err != nil {
		t.Errorf("status beside %d restarts: %v", MaxChanging, err)
	}
	close(h.release)
	for range MaxChanging {
		if err := <-errs; err != nil {
			t.Errorf("a released restart: %v", err)
		}
	}

}

// Close while a restart waits in the handler: the handler's context ends,
// Close waits for it, the client gets no answer.
func TestCloseCancelsHandler(t *testing.T) {
	h := newFake()
	h.entered = make(chan struct{})
	h.release = make(chan struct{}) // never closed
	srv, _ := serve(t, h, defaultLimits)
	c := dial(t, srv.Path())
	errs := make(chan error, 1)
	go func() { errs <- c.Restart(testContext(t), "cache") }()
	<-h.entered
	srv.Close()
	if err := <-errs; err == nil || ExitCode(err) != ExitFailed {
		t.Errorf("a restart cut by Close: %v", err)
	}
}

// mayChange is the access rule.
func TestMayChange(t *testing.T) {
	for _, tc := range []struct {
		peer, own, overflow uint32
		want                bool
	}{
		{0, 0, 65534, true},
		{1000, 0, 65534, false},
		{0, 1000, 65534, true},
		{1000, 1000, 65534, true},
		{1001, 1000, 65534, false},
		{65534, 0, 65534, false},
		{65534, 65534, 65534, false}, // even when the server runs as nobody
		{65534, 65534, 60000, false}, // 65534 whatever the sysctl says
		{60000, 60000, 60000, false}, // the system's overflow uid
		{0, 65534, 65534, true},
	} {
		if got := mayChange(tc.peer, tc.own, tc.overflow); got != tc.want {
			t.Errorf("peer %d, server %d, overflow %d: %v, want %v", tc.peer, tc.own, tc.overflow, got, tc.want)
		}
	}
}

func TestChildFrom(t *testing.T) {
	next := started.Add(time.Minute)
	c := ChildFrom(registry.Info{Name: "cache", Kind: registry.Sidecar, State: registry.Backoff, Started: started,
		Restarts: 2, LastExit: &registry.Exit{Code: 1, Status: "exit status 1", At: started}, NextRestart: next})
	if c.Name != "cache" || c.Kind != "sidecar" || c.State != "backoff" || c.PID != 0 || *c.Started != started ||
		c.Restarts != 2 || *c.LastExit != (Exit{1, "exit status 1", started}) || *c.NextRestart != next || c.Command != nil {
		t.Errorf("%+v", c)
	}
	c = ChildFrom(registry.Info{Name: "x", Kind: registry.Helper, State: registry.Pending, NextRestart: next})
	if c.Started != nil || c.LastExit != nil || c.NextRestart != nil || c.NextDue != nil {
		t.Errorf("pending: %+v", c)
	}
	c = ChildFrom(registry.Info{Name: "tidy", Kind: registry.Cron, State: registry.Scheduled, NextDue: next})
	if c.Kind != "cron" || c.State != "scheduled" || c.NextDue == nil || *c.NextDue != next || c.NextRestart != nil {
		t.Errorf("cron entry: %+v", c)
	}
}
