//go:build e2e

package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDockerComposeApp runs docs/recipes/app.md's docker-compose.yml: the
// app's image (that page's) beside the database's (postgresql.md's). The
// app waits for db with --wait-for, migrates it with --before, and is
// healthy once its HTTP app answers from the database; docker-compose stop
// ends both.
func TestDockerComposeApp(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		t.Fatal("docker-compose is not installed: the Docker tier needs it")
	}
	dbImg, appImg := d.recipeImage(t, "postgresql.md"), d.recipeImage(t, "app.md")
	dir := t.TempDir()
	// The two build contexts the compose file names.
	d.recipeContext(t, "postgresql.md", filepath.Join(dir, "shop-db"))
	d.recipeContext(t, "app.md", filepath.Join(dir, "shop-app"))
	writeFiles(t, dir, map[string]string{"docker-compose.yml": readRecipe(t, "app.md").files["docker-compose.yml"]})
	c := &compose{t: t, project: d.name(t, ""), file: filepath.Join(dir, "docker-compose.yml")}
	// The images are built already: tagged PROJECT_db and PROJECT_app, up
	// builds nothing.
	for svc, img := range map[string]string{"db": dbImg, "app": appImg} {
		docker(t, "tag", img, c.project+"_"+svc)
		t.Cleanup(func() { _, _ = dockerCmd("rmi", c.project+"_"+svc) })
	}
	c.downOnCleanup()

	c.run("up", "-d")
	db, app := c.service("db"), c.service("app")
	app.waitHealth(healthy, "healthy")
	if got, err := app.exec("busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/cgi-bin/orders"); got != "orders: 0" || err != nil {
		t.Errorf("GET /cgi-bin/orders: %q, %v", got, err)
	}
	logs := app.logs()
	if n := strings.Count(logs, `msg="before task succeeded"`); n != 1 {
		t.Errorf("%d before tasks succeeded, want 1:\n%s", n, logs)
	}
	var migrated, mainStarted time.Time
	for _, line := range strings.Split(logs, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		at, _ := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[1], "time="))
		switch {
		case strings.Contains(line, `msg="before task succeeded"`):
			migrated = at
		case strings.Contains(line, `msg="main started"`):
			mainStarted = at
		}
	}
	if migrated.IsZero() || mainStarted.Before(migrated) {
		t.Errorf("main started at %s, the migration succeeded at %s", mainStarted, migrated)
	}
	t.Logf("migration done %s, main started %s later; the app's log:\n%s",
		migrated.Format(time.StampMilli), mainStarted.Sub(migrated).Round(time.Millisecond), logs)

	c.run("stop")
	if s := db.state(); s.Running || s.ExitCode != 0 {
		t.Errorf("db after docker-compose stop: running %v, exit code %d, want exited 0", s.Running, s.ExitCode)
	}
	if s := app.state(); s.Running || (s.ExitCode != 143 && s.ExitCode != 0) {
		t.Errorf("app after docker-compose stop: running %v, exit code %d, want exited 143 (httpd killed by SIGTERM)", s.Running, s.ExitCode)
	}
}
