package readiness_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/mainstay-dev/mainstay/readiness"
	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

func TestHTTPCheck(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/missing", http.StatusFound) // not followed: the 302 itself shows the server answers
	})
	mux.HandleFunc("/starting", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	})
	// What the request carries, as a server sees it: one line per field.
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		u, pw, _ := r.BasicAuth()
		if r.Method != http.MethodGet || r.Host != r.URL.Query().Get("host") || u != r.URL.Query().Get("user") || pw != "p w" || !r.Close {
			http.Error(w, fmt.Sprintf("%s host=%q user=%q password=%q close=%v", r.Method, r.Host, u, pw, r.Close), http.StatusBadRequest)
		}
	})
	plain := httptest.NewServer(mux)
	defer plain.Close()
	tlsSrv := httptest.NewUnstartedServer(mux)
	// The probe without +insecure rejects the certificate by design; the
	// server need not log each refused handshake.
	tlsSrv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	tlsHost := tlsSrv.Listener.Addr().String()
	plainHost := plain.Listener.Addr().String()

	tests := []struct {
		name, spec, wantErr string
	}{
		{"2xx passes", plain.URL + "/ok", ""},
		{"3xx passes without following", plain.URL + "/redirect", ""},
		{"404 fails", plain.URL + "/missing", "HTTP 404 Not Found"},
		{"503 fails", plain.URL + "/starting", "HTTP 503 Service Unavailable"},
		{"closed port fails", "http://" + closedPort(t) + "/", "connection refused"},
		{"https with an unknown certificate fails", "https://" + tlsHost + "/ok", "certificate"},
		{"https+insecure accepts any certificate", "https+insecure://" + tlsHost + "/ok", ""},
		{"https+insecure still checks the status", "https+insecure://" + tlsHost + "/starting", "HTTP 503"},
		{"request carries host, query, credentials", "http://ann:p%20w@" + plainHost + "/echo?user=ann&host=" + plainHost, ""},
		{"request checked by the echo", "http://bob:p%20w@" + plainHost + "/echo?user=ann&host=" + plainHost, "HTTP 400"},
		{"HTTP/1.0 answer passes", "http://" + rawServer(t, "HTTP/1.0 204 No Content\r\n\r\n") + "/", ""},
		{"status without reason passes", "http://" + rawServer(t, "HTTP/1.1 200\r\n\r\n") + "/", ""},
		{"not HTTP fails", "http://" + rawServer(t, "+PONG\r\n") + "/", `not an HTTP answer: "+PONG"`},
		{"closed without answer fails", "http://" + rawServer(t, "") + "/", "no HTTP answer: EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, mustParse(t, tt.spec).Check(context.Background(), runner), tt.wantErr)
		})
	}
}

// TestHTTPCheckTimeout: a server that accepts and never answers fails the
// attempt when its context ends, and says so.
func TestHTTPCheckTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, silent, until the test ends
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	checkErr(t, mustParse(t, "http://"+l.Addr().String()+"/").Check(ctx, runner), "context deadline exceeded")
}

// rawServer answers every connection with answer, once the request's
// blank line is read, and closes it. It returns its HOST:PORT.
func rawServer(t *testing.T, answer string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r := textproto.NewReader(bufio.NewReader(c))
			for line, err := r.ReadLine(); err == nil; line, err = r.ReadLine() {
				if line == "" {
					io.WriteString(c, answer)
					break
				}
			}
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestUnixCheck(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "app.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, spec, wantErr string
	}{
		{"listening socket passes", "unix:" + sock, ""},
		{"url form passes", "unix://" + sock, ""},
		{"absent socket fails", "unix:" + filepath.Join(dir, "absent.sock"), "no such file or directory"},
		{"not a socket fails", "unix:" + regular, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, mustParse(t, tt.spec).Check(context.Background(), runner), tt.wantErr)
		})
	}
}

