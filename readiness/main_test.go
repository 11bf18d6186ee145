package readiness_test

import (
	"net"
	"testing"

	"github.com/mainstay-dev/mainstay/reaper/reapertest"
)

// runner is the one reaper of this test binary: reaper.Start may be called
// once per process, and exec probes must start through it.
var runner = reapertest.Runner()

// closedPort returns a 127.0.0.1 address nothing listens on: listen, then close.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// listen opens a listener on addr ("127.0.0.1:0" for any port) that is
// closed when the test ends.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}
