package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	mainproc "github.com/mainstay-dev/mainstay/main"
)

var (
	// ErrInUse: another mainstay holds the socket's lock (Listen).
	ErrInUse = errors.New("another mainstay is listening there")
	// ErrNoServer: nothing answers at the path (Dial): no socket file,
	// or one that nobody serves.
	ErrNoServer = errors.New("no mainstay answers")
)

// Handler carries out the requests; the lifecycle implements it. Names
// given to its methods are at least one, non-empty and distinct. Its
// errors go to the client: an [*Error] as it is (use [ErrStarting],
// [ErrStopping], [ErrMain], [Refused], [UnknownName]), any other error as
// [KindFailed] with its message. Every method may be called from several
// goroutines at once. The ctx of a call is done once the server closes
// ([Server.Close] waits for the call to return); a client that goes away
// does not cancel its request.
type Handler interface {
	// Status returns every child, the phase and whether ready, with each
	// child's Command; it must not block. The server picks the names
	// asked for, computes the uptimes and hides Command from callers who
	// may not change things.
	Status() Status
	// Restart stops each named child and starts it again, and returns
	// when it is ready again or failed to be.
	Restart(ctx context.Context, names []string) error
	// Stop stops each named child and keeps it down.
	Stop(ctx context.Context, names []string) error
	// Start starts each named child that is stopped or gave up, and
	// returns when it is ready or failed to be.
	Start(ctx context.Context, names []string) error
	// Signal sends sig to each named child (its group, or main as
	// --signal-group says); it must not block.
	Signal(sig syscall.Signal, names []string) error
}

// Caller is who sent a request: the peer's credentials, as of connect().
type Caller struct {
	UID uint32
	PID int32
}

func (c Caller) String() string { return fmt.Sprintf("uid %d pid %d", c.UID, c.PID) }

type callerKey struct{}