func TestLogCheck(t *testing.T) {
	tests := []struct {
		name   string
		expr   string
		writes []struct {
			stream int
			s      string
		} // stream 0 is stdout, 1 stderr
		pass bool
	}{
		{"whole line matches", "^ready$", []struct {
			stream int
			s      string
		}{{0, "starting\nready\n"}}, true},
		{"line split across writes", "^ready$", []struct {
			stream int
			s      string
		}{{0, "rea"}, {0, "dy\n"}}, true},
		{"carriage return ignored", "^ready$", []struct {
			stream int
			s      string
		}{{1, "ready\r\n"}}, true},
		{"unfinished line does not match", "^ready$", []struct {
			stream int
			s      string
		}{{0, "ready"}}, false},
		{"streams do not mix", "^ready$", []struct {
			stream int
			s      string
		}{{0, "rea"}, {1, "dy\n"}}, false},
		{"match is per line", "^a.*b$", []struct {
			stream int
			s      string
		}{{0, "a\nb\n"}}, false},
		{"no match", "listening", []struct {
			stream int
			s      string
		}{{0, "starting\n"}, {1, "error\n"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustParse(t, "log:"+tt.expr).(*readiness.Log)
			streams := []io.Writer{p.Stream(), p.Stream()}
			for _, w := range tt.writes {
				if n, err := streams[w.stream].Write([]byte(w.s)); n != len(w.s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			err := p.Check(context.Background(), runner)
			if tt.pass {
				checkErr(t, err, "")
			} else {
				checkErr(t, err, "no line of main's output has matched yet")
			}
		})
	}
}

// Probes that can notice their condition (a file created, a log line
// written) are attempted again at once, not after the backoff delay.
func TestWaitWokenBeforeBackoffEnds(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T) (spec string, probe readiness.Probe, act func())
	}{
		{"file created", func(t *testing.T) (string, readiness.Probe, func()) {
			f := filepath.Join(t.TempDir(), "ready")
			spec := "file:" + f
			return spec, mustParse(t, spec), func() {
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Error(err)
				}
			}
		}},
		{"file renamed into place", func(t *testing.T) (string, readiness.Probe, func()) {
			dir := t.TempDir()
			f := filepath.Join(dir, "ready")
			spec := "file:" + f
			return spec, mustParse(t, spec), func() {
				tmp := filepath.Join(dir, ".ready.tmp")
				if err := os.WriteFile(tmp, nil, 0o644); err != nil {
					t.Error(err)
				}
				if err := os.Rename(tmp, f); err != nil {
					t.Error(err)
				}
			}
		}},
		{"unix socket bound", func(t *testing.T) (string, readiness.Probe, func()) {
			sock := filepath.Join(t.TempDir(), "app.sock")
			spec := "unix:" + sock
			return spec, mustParse(t, spec), func() {
				l, err := net.Listen("unix", sock)
				if err != nil {
					t.Error(err)
					return
				}
				t.Cleanup(func() { l.Close() })
				// bind(2)'s event may wake an attempt before listen(2):
				// refused, and the next poll is an hour away here. A chmod
				// after listen, as PostgreSQL makes, is an event that
				// always finds the socket listening.
				if err := os.Chmod(sock, 0o777); err != nil {
					t.Error(err)
				}
			}
		}},
		{"log line written", func(t *testing.T) (string, readiness.Probe, func()) {
			spec := "log:accepting connections"
			p := mustParse(t, spec).(*readiness.Log)
			out := p.Stream()
			return spec, p, func() { io.WriteString(out, "LOG: accepting connections\n") }
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, probe, act := tt.make(t)
			log, logs := reapertest.NewLog()
			// After the first failed attempt the next one is an hour away:
			// only a wake-up can make this wait end within the test.
			done := startWait(context.Background(), []readiness.Probe{probe}, readiness.Config{
				AttemptTimeout: time.Minute, Runner: runner, Log: log,
				NewBackOff: func() backoff.BackOff { return backoff.NewConstantBackOff(time.Hour) },
			})
			reapertest.WaitFor(t, "a failed attempt", func() bool { return len(logs.Find(t, "probe failed", "probe", spec)) == 1 })
			act()
			if err := result(t, done); err != nil {
				t.Fatalf("Wait = %v, want nil", err)
			}
			// Other events in the directory may wake it first, to no avail.
			if passed := logs.Find(t, "probe passed", "probe", spec); len(passed) != 1 || attemptOf(t, passed[0]) < 2 {
				t.Errorf("passed %v, want once, after the failed first attempt", passed)
			}
		})
	}
}
