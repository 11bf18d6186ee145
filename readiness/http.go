package readiness

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
)

// HTTP passes when a GET of URL answers with a 2xx or 3xx status.
// Redirects are not followed: a 3xx already shows the server answers.
// Proxy variables are ignored, since the server is main, next to mainstay.
type HTTP struct {
	spec string
	URL  string
	// SkipVerify accepts any TLS certificate, such as the self-signed one
	// of a server that is starting up.
	SkipVerify bool

	addr string // HOST:PORT to connect to
}

// parseHTTP reads the URL rawURL of the probe spec.
func parseHTTP(spec, rawURL string, skipVerify bool) (Probe, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
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
	return HTTP{spec: spec, URL: u.String(), SkipVerify: skipVerify, addr: net.JoinHostPort(u.Hostname(), port)}, nil
}

func (p HTTP) String() string { return p.spec }

// Check makes one GET request, without keep-alive. It connects first,
// and only builds an HTTP client once the connection is made: while main
// is not listening yet, an attempt costs no more than a tcp: one.
func (p HTTP) Check(ctx context.Context, _ Runner) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	// The transport's first dial takes this connection; whatever it does
	// not take is closed when Check returns.
	var once sync.Once
	defer once.Do(func() { conn.Close() })
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: p.SkipVerify},
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var c net.Conn
				once.Do(func() { c = conn })
				if c == nil {
					return d.DialContext(ctx, "tcp", p.addr)
				}
				return c, nil
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("HTTP %s", resp.Status)
	}
	return nil
}

// Unix passes when a stream connection to the socket at Path succeeds.
type Unix struct {
	spec string
	Path string
}

func (p Unix) String() string { return p.spec }

// Check connects once and closes the connection.
func (p Unix) Check(ctx context.Context, _ Runner) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", p.Path)
	if err != nil {
		return err
	}
	return c.Close()
}
