//go:build e2e

package e2e

import (
	"bufio"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// The recipes' images, built from their pages as written, and the README's
// example.

// Deadlines for the servers in a container. The recipes' HEALTHCHECK runs
// every 10 s, and Docker runs the first check one interval after the start.
const (
	healthy = 90 * time.Second
	stopped = 45 * time.Second
)

// recipeImage builds the image of a page of docs/recipes: its files (the
// Dockerfile and what it COPYs) and the release mainstay as the build
// context, as the page's "The image" section lays it out.
func (d *dockerSetup) recipeImage(t *testing.T, page string) string {
	return d.image(t, strings.TrimSuffix(page, ".md"), func(t *testing.T, dir string) {
		d.recipeContext(t, page, dir)
	})
}

func (d *dockerSetup) recipeContext(t *testing.T, page, dir string) {
	t.Helper()
	files := readRecipe(t, page).files
	delete(files, "docker-compose.yml") // next to the context, not in the image
	writeFiles(t, dir, files)
	d.copyRelease(t, dir)
}

// readmeDockerfile is the Dockerfile block of README.md's section that
// starts with heading, the index-th (from 0) when there are several.
func readmeDockerfile(t *testing.T, heading string, index int) string {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var body []string
	in, inBlock := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = strings.HasPrefix(line, heading)
		case in && !inBlock && line == "```dockerfile":
			inBlock, body = true, nil
		case inBlock && line == "```":
			blocks = append(blocks, strings.Join(body, "\n")+"\n")
			inBlock = false
		case inBlock:
			body = append(body, line)
		}
	}
	if index >= len(blocks) {
		t.Fatalf("README.md: no Dockerfile #%d in section %q", index, heading)
	}
	return blocks[index]
}

// readmeImage is the README's example: its Dockerfile, with the recipe's
// idempotent schema and seed as migrations/ (the README does not show them).
func (d *dockerSetup) readmeImage(t *testing.T) string {
	return d.image(t, "readme-example", func(t *testing.T, dir string) {
		rc := readRecipe(t, "postgresql.md")
		writeFiles(t, dir, map[string]string{
			"Dockerfile":                readmeDockerfile(t, "## Example", 0),
			"migrations/001_schema.sql": rc.files["migrations/001_schema.sql"],
			"migrations/002_seed.sql":   rc.files["migrations/002_seed.sql"],
		})
		d.copyRelease(t, dir)
	})
}

// uidOf is the container's numeric user ID for name.
func (c *container) uidOf(name string) string {
	c.t.Helper()
	out, err := c.exec("id", "-u", name)
	if err != nil {
		c.t.Fatalf("id -u %s: %v: %s", name, err, out)
	}
	return out
}

// userOf is the user ID of the container's first process whose command
// line starts with argsPrefix (docker top, read from the host).
func (c *container) userOf(argsPrefix string) string {
	c.t.Helper()
	procs := c.top()
	for _, p := range procs {
		if strings.HasPrefix(p.args, argsPrefix) {
			return p.uid
		}
	}
	c.t.Fatalf("no process %q in docker top %s: %+v", argsPrefix, c.name, procs)
	return ""
}

// startingThenHealthy checks that the image's HEALTHCHECK (mainstay
// health) reports starting first and then healthy.
func startingThenHealthy(t *testing.T, c *container) {
	t.Helper()
	if s := c.state(); s.Health == nil || s.Health.Status != "starting" {
		t.Fatalf("health right after docker run: %+v, want starting", s.Health)
	}
	c.waitHealth(healthy, "healthy")
}

// stopCleanly runs docker stop and checks exit code 0 and the server's own
// line for a clean shutdown in docker logs.
func stopCleanly(t *testing.T, c *container, line string) {
	t.Helper()
	c.stop()
	if code := c.waitExited(stopped); code != 0 {
		t.Errorf("exit code after docker stop: %d, want 0", code)
	}
	if logs := c.logs(); !strings.Contains(logs, line) {
		t.Errorf("docker logs after docker stop lack %q", line)
	}
}

