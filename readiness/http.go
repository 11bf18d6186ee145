package readiness

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mainstay-dev/mainstay/reaper"
)

// HTTP passes when a GET of URL answers with a 2xx or 3xx status.
// Redirects are not followed: a 3xx already shows the server answers.
// Proxy variables are ignored, since the server is main, next to mainstay.
type HTTP struct {
	spec string // as shown: without the password
	// URL is the URL requested, with its password replaced by xxxxx
	// ((*url.URL).Redacted); the request carries the real one.
	URL string
	// SkipVerify accepts any TLS certificate, such as the self-signed one
	// of a server that is starting up.
	SkipVerify bool

	addr    string // HOST:PORT to connect to
	request string // the request, written as is
	tls     bool
	host    string // the server's name, for TLS
}

// parseHTTP reads the URL rawURL of the probe spec raw; spec is the spec
// as shown, without its password, and so is every error.
func parseHTTP(spec, raw, rawURL string, skipVerify bool) (Probe, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		if spec != raw {
			// The spec had a password: net/url's error could quote a
			// piece of it (taken for a port, say). What is wrong with the
			// spec as shown is safe to say, when something is.
			if _, err = url.Parse(spec); err == nil {
				return nil, fmt.Errorf("probe %q: not a valid URL (a / ? # or blank in the user name or password must be percent-encoded)", spec)
			}
		}
		// A *url.Error quotes the URL, which the message already does.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("probe %q: %v", spec, err)
	}
	if u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("probe %q: want %s://HOST[:PORT]/PATH", spec, u.Scheme)
	}
	if err := checkHost(u.Hostname()); err != nil {
		return nil, fmt.Errorf("probe %q: %v", spec, err)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("probe %q: port %q is not a number from 1 to 65535", spec, p)
		}
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return HTTP{
		spec: spec, URL: u.Redacted(), SkipVerify: skipVerify,
		addr: net.JoinHostPort(u.Hostname(), port), request: request(u),
		tls: u.Scheme == "https", host: u.Hostname(),
	}, nil
}

// request is the whole HTTP/1.1 GET of u: the path and query, the Host
// header (without an IPv6 zone, which only means something here), the
// credentials of u's user information as Basic authorisation, as net/http
// sends them, and Connection: close.
func request(u *url.URL) string {
	host := u.Host
	if i := strings.IndexByte(host, '%'); i >= 0 && strings.HasPrefix(host, "[") {
		if j := strings.IndexByte(host[i:], ']'); j >= 0 {
			host = host[:i] + host[i+j:]
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: mainstay\r\n", u.RequestURI(), host)
	if u.User != nil {
		pw, _ := u.User.Password()
		fmt.Fprintf(&b, "Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pw)))
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

func (p HTTP) String() string { return p.spec }

// Check makes one GET request and reads the status line of the answer,
// and nothing more: that is all a readiness probe needs, and net/http,
// which would do it too, cost 1.2 MB of mainstay's 8.8 MB binary
// (docs/performance.md). The TLS handshake is crypto/tls's. A refused
// attempt costs what a tcp: one does.
func (p HTTP) Check(ctx context.Context, _ reaper.Runner) error {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	defer raw.Close()
	// Reads and writes end when ctx does (the attempt's timeout). The
	// function holds the dialled connection, never conn, which becomes
	// the TLS one below while it may be running.
	defer context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })()
	conn := raw
	if p.tls {
		tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: p.SkipVerify, ServerName: p.host})
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		conn = tc
	}
	_, err = io.WriteString(conn, p.request)
	var line string
	if err == nil {
		line, err = textproto.NewReader(bufio.NewReaderSize(conn, 512)).ReadLine()
	}
	if ctx.Err() != nil {
		return ctx.Err() // not the deadline's "i/o timeout"
	}
	if err != nil {
		return fmt.Errorf("no HTTP answer: %w", err)
	}
	proto, status, _ := strings.Cut(line, " ")
	code, _, _ := strings.Cut(status, " ")
	n, err := strconv.Atoi(code)
	if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || err != nil {
		return fmt.Errorf("not an HTTP answer: %q", truncate(line, 80))
	}
	if n < 200 || n > 399 {
		return fmt.Errorf("HTTP %s", status)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Unix passes when a stream connection to the socket at Path succeeds.
type Unix struct {
	spec string
	Path string
}

func (p Unix) String() string { return p.spec }

// Check connects once and closes the connection.
func (p Unix) Check(ctx context.Context, _ reaper.Runner) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", p.Path)
	if err != nil {
		return err
	}
	return c.Close()
}
