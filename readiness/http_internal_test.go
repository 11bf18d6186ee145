package readiness

import (
	"net/url"
	"testing"
)

// TestRequest: the request line and Host header of a GET, as a server
// must see them; an IPv6 zone stays on this side.
func TestRequest(t *testing.T) {
	for raw, want := range map[string]string{
		"http://db:8080/healthz?full=1": "GET /healthz?full=1 HTTP/1.1\r\nHost: db:8080\r\nUser-Agent: mainstay\r\nConnection: close\r\n\r\n",
		"http://db":                     "GET / HTTP/1.1\r\nHost: db\r\nUser-Agent: mainstay\r\nConnection: close\r\n\r\n",
		"http://[fe80::1%25eth0]:80/x":  "GET /x HTTP/1.1\r\nHost: [fe80::1]:80\r\nUser-Agent: mainstay\r\nConnection: close\r\n\r\n",
		"http://u:p@db/":                "GET / HTTP/1.1\r\nHost: db\r\nUser-Agent: mainstay\r\nAuthorization: Basic dTpw\r\nConnection: close\r\n\r\n",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if got := request(u); got != want {
			t.Errorf("request(%s) = %q, want %q", raw, got, want)
		}
	}
}