// TestDockerRecipePostgreSQL builds docs/recipes/postgresql.md's image and
// runs it as the page does: helpers ran, HEALTHCHECK starting → healthy,
// mainstay as root with PostgreSQL as user postgres (--user), docker stop
// gives 0 after a clean shutdown, and the next docker start finds no need
// for recovery and skips the helpers (the once marker on the volume).
func TestDockerRecipePostgreSQL(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	img := d.recipeImage(t, "postgresql.md")
	c := d.runDetached(t, "", "-e", "POSTGRES_PASSWORD=change-me", "--stop-timeout", "30", img)
	startingThenHealthy(t, c)

	if got, err := c.exec("psql", "-X", "-At", "-h", "127.0.0.1", "-U", "postgres",
		"-c", "SELECT name FROM products ORDER BY id", "postgres"); err != nil || got != "kettle\nteapot\nmug" {
		t.Errorf("seeded products: %q, %v", got, err)
	}
	// The password helper: a login over TCP from outside loopback needs it.
	ip := c.inspect("range .NetworkSettings.Networks}}{{.IPAddress}}{{end")
	if got, err := c.exec("env", "PGPASSWORD=change-me", "psql", "-X", "-At", "-h", ip, "-U", "postgres", "-c", "SELECT 1", "postgres"); err != nil || got != "1" {
		t.Errorf("password login from %s: %q, %v", ip, got, err)
	}
	if u := c.userOf("mainstay"); u != "0" {
		t.Errorf("mainstay runs as uid %s, want root", u)
	}
	if u, pg := c.userOf("postgres -D"), c.uidOf("postgres"); u != pg {
		t.Errorf("postgres runs as uid %s, want postgres's %s (--user postgres)", u, pg)
	}

	stopCleanly(t, c, "database system is shut down")
	docker(t, "start", c.name)
	c.waitLogs(healthy, `msg="main in the foreground"`, 2)
	logs := c.logs()
	if n := strings.Count(logs, "database system was shut down at"); n != 2 {
		t.Errorf("%d clean starts logged, want 2 (initdb's shutdown, then docker stop's)", n)
	}
	for _, bad := range []string{"not properly shut down", "automatic recovery", "database system was interrupted"} {
		if strings.Contains(logs, bad) {
			t.Errorf("the start after docker stop logged %q", bad)
		}
	}
	if !strings.Contains(logs, "once marker exists: skipping the helpers") {
		t.Error("the second start did not skip the helpers")
	}
	stopCleanly(t, c, "database system is shut down")
}

// TestDockerRecipeRedis builds docs/recipes/redis.md's image and runs it
// as the page does.
func TestDockerRecipeRedis(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	img := d.recipeImage(t, "redis.md")
	c := d.runDetached(t, "", "--stop-timeout", "30", img)
	startingThenHealthy(t, c)
	checkRedisSeed(t, c)
	if u := c.userOf("mainstay"); u != "0" {
		t.Errorf("mainstay runs as uid %s, want root", u)
	}
	if u, redis := c.userOf("redis-server"), c.uidOf("redis"); u != redis {
		t.Errorf("redis-server runs as uid %s, want redis's %s (--user redis)", u, redis)
	}

	stopCleanly(t, c, "Redis is now ready to exit, bye bye")
	if logs := c.logs(); !strings.Contains(logs, "DB saved on disk") {
		t.Error("Redis did not save on docker stop")
	}
	docker(t, "start", c.name)
	c.waitLogs(healthy, `msg="main in the foreground"`, 2)
	if !strings.Contains(c.logs(), "once marker exists: skipping the helpers") {
		t.Error("the second start did not skip the helpers")
	}
	checkRedisSeed(t, c) // now loaded from the volume's dump.rdb
	stopCleanly(t, c, "Redis is now ready to exit, bye bye")
}