// CallerOf is the caller of the request whose context ctx is, for a
// handler's log lines.
func CallerOf(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// overflowUID is the kernel's default overflow uid: what a peer whose uid
// has no mapping in mainstay's user namespace appears as.
const overflowUID = 65534

// mayChange reports whether a peer of uid peer may restart, stop, start
// and signal, for a server running as own: root and the server's own uid
// may; the overflow uid never (it stands for any unmapped user), even when
// the server itself runs as it. overflow is the system's overflow uid
// (/proc/sys/kernel/overflowuid), usually overflowUID too.
func mayChange(peer, own, overflow uint32) bool {
	if peer == overflowUID || peer == overflow {
		return false
	}
	return peer == 0 || peer == own
}

// systemOverflowUID reads /proc/sys/kernel/overflowuid, overflowUID when
// it cannot.
func systemOverflowUID() uint32 {
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err != nil {
		return overflowUID
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
	if err != nil {
		return overflowUID
	}
	return uint32(n)
}

// limits are the server's bounds; Listen uses the documented constants,
// tests shorter times.
type limits struct {
	maxRequest   int
	readTimeout  time.Duration
	writeTimeout time.Duration
	maxConns     int
	maxChanging  int
}

var defaultLimits = limits{
	maxRequest:   MaxRequest,
	readTimeout:  ReadTimeout,
	writeTimeout: ReadTimeout,
	maxConns:     MaxConns,
	maxChanging:  MaxChanging,
}

// Server serves the control socket: one goroutine blocked in accept, one
// per open connection, nothing else (no timer runs while no connection
// is open).
type Server struct {
	h        Handler
	log      *slog.Logger
	sock     *socketFile
	l        *net.UnixListener
	lim      limits
	uid      uint32 // the server's own (effective) uid
	overflow uint32

	ctx    context.Context // cancelled by Close: handlers' calls end
	cancel context.CancelFunc

	conns    chan struct{} // a slot per open connection
	changing chan struct{} // a slot per changing request in the handler

	mu     sync.Mutex
	open   map[*net.UnixConn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// Listen serves h on a unix stream socket at path (absolute, never
// abstract). It creates path's directory when missing (0755 less the
// umask), takes an flock on PATH.lock beside the socket (left in place
// when the server closes; it is empty), and replaces a socket file left
// at path by a server that died (the free lock proves it stale). It
// fails, and changes nothing, when another server holds the lock
// ([ErrInUse]), when anything but a socket is at path (a regular file, a
// symlink, a directory: never removed; the error names it), or when the
// directory or the socket cannot be made.
//
// Listen decides nothing about the failure: the caller does. At the
// default path mainstay logs one line and runs without a socket; at an
// explicit one it is a usage error (exit 2, nothing started).
//
// log gets one line per changing request (caller_uid, caller_pid, the
// result), debug lines for the rest.
func Listen(path string, h Handler, log *slog.Logger) (*Server, error) {
	return listen(path, h, log, defaultLimits)
}

func listen(path string, h Handler, log *slog.Logger, lim limits) (*Server, error) {
	sock, err := openSocketFile(path)
	if err != nil {
		return nil, err
	}
	l, err := sock.listen()
	if err != nil {
		sock.close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		h: h, log: log, sock: sock, l: l, lim: lim,
		uid: uint32(os.Geteuid()), overflow: systemOverflowUID(),
		ctx: ctx, cancel: cancel,
		conns:    make(chan struct{}, lim.maxConns),
		changing: make(chan struct{}, lim.maxChanging),
		open:     map[*net.UnixConn]struct{}{},
	}
	s.wg.Add(1)
	go s.serve()
	return s, nil
}

// Path is the socket's path.
func (s *Server) Path() string { return s.sock.path }

// Close stops accepting, cancels the context of the handler's calls,
// closes every connection, waits for their goroutines (so for the
// handler's calls to return), removes the socket file and releases the
// lock. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	open := make([]*net.UnixConn, 0, len(s.open))
	for c := range s.open {
		open = append(open, c)
	}
	s.mu.Unlock()
	s.l.Close()
	s.cancel()
	for _, c := range open {
		c.Close()
	}
	s.wg.Wait()
	s.sock.close()
	return nil
}

// serve accepts connections until Close.
func (s *Server) serve() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		c, err := s.l.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or memory: accept fails at once until
			// that passes; back off as net/http does rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("control socket: accept failed", "err", err, "delay", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		select {
		case s.conns <- struct{}{}:
		default:
			s.log.Debug("control socket: connection refused", "err", "busy")
			s.answer(c, failure(KindBusy, "busy: %d connections are open already; try again", s.lim.maxConns))
			c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.open[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// peer is who is at the other end of a connection: SO_PEERCRED, the
// credentials of the process that connected, as of connect().
type peer struct {
	uid uint32
	pid int32
}

func peerOf(c *net.UnixConn) (peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return peer{}, err
	}
	var cred *unix.Ucred
	var credErr error
	err = raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = credErr
	}
	if err != nil {
		return peer{}, err
	}
	return peer{uid: cred.Uid, pid: cred.Pid}, nil
}

// serveConn answers the requests of one connection, one after the other,
// until the client closes it, a request is bad, or none comes in time.
func (s *Server) serveConn(c *net.UnixConn) {
	defer func() {
		s.mu.Lock()
		delete(s.open, c)
		s.mu.Unlock()
		c.Close()
		<-s.conns
		s.wg.Done()
	}()
	p, err := peerOf(c)
	if err != nil {
		s.log.Debug("control socket: no peer credentials", "err", err)
		return
	}
	r := bufio.NewReaderSize(c, s.lim.maxRequest)
	for {
		c.SetReadDeadline(time.Now().Add(s.lim.readTimeout))
		line, err := r.ReadSlice('\n')
		last := false
		switch {
		case err == nil:
		case errors.Is(err, bufio.ErrBufferFull):
			s.answer(c, failure(KindBadRequest, "bad request: longer than %d bytes", s.lim.maxRequest))
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.answer(c, failure(KindBadRequest, "bad request: no complete request line within %s", s.lim.readTimeout))
			return
		case errors.Is(err, io.EOF) && len(line) > 0:
			last = true // a last line without its newline: answered all the same
		default:
			return // the client is done (or Close closed the connection)
		}
		resp, keep := s.do(p, line)
		if err := s.answer(c, resp); err != nil || !keep || last {
			return
		}
	}
}

// answer writes resp as one line, giving up after the write timeout (a
// client that does not read).
func (s *Server) answer(c *net.UnixConn, resp *Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(failure(KindFailed, "internal error: %v", err))
	}
	c.SetWriteDeadline(time.Now().Add(s.lim.writeTimeout))
	_, err = c.Write(append(b, '\n'))
	return err
}

// do answers one request line; keep is false when the connection must be
// closed after the answer (a bad request).
func (s *Server) do(p peer, line []byte) (resp *Response, keep bool) {
	req, bad := parseRequest(line)
	if bad != nil {
		s.log.Debug("control request", "caller_uid", p.uid, "caller_pid", p.pid, "result", bad.Error.Kind, "err", bad.Error.Message)
		return bad, false
	}
	switch req.Op {
	case OpStatus:
		return s.status(p, req.Names), true
	case OpHealth:
		st := s.h.Status()
		level := req.Level
		if level == "" {
			level = LevelReady
		}
		return &Response{V: Version, OK: true, Health: &Health{Level: level, Healthy: healthy(level, st), Phase: st.Phase}}, true
	}
	attrs := []any{"op", req.Op, "names", req.Names}
	if req.Op == OpSignal {
		attrs = append(attrs, "signal", req.Signal)
	}
	attrs = append(attrs, "caller_uid", p.uid, "caller_pid", p.pid)
	if !mayChange(p.uid, s.uid, s.overflow) {
		s.log.Warn("control request", append(attrs, "result", KindDenied)...)
		return failure(KindDenied, "permission denied: uid %d may ask for status and health only; uid 0 and mainstay's own uid (%d) may %s", p.uid, s.uid, req.Op), true
	}
	select {
	case s.changing <- struct{}{}:
		defer func() { <-s.changing }()
	default:
		s.log.Warn("control request", append(attrs, "result", KindBusy)...)
		return failure(KindBusy, "busy: %d restart, stop, start or signal requests are under way; try again", s.lim.maxChanging), true
	}
	var err error
	ctx := context.WithValue(s.ctx, callerKey{}, Caller{UID: p.uid, PID: p.pid})
	switch req.Op {
	case OpRestart:
		err = s.h.Restart(ctx, req.Names)
	case OpStop:
		err = s.h.Stop(ctx, req.Names)
	case OpStart:
		err = s.h.Start(ctx, req.Names)
	case OpSignal:
		sig, _ := mainproc.ParseSignal(req.Signal) // checked by parseRequest
		err = s.h.Signal(sig, req.Names)
	}
	if err != nil {
		e := asError(err)
		s.log.Info("control request", append(attrs, "result", e.Kind, "err", e.Message)...)
		return &Response{V: Version, Error: e}, true
	}
	s.log.Info("control request", append(attrs, "result", "done")...)
	return &Response{V: Version, OK: true}, true
}

// asError is the handler's err as it travels.
func asError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: KindFailed, Message: err.Error()}
}

