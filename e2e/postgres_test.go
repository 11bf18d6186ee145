//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The database tests run mainstay as root, as PID 1 of a fresh PID
// namespace, with the real servers from Debian's packages (installed by
// e2e/setup.sh) running as their own users through --user.

var pid1 = mode{"pid1", true}

// dbDir makes a directory that the server's user can write, removed at the
// end of the test. t.TempDir's directories are private to root.
func dbDir(t *testing.T, owner string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the database tests need root, for --user and unshare --pid")
	}
	dir, err := os.MkdirTemp("", "mainstay-db-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	u, err := user.Lookup(owner)
	if err != nil {
		t.Fatalf("user %s (e2e/setup.sh installs the server packages): %v", owner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	return dir
}

// freePort is a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pgBin is the directory of PostgreSQL's server programs.
func pgBin(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if exists(filepath.Join(dirs[i], "postgres")) {
			return dirs[i]
		}
	}
	t.Fatal("no PostgreSQL server in /usr/lib/postgresql/*/bin: run e2e/setup.sh")
	return ""
}

// pg is a PostgreSQL data directory with its port and migrations.
type pg struct {
	t          *testing.T
	dir, bin   string
	data, sock string
	port       int
}

func newPG(t *testing.T) *pg {
	t.Helper()
	p := &pg{t: t, dir: dbDir(t, "postgres"), bin: pgBin(t), port: freePort(t)}
	p.data, p.sock = filepath.Join(p.dir, "data"), p.dir
	out, err := exec.Command("runuser", "-u", "postgres", "--",
		filepath.Join(p.bin, "initdb"), "-D", p.data, "-A", "trust", "-U", "postgres").CombinedOutput()
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	return p
}

// file writes a file the server's user can read.
func (p *pg) file(name, content string) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// psql is a psql command line for --helper, connecting over TCP; -1 runs
// the file in one transaction, so a failed migration leaves nothing half
// applied for the retry.
func (p *pg) psql(file string) string {
	return fmt.Sprintf("psql -X -q -1 -h 127.0.0.1 -p %d -U postgres -v ON_ERROR_STOP=1 -f %s postgres", p.port, file)
}

// args are mainstay's flags for the image's usual set-up, then main.
func (p *pg) args(extra ...string) []string {
	a := []string{"--log-format", "json", "--user", "postgres", "--stop-signal", "SIGINT", "--grace", "20s",
		"--ready", fmt.Sprintf("tcp:127.0.0.1:%d", p.port),
		"--ready", fmt.Sprintf("exec:pg_isready -q -h 127.0.0.1 -p %d", p.port)}
	a = append(a, extra...)
	return append(a, "--", filepath.Join(p.bin, "postgres"), "-D", p.data, "-p", strconv.Itoa(p.port),
		"-c", "listen_addresses=127.0.0.1", "-k", p.sock)
}

// query runs sql from the test and returns psql's unaligned output.
func (p *pg) query(sql string) (string, error) {
	out, err := exec.Command("psql", "-X", "-At", "-h", "127.0.0.1", "-p", strconv.Itoa(p.port),
		"-U", "postgres", "-v", "ON_ERROR_STOP=1", "-c", sql, "postgres").CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// health runs "mainstay health" inside mainstay's namespaces, as a
// HEALTHCHECK or a Kubernetes exec probe would.
func health(t *testing.T, r *run, readyFile string) (string, int) {
	t.Helper()
	cmd := exec.Command("nsenter", "-t", strconv.Itoa(r.PID()), "--pid", "--mount", "--",
		bin, "health", "--ready-file", readyFile)
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("mainstay health: %v", err)
	}
	return strings.TrimSpace(string(out)), code
}

const schema = `CREATE TABLE IF NOT EXISTS products (id serial PRIMARY KEY, name text UNIQUE NOT NULL);
CREATE TABLE IF NOT EXISTS events (v bigint PRIMARY KEY);
`

// TestPostgresLifecycle: migrations run once PostgreSQL can serve them,
// health says starting until they are done and ready after, SIGTERM gives
// a clean shutdown and exit 0, and a restart needs no crash recovery.
func TestPostgresLifecycle(t *testing.T) {
	p := newPG(t)
	migrate := p.file("001_schema.sql", schema)
	// The second helper holds start-up until the test has looked.
	hold := script(t, p.dir, "hold.sh", `touch "$D/holding"; while [ ! -e "$D/release" ]; do sleep 0.01; done`)
	readyFile := filepath.Join(p.dir, "ready")
	r := start(t, pid1, p.dir, p.args("--ready-file", readyFile, "--helper", p.psql(migrate), "--helper", hold)...)

	waitFor(t, long, "the second helper", func() bool { return exists(filepath.Join(p.dir, "holding")) })
	if out, err := p.query("SELECT count(*) FROM products"); err != nil || out != "0" {
		t.Fatalf("the migration's table during the helpers: %q, %v", out, err)
	}
	if state, code := health(t, r, readyFile); state != "starting" || code != 1 {
		t.Errorf("health while a helper runs: %q exit %d, want starting exit 1", state, code)
	}
	if exists(readyFile) {
		t.Error("ready file exists while a helper runs")
	}
	touch(t, filepath.Join(p.dir, "release"))
	waitFor(t, short, "the ready file", func() bool { return exists(readyFile) })
	if state, code := health(t, r, readyFile); state != "ready" || code != 0 {
		t.Errorf("health after the helpers: %q exit %d, want ready exit 0", state, code)
	}

	r.signal(syscall.SIGTERM) // docker stop
	if code := r.wait(long); code != 0 {
		t.Fatalf("mainstay exited %d after SIGTERM, want 0 (postgres's own code)", code)
	}
	log := r.stderr()
	for _, want := range []string{"received fast shutdown request", "database system is shut down"} {
		if !strings.Contains(log, want) {
			t.Errorf("postgres did not log %q", want)
		}
	}
	if exists(readyFile) {
		t.Error("ready file left behind")
	}

	// Restart on the same data directory: no crash recovery.
	dir2 := t.TempDir()
	r2 := start(t, pid1, dir2, p.args()...)
	r2.waitLog("main in the foreground")
	if out, err := p.query("SELECT count(*) FROM products"); err != nil || out != "0" {
		t.Errorf("after restart: %q, %v", out, err)
	}
	r2.signal(syscall.SIGTERM)
	if code := r2.wait(long); code != 0 {
		t.Errorf("second run exited %d", code)
	}
	log2 := r2.stderr()
	if strings.Contains(log2, "not properly shut down") || strings.Contains(log2, "automatic recovery in progress") {
		t.Errorf("restart needed crash recovery:\n%s", log2)
	}
	if !strings.Contains(log2, "database system was shut down at") {
		t.Errorf("restart did not find a clean shutdown:\n%s", log2)
	}
}

// TestPostgresStopUnderLoad stops the server the way docker stop does while
// a client commits rows as fast as it can: every commit the client saw
// acknowledged is there after a restart.
func TestPostgresStopUnderLoad(t *testing.T) {
	p := newPG(t)
	migrate := p.file("001_schema.sql", schema)
	readyFile := filepath.Join(p.dir, "ready")
	r := start(t, pid1, t.TempDir(), p.args("--ready-file", readyFile, "--helper", p.psql(migrate))...)
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })

	// One psql session, autocommit: each INSERT ... RETURNING prints its
	// value only once the row is committed.
	ackFile := filepath.Join(t.TempDir(), "acked")
	ack, err := os.Create(ackFile)
	if err != nil {
		t.Fatal(err)
	}
	defer ack.Close()
	client := exec.Command("sh", "-c", fmt.Sprintf(
		`i=0; while [ $i -lt 200000 ]; do i=$((i+1)); echo "INSERT INTO events VALUES ($i) RETURNING v;"; done |
		 psql -X -q -At -h 127.0.0.1 -p %d -U postgres -v ON_ERROR_STOP=1 postgres`, p.port))
	client.Stdout = ack
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	// Let the load run until some thousand commits were acknowledged.
	waitFor(t, long, "2000 acknowledged commits", func() bool { return len(lines(ackFile)) >= 2000 })
	r.signal(syscall.SIGTERM)
	if code := r.wait(long); code != 0 {
		t.Fatalf("mainstay exited %d under load, want 0", code)
	}
	client.Wait() // the server went away under it
	acked := map[string]bool{}
	f, _ := os.Open(ackFile)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if _, err := strconv.Atoi(sc.Text()); err == nil {
			acked[sc.Text()] = true
		}
	}
	f.Close()

	r2 := start(t, pid1, t.TempDir(), p.args()...)
	r2.waitLog("main in the foreground")
	out, err := p.query("SELECT v FROM events")
	if err != nil {
		t.Fatalf("reading back: %v: %s", err, out)
	}
	stored := map[string]bool{}
	for _, v := range strings.Fields(out) {
		stored[v] = true
	}
	lost := 0
	for v := range acked {
		if !stored[v] {
			lost++
		}
	}
	t.Logf("acknowledged commits: %d, rows after restart: %d, acknowledged but lost: %d", len(acked), len(stored), lost)
	if lost > 0 {
		t.Errorf("%d acknowledged commits lost", lost)
	}
	r2.signal(syscall.SIGTERM)
	if code := r2.wait(long); code != 0 {
		t.Errorf("second run exited %d", code)
	}
	if strings.Contains(r2.stderr(), "not properly shut down") {
		t.Error("the stop under load was not a clean shutdown")
	}
}