func checkRedisSeed(t *testing.T, c *container) {
	t.Helper()
	if got, err := c.exec("redis-cli", "-e", "GET", "greeting"); got != "hello, world" || err != nil {
		t.Errorf("GET greeting: %q, %v", got, err)
	}
	if got, err := c.exec("redis-cli", "-e", "LRANGE", "queue", "0", "-1"); got != "a\nb\nc" || err != nil {
		t.Errorf("LRANGE queue: %q, %v", got, err)
	}
}

// TestDockerReadmeExample builds the README's example (USER postgres:
// mainstay itself is not root) and runs it with the README's --stop-timeout.
// It has no HEALTHCHECK and no once marker: its helpers run at every start,
// which the recipe's schema and seed allow.
func TestDockerReadmeExample(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	img := d.readmeImage(t)
	c := d.runDetached(t, "", "--stop-timeout", "30", img)
	c.waitLogs(healthy, `msg="main in the foreground"`, 1)
	if got, err := c.exec("psql", "-X", "-At", "-h", "127.0.0.1", "-U", "postgres",
		"-c", "SELECT name FROM products ORDER BY id", "postgres"); err != nil || got != "kettle\nteapot\nmug" {
		t.Errorf("seeded products: %q, %v", got, err)
	}
	pg := c.uidOf("postgres")
	if u := c.userOf("mainstay"); u != pg {
		t.Errorf("mainstay runs as uid %s, want postgres's %s (USER postgres)", u, pg)
	}
	if n := strings.Count(c.logs(), `msg="helper succeeded"`); n != 2 {
		t.Errorf("%d helpers succeeded, want 2", n)
	}

	stopCleanly(t, c, "database system is shut down")
	docker(t, "start", c.name)
	c.waitLogs(healthy, `msg="main in the foreground"`, 2)
	logs := c.logs()
	if n := strings.Count(logs, "database system was shut down at"); n != 2 {
		t.Errorf("%d clean starts logged, want 2", n)
	}
	if strings.Contains(logs, "automatic recovery") {
		t.Error("the start after docker stop ran crash recovery")
	}
	stopCleanly(t, c, "database system is shut down")
}

// TestDockerReadOnly runs the Redis recipe's image with a read-only root
// file system and a tmpfs for the ready file's directory: mainstay, its
// ready file, its --ready notify (an abstract socket, no file) and the
// HEALTHCHECK work there.
func TestDockerReadOnly(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	img := d.recipeImage(t, "redis.md")
	c := d.runDetached(t, "", "--read-only", "--tmpfs", "/run/mainstay", img)
	startingThenHealthy(t, c)
	checkRedisSeed(t, c)
	if out, err := c.exec("touch", "/probe"); err == nil {
		t.Errorf("the root file system is writable: %s", out)
	}
	if mounts, _ := c.exec("cat", "/proc/mounts"); !strings.Contains(mounts, "tmpfs /run/mainstay tmpfs") {
		t.Errorf("/run/mainstay is not a tmpfs:\n%s", mounts)
	}
	stopCleanly(t, c, "Redis is now ready to exit, bye bye")
}

