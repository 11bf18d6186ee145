//go:build e2e

package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recipe is what a page of docs/recipes declares: the files shown under a
// **`NAME`** heading, and the Dockerfile's ENV, ENTRYPOINT and CMD.
type recipe struct {
	files           map[string]string
	env             []string
	entrypoint, cmd []string
}

var fileHeading = regexp.MustCompile("^\\*\\*`([^`]+)`\\*\\*$")

// readRecipe reads a recipe page, so that the test runs exactly what the
// page shows.
func readRecipe(t *testing.T, page string) recipe {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "docs", "recipes", page))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := recipe{files: map[string]string{}}
	var name string
	var body []string
	inBlock := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case !inBlock && fileHeading.MatchString(line):
			name = fileHeading.FindStringSubmatch(line)[1]
		case !inBlock && strings.HasPrefix(line, "```") && name != "":
			inBlock, body = true, nil
		case inBlock && line == "```":
			r.files[name] = strings.Join(body, "\n") + "\n"
			inBlock, name = false, ""
		case inBlock:
			body = append(body, line)
		}
	}
	docker, ok := r.files["Dockerfile"]
	if !ok {
		t.Fatalf("%s: no Dockerfile", page)
	}
	// Join continuation lines, then read the instructions we run.
	for _, ins := range strings.Split(strings.ReplaceAll(docker, "\\\n", " "), "\n") {
		word, rest, _ := strings.Cut(strings.TrimSpace(ins), " ")
		switch word {
		case "ENV":
			if k, v, ok := strings.Cut(strings.TrimSpace(rest), "="); ok && k != "PATH" {
				r.env = append(r.env, k+"="+v)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(rest), &r.entrypoint); err != nil {
				t.Fatalf("%s: ENTRYPOINT: %v", page, err)
			}
		case "CMD":
			if err := json.Unmarshal([]byte(rest), &r.cmd); err != nil {
				t.Fatalf("%s: CMD: %v", page, err)
			}
		}
	}
	if len(r.entrypoint) == 0 || r.entrypoint[0] != "mainstay" || len(r.cmd) == 0 {
		t.Fatalf("%s: ENTRYPOINT %q, CMD %q", page, r.entrypoint, r.cmd)
	}
	return r
}

// inside runs args in r's PID, network and mount namespaces (where
// mainstay runs as PID 1), with env added to the test's environment, and
// returns its trimmed output.
func (r *run) inside(env []string, args ...string) (string, error) {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(r.PID()), "--net", "--pid", "--mount", "--"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// rooted moves the image's absolute paths under root, in every argument.
func rooted(root string, args []string, paths ...string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for _, p := range paths {
			a = strings.ReplaceAll(a, p, root+p)
		}
		out[i] = a
	}
	return out
}