// TestPostgresFailingMigration: a migration that fails stops the server
// cleanly, mainstay exits with psql's code, no ready file appears, and
// with --once-marker the next start runs the migrations again.
func TestPostgresFailingMigration(t *testing.T) {
	p := newPG(t)
	migrate := p.file("001_schema.sql", schema)
	broken := p.file("002_seed.sql", "INSERT INTO products (name) VALUES ('kettle');\nINSERT INTO no_such_table VALUES (1);\n")
	readyFile := filepath.Join(p.dir, "ready")
	marker := filepath.Join(p.dir, "initialised")
	args := p.args("--ready-file", readyFile, "--once-marker", marker,
		"--helper", p.psql(migrate), "--helper", p.psql(broken))

	r := start(t, pid1, t.TempDir(), args...)
	if code := r.wait(long); code != 3 {
		t.Fatalf("mainstay exited %d, want 3 (psql's code for a failed script under ON_ERROR_STOP)", code)
	}
	if l := r.mustLog("helper failed; stopping main"); l.num("exit_code") != 3 {
		t.Errorf("log: %v", l)
	}
	if !strings.Contains(r.stderr(), "database system is shut down") {
		t.Error("postgres was not shut down cleanly")
	}
	if exists(readyFile) || exists(marker) {
		t.Errorf("ready file %v, once marker %v: want neither", exists(readyFile), exists(marker))
	}

	// The next start runs the migrations again; fixed, they pass.
	p.file("002_seed.sql", "INSERT INTO products (name) VALUES ('kettle') ON CONFLICT DO NOTHING;\n")
	r2 := start(t, pid1, t.TempDir(), args...)
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })
	if len(r2.logsWith("helper succeeded")) != 2 {
		t.Errorf("second start: want both helpers run and succeeded:\n%s", r2.stderr())
	}
	if !exists(marker) {
		t.Error("once marker not written after every helper succeeded")
	}
	r2.signal(syscall.SIGTERM)
	if code := r2.wait(long); code != 0 {
		t.Errorf("second run exited %d", code)
	}

	// The third start skips them.
	r3 := start(t, pid1, t.TempDir(), args...)
	r3.waitLog("once marker exists: skipping the helpers")
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })
	r3.mustNotLog("helper started")
	r3.signal(syscall.SIGTERM)
	if code := r3.wait(long); code != 0 {
		t.Errorf("third run exited %d", code)
	}
	if out, err := p.query("SELECT count(*) FROM products"); err == nil {
		t.Errorf("server still answering after the third run: %s", out)
	}
}