// TestDockerRecipeWebCacheCron builds docs/recipes/web-cache-cron.md's
// image and runs it as the page does: Apache answers, memcached runs as a
// sidecar and no cron daemon at all, the HEALTHCHECK goes starting →
// healthy, memcached stopped by hand comes back, the heartbeat job's run
// (the first whole minute after Apache was ready: up to a minute's wait)
// is in docker logs with its [heartbeat] prefix and mainstay's lines
// about it, and its file, www-data's, is what Apache serves; docker stop
// ends main, then memcached, with exit code 0; the next docker start is
// healthy again.
func TestDockerRecipeWebCacheCron(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	img := d.recipeImage(t, "web-cache-cron.md")
	c := d.runDetached(t, "", img)
	startingThenHealthy(t, c)
	get := func(path string) (string, error) {
		return c.exec("bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80; printf 'GET "+path+" HTTP/1.0\\r\\n\\r\\n' >&3; cat <&3")
	}
	if got, err := get("/"); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Errorf("Apache: %.40q, %v", got, err)
	}
	memcached := "exec 3<>/dev/tcp/127.0.0.1/11211; printf 'version\\r\\n' >&3; head -n 1 <&3"
	if got, err := c.exec("bash", "-c", memcached); !strings.HasPrefix(got, "VERSION ") {
		t.Errorf("memcached: %q, %v", got, err)
	}
	var cache int
	for _, p := range c.top() {
		if strings.HasPrefix(p.args, "memcached ") {
			cache = p.pid
		}
		if strings.HasPrefix(p.args, "cron") {
			t.Errorf("a cron daemon runs: %+v", p)
		}
	}
	if cache == 0 {
		t.Fatalf("no memcached in docker top: %+v", c.top())
	}
	// The page's "docker exec web pkill memcached" (memcached exits 0 on
	// SIGTERM); restart=always brings it back.
	if out, err := c.exec("pkill", "memcached"); err != nil {
		t.Errorf("docker exec pkill memcached: %v: %s", err, out)
	}
	c.waitLogs(long, `msg="sidecar exited; restarting" sidecar=cache`, 1)
	waitFor(t, long, "memcached serving again", func() bool {
		got, _ := c.exec("bash", "-c", memcached)
		return strings.HasPrefix(got, "VERSION ")
	})

	// The job, within a minute and a bit.
	c.waitLogs(healthy, `msg="cron run succeeded" cron=heartbeat`, 1)
	logs := c.logs()
	var stamps []string
	for _, line := range strings.Split(logs, "\n") {
		if s, ok := strings.CutPrefix(line, "[heartbeat] "); ok {
			stamps = append(stamps, s)
		}
	}
	if len(stamps) == 0 || !strings.Contains(logs, `msg="cron entry scheduled" cron=heartbeat schedule="* * * * *"`) ||
		!strings.Contains(logs, `msg="cron run started" cron=heartbeat`) {
		t.Fatalf("no [heartbeat] line, or no run logged, in docker logs:\n%s", logs)
	}
	stamp, err := time.Parse(time.RFC3339, stamps[0])
	if err != nil || stamp.Second() != 0 {
		t.Errorf("[heartbeat] %q, want a time on the minute", stamps[0])
	}
	if owner, err := c.exec("stat", "-c", "%U", "/var/www/html/status/heartbeat.txt"); owner != "www-data" || err != nil {
		t.Errorf("the job's file is %q's (%v), want www-data's (user=www-data)", owner, err)
	}
	served, err := get("/status/heartbeat.txt")
	body := served[strings.LastIndex(served, "\n")+1:]
	if err != nil || !strings.HasPrefix(served, "HTTP/1.1 200") || !slices.Contains(stamps, body) && !strings.Contains(c.logs(), "[heartbeat] "+body) {
		t.Errorf("GET /status/heartbeat.txt: %q, %v; want a time the job printed, %q", served, err, stamps)
	}

	c.stop()
	if code := c.waitExited(stopped); code != 0 {
		t.Errorf("exit code after docker stop: %d, want 0", code)
	}
	var order []string
	for _, line := range strings.Split(c.logs(), "\n") {
		switch {
		case strings.Contains(line, `msg="main exited"`):
			order = append(order, "main")
		case strings.Contains(line, `msg="stopping sidecar" sidecar=cache`):
			order = append(order, "cache")
		}
	}
	if strings.Join(order, " ") != "main cache" {
		t.Errorf("stop order %v, want main cache", order)
	}
	docker(t, "start", c.name)
	c.waitLogs(long, `msg="main in the foreground"`, 2)
	c.waitHealth(healthy, "healthy")
	c.stop()
	if code := c.waitExited(stopped); code != 0 {
		t.Errorf("exit code after the second docker stop: %d, want 0", code)
	}
}