// TestRecipePostgreSQL runs docs/recipes/postgresql.md's ENTRYPOINT and CMD
// as written, with its pg_hba.conf and migrations, against PostgreSQL from
// Debian — mainstay as root and PID 1 in its own PID and network
// namespaces, as in a container — only the image's paths moved under a
// temporary directory.
func TestRecipePostgreSQL(t *testing.T) {
	rc := readRecipe(t, "postgresql.md")
	root := dbDir(t, "postgres")
	for _, d := range []string{"/var/lib/postgresql", "/migrations", "/etc/postgresql", "/run/mainstay"} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range rc.files {
		dst := map[string]string{"pg_hba.conf": "/etc/postgresql/pg_hba.conf"}[name]
		if strings.HasPrefix(name, "migrations/") {
			dst = "/" + name
		}
		if dst != "" {
			if err := os.WriteFile(root+dst, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The Dockerfile's initdb step.
	data := root + "/var/lib/postgresql/data"
	out, err := exec.Command("sh", "-c", `install -d -o postgres -g postgres -m 0700 "$1" &&
		chown postgres:postgres "$(dirname "$1")" &&
		runuser -u postgres -- "$2/initdb" -D "$1" -A trust -U postgres -E UTF8 --locale=C.UTF-8`,
		"sh", data, pgBin(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}

	paths := []string{"/var/lib/postgresql", "/migrations/", "/etc/postgresql/", "/run/mainstay/"}
	args := append(rooted(root, rc.entrypoint[1:], paths...), rooted(root, rc.cmd, paths...)...)
	env := append(rooted(root, rc.env, paths...), "POSTGRES_PASSWORD=change-me",
		"PATH="+pgBin(t)+":"+os.Getenv("PATH"))
	readyFile := root + "/run/mainstay/ready"
	if !contains(env, "MAINSTAY_READY_FILE="+readyFile) {
		t.Fatalf("the recipe's ENV does not set MAINSTAY_READY_FILE=/run/mainstay/ready: %q", rc.env)
	}
	dir := t.TempDir()
	r := startWith(t, pid1, dir, config{ctty: -1, netns: true, env: env}, args...)
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })

	inside := func(args ...string) (string, error) { return r.inside(env, args...) }
	if state, err := inside(bin, "health"); state != "ready" || err != nil {
		t.Errorf("mainstay health (HEALTHCHECK): %q, %v", state, err)
	}
	got, err := inside("psql", "-X", "-At", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres",
		"-c", "SELECT name FROM products ORDER BY id", "postgres")
	if err != nil || got != "kettle\nteapot\nmug" {
		t.Errorf("seeded products: %q, %v", got, err)
	}
	if !exists(root + "/var/lib/postgresql/initialised") {
		t.Error("once marker not written")
	}

	r.signal(syscall.SIGTERM) // docker stop
	if code := r.wait(long); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	if log := r.stderr(); !strings.Contains(log, "received fast shutdown request") || !strings.Contains(log, "database system is shut down") {
		t.Errorf("no clean fast shutdown:\n%s", log)
	}
}

// TestRecipeRedis runs docs/recipes/redis.md's ENTRYPOINT and CMD as
// written, the same way as TestRecipePostgreSQL.
func TestRecipeRedis(t *testing.T) {
	rc := readRecipe(t, "redis.md")
	root := dbDir(t, "redis")
	for _, d := range []string{"/var/lib/redis", "/run/mainstay"} {
		if err := os.MkdirAll(root+d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "redis:redis", root+"/var/lib/redis").CombinedOutput(); err != nil {
		t.Fatalf("chown: %v\n%s", err, out)
	}
	paths := []string{"/var/lib/redis", "/run/mainstay/"}
	args := append(rooted(root, rc.entrypoint[1:], paths...), rooted(root, rc.cmd, paths...)...)
	env := rooted(root, rc.env, paths...)
	readyFile := root + "/run/mainstay/ready"
	if !contains(env, "MAINSTAY_READY_FILE="+readyFile) {
		t.Fatalf("the recipe's ENV does not set MAINSTAY_READY_FILE=/run/mainstay/ready: %q", rc.env)
	}
	r := startWith(t, pid1, t.TempDir(), config{ctty: -1, netns: true, env: env}, args...)
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })

	inside := func(args ...string) (string, error) { return r.inside(env, args...) }
	if state, err := inside(bin, "health"); state != "ready" || err != nil {
		t.Errorf("mainstay health (HEALTHCHECK): %q, %v", state, err)
	}
	if got, err := inside("redis-cli", "-e", "-p", "6379", "GET", "greeting"); got != "hello, world" || err != nil {
		t.Errorf("GET greeting: %q, %v", got, err)
	}
	if got, err := inside("redis-cli", "-e", "-p", "6379", "LRANGE", "queue", "0", "-1"); got != "a\nb\nc" || err != nil {
		t.Errorf("LRANGE queue: %q, %v", got, err)
	}
	if !exists(root+"/var/lib/redis/initialised") || !exists(root+"/var/lib/redis/dump.rdb") {
		t.Error("once marker or the seed's dump.rdb missing")
	}
	r.signal(syscall.SIGTERM)
	if code := r.wait(long); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
}

// TestRecipeWebCacheCron runs docs/recipes/web-cache-cron.md's ENTRYPOINT
// and CMD as written against apache2 and memcached from Debian, mainstay
// as PID 1 in its own PID, network and mount namespaces, with a tmpfs over
// /run, /var/log/apache2 and /var/www/html (the image's directory for the
// job made there) so that Apache's pid files, logs and the job's file stay
// out of the host's. Apache answers, the job is scheduled for the next
// whole minute once Apache is ready (its run is waited for in
// TestDockerRecipeWebCacheCron: up to a minute), memcached is restarted
// after a kill, and SIGTERM stops main, then memcached.
func TestRecipeWebCacheCron(t *testing.T) {
	rc := readRecipe(t, "web-cache-cron.md")
	root := t.TempDir()
	paths := []string{"/run/mainstay/"}
	args := append(rooted(root, rc.entrypoint[1:], paths...), rooted(root, rc.cmd, paths...)...)
	env := rooted(root, rc.env, paths...)
	readyFile := root + "/run/mainstay/ready"
	if !contains(env, "MAINSTAY_READY_FILE="+readyFile) {
		t.Fatalf("the recipe's ENV does not set MAINSTAY_READY_FILE=/run/mainstay/ready: %q", rc.env)
	}
	if !strings.Contains(rc.files["Dockerfile"], "install -d -o www-data -g www-data /var/www/html/status") {
		t.Fatal("the recipe's Dockerfile no longer makes /var/www/html/status for the job: change this test's set-up with it")
	}
	os.MkdirAll(root+"/run/mainstay", 0o755)
	// As in the image: /run/lock there, Apache's logs to the container's
	// output, the job's directory www-data's.
	private := `mount -t tmpfs tmpfs /run && mkdir /run/lock && mount -t tmpfs tmpfs /var/log/apache2 &&
ln -s /dev/stdout /var/log/apache2/access.log && ln -s /dev/stderr /var/log/apache2/error.log &&
cp /var/www/html/index.html /run/index.html && mount -t tmpfs tmpfs /var/www/html && mv /run/index.html /var/www/html/ &&
install -d -o www-data -g www-data /var/www/html/status && exec "$@"`
	dir := t.TempDir()
	r := startWith(t, pid1, dir, config{ctty: -1, netns: true, env: append(env, "MAINSTAY_LOG_FORMAT=json"),
		wrap: []string{"sh", "-c", private, "sh"}}, args...)
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })
	inside := func(args ...string) (string, error) { return r.inside(env, args...) }
	if state, err := inside(bin, "health"); state != "ready" || err != nil {
		t.Errorf("mainstay health (HEALTHCHECK): %q, %v", state, err)
	}
	sched := r.waitLog("cron entry scheduled")
	fg := r.waitLog("main in the foreground")
	next := logTime(t, sched, "next")
	if want := fg.time().Truncate(time.Minute).Add(time.Minute); sched.str("cron") != "heartbeat" || sched.str("schedule") != "* * * * *" || !next.Equal(want) {
		t.Errorf("scheduled %v, want heartbeat, * * * * *, next %s (the minute after Apache was ready)", sched, want)
	}
	memcached := `exec 3<>/dev/tcp/127.0.0.1/11211; printf 'version\r\n' >&3; head -n 1 <&3`
	if got, err := inside("bash", "-c", memcached); !strings.HasPrefix(got, "VERSION ") {
		t.Errorf("memcached: %q, %v", got, err)
	}
	// Stop memcached (it exits 0): restart=always restarts it, and it serves again.
	old := r.logsWith("sidecar started")
	var cache procRef
	for _, l := range old {
		if l.str("sidecar") == "cache" {
			cache = r.hostPID(l.num("pid"))
		}
	}
	unix.Kill(cache.pid, unix.SIGTERM)
	waitFor(t, long, "memcached restarted", func() bool { return len(r.logsWith("sidecar started")) > len(old) })
	waitFor(t, long, "memcached serving again", func() bool {
		got, _ := inside("bash", "-c", memcached)
		return strings.HasPrefix(got, "VERSION ")
	})
	// A run, should the test have crossed a minute: the time, written as
	// www-data, in the file Apache serves.
	if ends := r.cronEnds("heartbeat"); len(ends) > 0 {
		got, err := inside("sh", "-c", "stat -c %U /var/www/html/status/heartbeat.txt && cat /var/www/html/status/heartbeat.txt")
		if ends[0].str("msg") != "cron run succeeded" || !strings.HasPrefix(got, "www-data\n20") {
			t.Errorf("the job's run %v wrote %q, %v", ends[0], got, err)
		}
		t.Logf("the job ran during the test: %q", got)
	}
	r.signal(syscall.SIGTERM) // docker stop
	if code := r.wait(long); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0", code)
	}
	order := r.stopOrder()
	if strings.Join(order, " ") != "main cache" {
		t.Errorf("stop order %v, want main cache", order)
	}
}

