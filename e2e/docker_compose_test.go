//go:build e2e

package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// compose runs docker-compose for one project and fails the test when it
// fails.
type compose struct {
	t       *testing.T
	project string
	file    string
}

// downOnCleanup removes the project (containers, networks, volumes) when
// the test ends, showing its logs first when the test failed.
func (c *compose) downOnCleanup() {
	c.t.Cleanup(func() {
		if c.t.Failed() {
			out, _ := exec.Command("docker-compose", "-p", c.project, "-f", c.file, "logs", "--no-color").CombinedOutput()
			c.t.Logf("docker-compose logs:\n%s", out)
		}
		_, _ = exec.Command("docker-compose", "-p", c.project, "-f", c.file, "down", "-v", "-t", "1").CombinedOutput()
	})
}

func (c *compose) run(args ...string) string {
	c.t.Helper()
	out, err := exec.Command("docker-compose", append([]string{"-p", c.project, "-f", c.file}, args...)...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("docker-compose %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// service is the container of a service (its first and only one).
func (c *compose) service(name string) *container {
	c.t.Helper()
	id := c.run("ps", "-q", name)
	if id == "" {
		c.t.Fatalf("docker-compose ps: no container for %s", name)
	}
	return &container{t: c.t, name: id}
}

// TestDockerComposePostgreSQL runs docs/recipes/postgresql.md's
// docker-compose.yml: docker-compose up -d starts app only once db is
// healthy, that is once db's helpers have succeeded; docker-compose stop
// stops both cleanly, exit code 0 each, read before down removes them.
func TestDockerComposePostgreSQL(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed: the Docker tier needs it")
	}
	img := d.recipeImage(t, "postgresql.md")
	dir := t.TempDir()
	d.recipeContext(t, "postgresql.md", dir)
	writeFiles(t, dir, map[string]string{"docker-compose.yml": readRecipe(t, "postgresql.md").files["docker-compose.yml"]})
	c := &compose{t: t, project: d.name(t, ""), file: filepath.Join(dir, "docker-compose.yml")}
	// Both services build "."; the image of that context is built already
	// (with --network host), so up finds PROJECT_db and PROJECT_app and
	// builds nothing.
	for _, svc := range []string{"db", "app"} {
		docker(t, "tag", img, c.project+"_"+svc)
		t.Cleanup(func() { _, _ = dockerCmd("rmi", c.project+"_"+svc) })
	}
	c.downOnCleanup()

	c.run("up", "-d")
	db, app := c.service("db"), c.service("app")
	if s := db.state(); s.Health == nil || s.Health.Status != "healthy" {
		t.Errorf("db is %+v once up -d returned, want healthy", s.Health)
	}
	waitFor(t, short, "the stand-in app's count of products, 3", func() bool {
		return contains(strings.Split(app.logs(), "\n"), "3")
	})
	var readyAt time.Time
	for _, line := range strings.Split(db.logs(), "\n") {
		if strings.Contains(line, `msg="ready file written"`) {
			f := strings.Fields(line)
			readyAt, _ = time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[1], "time="))
		}
	}
	appStarted := app.state().StartedAt
	if readyAt.IsZero() || !appStarted.After(readyAt) {
		t.Errorf("app started at %s, db's helpers were done (ready file written) at %s", appStarted, readyAt)
	}
	t.Logf("db's helpers done at %s, app started %s later", readyAt.Format(time.StampMilli), appStarted.Sub(readyAt).Round(time.Millisecond))

	start := time.Now()
	c.run("stop")
	t.Logf("docker-compose stop took %s", time.Since(start).Round(time.Millisecond))
	for _, svc := range []*container{db, app} {
		if s := svc.state(); s.Running || s.ExitCode != 0 {
			t.Errorf("%s after docker-compose stop: running %v, exit code %d, want exited 0", svc.inspect(".Name"), s.Running, s.ExitCode)
		}
	}
	if !strings.Contains(db.logs(), "database system is shut down") {
		t.Error("db did not shut down cleanly")
	}
	if !strings.Contains(app.logs(), `msg="stopping leftover processes"`) {
		t.Error("app's mainstay did not sweep the sleep its shell left")
	}
}