// status answers status: the children named (every one when none is),
// their uptimes, Command only for a caller who may change things.
func (s *Server) status(p peer, names []string) *Response {
	st := s.h.Status()
	all := st.Children
	if len(names) > 0 {
		byName := make(map[string]Child, len(all))
		for _, c := range all {
			byName[c.Name] = c
		}
		picked := make([]Child, 0, len(names))
		for _, n := range names {
			c, ok := byName[n]
			if !ok {
				known := make([]string, len(all))
				for i, c := range all {
					known[i] = c.Name
				}
				return &Response{V: Version, Error: UnknownName(n, known)}
			}
			picked = append(picked, c)
		}
		all = picked
	}
	full := mayChange(p.uid, s.uid, s.overflow)
	now := time.Now()
	st.Children = make([]Child, len(all))
	for i, c := range all {
		if !full {
			c.Command = nil
		}
		c.Uptime = nil
		if c.PID != 0 && c.Started != nil {
			up := int64(max(now.Sub(*c.Started), 0) / time.Second)
			c.Uptime = &up
		}
		st.Children[i] = c
	}
	s.log.Debug("control request", "op", OpStatus, "names", names, "caller_uid", p.uid, "caller_pid", p.pid)
	return &Response{V: Version, OK: true, Status: &st}
}

// parseRequest reads one request line and checks it: version, operation,
// the fields that operation takes and no other, names non-empty and
// distinct (duplicates dropped), the signal known. A bad line gives the
// answer to send (and close).
func parseRequest(line []byte) (*Request, *Response) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, failure(KindBadRequest, "bad request: not a JSON request object: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, failure(KindBadRequest, "bad request: more than one JSON value on the line")
	}
	if req.V == 0 {
		return nil, failure(KindBadRequest, `bad request: no "v" (the protocol version, %d)`, Version)
	}
	if req.V != Version {
		return nil, failure(KindVersion, "protocol version %d is not spoken here (this mainstay speaks %d)", req.V, Version)
	}
	names := req.Names[:0:0]
	seen := map[string]bool{}
	for _, n := range req.Names {
		if n == "" {
			return nil, failure(KindBadRequest, "bad request: an empty name")
		}
		if !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	req.Names = names
	var bad string
	switch req.Op {
	case OpStatus:
		if req.Signal != "" || req.Level != "" {
			bad = "status takes names only"
		}
	case OpHealth:
		switch {
		case len(req.Names) > 0 || req.Signal != "":
			bad = "health takes a level only"
		case req.Level != "" && req.Level != LevelAlive && req.Level != LevelReady:
			bad = fmt.Sprintf("unknown health level %q (alive or ready)", req.Level)
		}
	case OpRestart, OpStop, OpStart, OpSignal:
		switch {
		case len(req.Names) == 0:
			bad = req.Op + " needs at least one name"
		case req.Level != "":
			bad = req.Op + " takes no level"
		case req.Op != OpSignal && req.Signal != "":
			bad = req.Op + " takes no signal"
		case req.Op == OpSignal && req.Signal == "":
			bad = "signal needs a signal"
		case req.Op == OpSignal:
			if _, err := mainproc.ParseSignal(req.Signal); err != nil {
				bad = err.Error()
			}
		}
	case "":
		bad = `no "op"`
	default:
		bad = fmt.Sprintf("unknown op %q (status, health, restart, stop, start, signal)", req.Op)
	}
	if bad != "" {
		return nil, failure(KindBadRequest, "bad request: %s", bad)
	}
	return &req, nil
}