// TestRecipeApp runs docs/recipes/app.md's ENTRYPOINT and CMD as written,
// with its files, in the app's own PID, mount and network namespaces, where
// a private /etc/hosts names the database "db"; PostgreSQL runs in a
// namespace of its own at that address, started 2 s after the app, as a
// Compose project's db container would come up.
func TestRecipeApp(t *testing.T) {
	rc := readRecipe(t, "app.md")
	const dbAddr, appAddr = "10.213.1.1", "10.213.1.2"
	dbNS, appNS := netnsPair(t, "recipe", dbAddr, appAddr)
	root := t.TempDir()
	for name, content := range rc.files {
		var dst string
		switch {
		case strings.HasPrefix(name, "migrations/"):
			dst = "/" + name
		case strings.HasPrefix(name, "www/"):
			dst = "/srv/" + name
		default:
			continue
		}
		if err := os.MkdirAll(filepath.Dir(root+dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(root+dst, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(root+"/run/mainstay", 0o755); err != nil {
		t.Fatal(err)
	}
	hosts := filepath.Join(root, "hosts")
	writeFile(t, hosts, "127.0.0.1 localhost\n"+dbAddr+" db\n", 0o644)

	paths := []string{"/migrations/", "/srv/www", "/run/mainstay/"}
	args := append(rooted(root, rc.entrypoint[1:], paths...), rooted(root, rc.cmd, paths...)...)
	env := rooted(root, rc.env, paths...)
	readyFile := root + "/run/mainstay/ready"
	if !contains(env, "MAINSTAY_READY_FILE="+readyFile) {
		t.Fatalf("the recipe's ENV does not set MAINSTAY_READY_FILE=/run/mainstay/ready: %q", rc.env)
	}
	wrap := []string{"ip", "netns", "exec", appNS, "sh", "-c", `mount --bind "$0" /etc/hosts && exec "$@"`, hosts}
	start0 := time.Now()
	app := startWith(t, pid1, t.TempDir(), config{env: env, wrap: wrap}, args...)

	p := newPG(t)
	f, err := os.OpenFile(filepath.Join(p.data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "host all all %s/32 trust\nhost all all %s/32 trust\n", appAddr, dbAddr)
	f.Close()
	time.Sleep(time.Until(start0.Add(2 * time.Second))) // the database comes 2 s after the app
	if exists(readyFile) || app.exited() {
		t.Fatalf("ready file %v, exited %v before the database exists", exists(readyFile), app.exited())
	}
	db := startWith(t, pid1, t.TempDir(), config{wrap: []string{"ip", "netns", "exec", dbNS}},
		"--user", "postgres", "--stop-signal", "SIGINT", "--grace", "20s",
		"--", filepath.Join(p.bin, "postgres"), "-D", p.data, "-p", "5432", "-c", "listen_addresses="+dbAddr, "-k", p.sock)
	waitFor(t, long, "the ready file", func() bool { return exists(readyFile) })

	inside := func(args ...string) (string, error) { return app.inside(env, args...) }
	if state, err := inside(bin, "health"); state != "ready" || err != nil {
		t.Errorf("mainstay health (HEALTHCHECK): %q, %v", state, err)
	}
	if got, err := inside("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/cgi-bin/orders"); got != "orders: 0" || err != nil {
		t.Errorf("GET /cgi-bin/orders: %q, %v", got, err)
	}
	if got, err := inside("psql", "-X", "-At", "-c", "SELECT count(*) FROM information_schema.tables WHERE table_name = 'orders'"); got != "1" || err != nil {
		t.Errorf("the migration's table: %q, %v", got, err)
	}
	if !strings.Contains(app.stderr(), `msg="before task succeeded"`) || strings.Count(app.stderr(), `msg="before task started"`) != 1 {
		t.Errorf("want one before task, succeeded:\n%s", app.stderr())
	}
	stopAppThenDB(t, app, db)
}

// stopAppThenDB stops the app recipe's two mainstays as Compose does, the
// app first: the app (httpd as main) exits 143 or 0, the database 0.
func stopAppThenDB(t *testing.T, app, db *run) {
	t.Helper()
	app.signal(syscall.SIGTERM)
	if code := app.wait(long); code != 143 && code != 0 {
		t.Errorf("app exit %d after SIGTERM, want httpd's 143 or 0", code)
	}
	db.signal(syscall.SIGTERM)
	if code := db.wait(long); code != 0 {
		t.Errorf("db exit %d after SIGTERM, want 0", code)
	}
}
