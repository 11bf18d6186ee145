//go:build e2e

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// The Docker tier: mainstay under a real Docker engine. Every image is
// built from debian:bookworm-slim, which e2e/docker/base.sh makes with
// debootstrap (there is no registry), and the recipes' Dockerfiles are built
// as their pages show them, with `docker build --network host` so that their
// apt-get steps reach Debian's mirror as the host does. The mainstay in the
// images is the release build (e2e/release.sh, the README's command).
//
// Everything a run creates on the engine is named with the prefix
// mainstay-e2e-RUN- (RUN is random per test binary) and removed by the
// test that made it; images are shared by the tests of one run and
// untagged at its end, except their mainstay-e2e-NAME:cache tag, which
// keeps Docker's layer cache for the next run.

// dockerSetup is what every Docker test shares, made once per run.
type dockerSetup struct {
	run     string // mainstay-e2e-RUN-, the prefix of every name this run creates
	engine  string // the engine's version
	release string // directory with the release build of mainstay
	err     error  // why the setup failed (the tests fail with it)
	skip    string // why there is no Docker to test with (the tests skip)
}

var (
	dockerOnce sync.Once
	dockerEnv  dockerSetup

	imagesMu sync.Mutex
	images   = map[string]*sharedImage{}
)

// needDocker skips the test when no Docker daemon answers, and otherwise
// returns the shared setup: the base image and the release binary.
func needDocker(t *testing.T) *dockerSetup {
	t.Helper()
	dockerOnce.Do(func() { dockerEnv = setUpDocker() })
	if dockerEnv.skip != "" {
		t.Skip(dockerEnv.skip)
	}
	if dockerEnv.err != nil {
		t.Fatal(dockerEnv.err)
	}
	return &dockerEnv
}

func setUpDocker() (d dockerSetup) {
	out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput()
	if err != nil {
		d.skip = fmt.Sprintf("no Docker daemon answers (docker version: %v: %s): the Docker tier needs a running engine", err, strings.TrimSpace(string(out)))
		return d
	}
	d.engine = strings.TrimSpace(string(out))
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	d.run = "mainstay-e2e-" + hex.EncodeToString(b) + "-"
	if out, err := exec.Command("bash", "docker/base.sh").CombinedOutput(); err != nil {
		d.err = fmt.Errorf("e2e/docker/base.sh: %v\n%s", err, out)
		return d
	}
	d.release, err = os.MkdirTemp("", "mainstay-e2e-release-")
	if err != nil {
		d.err = err
		return d
	}
	if out, err := exec.Command("bash", "release.sh", filepath.Join(d.release, "mainstay")).CombinedOutput(); err != nil {
		d.err = fmt.Errorf("e2e/release.sh: %v\n%s", err, out)
	}
	return d
}

// dockerTeardown untags this run's images and removes the release build;
// TestMain calls it after the tests.
func dockerTeardown() {
	if dockerEnv.run == "" {
		return
	}
	imagesMu.Lock()
	defer imagesMu.Unlock()
	for _, img := range images {
		if img.tag != "" {
			_, _ = exec.Command("docker", "rmi", img.tag).CombinedOutput()
		}
	}
	os.RemoveAll(dockerEnv.release)
}

// dockerCmd runs docker with args and returns its output, trimmed.
func dockerCmd(args ...string) (string, error) {
	out, err := exec.Command("docker", args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// docker runs docker with args and fails the test when it fails.
func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := dockerCmd(args...)
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// name is a unique name for something the test creates on the engine.
func (d *dockerSetup) name(t *testing.T, what string) string {
	n := d.run + strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if what != "" {
		n += "-" + what
	}
	return n
}

// sharedImage is an image built once per run, whichever test needs it first.
type sharedImage struct {
	once sync.Once
	tag  string
	err  error
}

// image returns the tag of the image NAME, building it the first time with
// docker build --network host on the context that makeContext writes into
// an empty directory. The build log is kept in the failure message.
func (d *dockerSetup) image(t *testing.T, name string, makeContext func(t *testing.T, dir string)) string {
	t.Helper()
	imagesMu.Lock()
	img := images[name]
	if img == nil {
		img = &sharedImage{}
		images[name] = img
	}
	imagesMu.Unlock()
	img.once.Do(func() {
		ctx := t.TempDir()
		makeContext(t, ctx)
		img.tag, img.err = d.build(name, ctx)
	})
	if img.err != nil {
		t.Fatalf("image %s: %v", name, img.err)
	}
	return img.tag
}

// build builds the context in dir as mainstay-e2e-RUN-NAME and
// mainstay-e2e-NAME:cache; the image that the cache tag named before is
// removed when nothing else uses it.
func (d *dockerSetup) build(name, dir string) (string, error) {
	tag, cache := d.run+name, "mainstay-e2e-"+name+":cache"
	old, _ := dockerCmd("image", "inspect", "--format", "{{.Id}}", cache)
	start := time.Now()
	// --force-rm: a failed step leaves no container behind either.
	out, err := dockerCmd("build", "--force-rm", "--network", "host", "-t", tag, "-t", cache, dir)
	if err != nil {
		return "", fmt.Errorf("docker build: %v\n%s", err, out)
	}
	// The legacy builder keeps the image of each stage before the last,
	// untagged: remove it, it is no cache worth its size.
	for _, id := range stageImages(out) {
		_, _ = dockerCmd("rmi", id)
	}
	if id, _ := dockerCmd("image", "inspect", "--format", "{{.Id}}", cache); old != "" && id != old {
		_, _ = dockerCmd("rmi", old)
	}
	fmt.Fprintf(os.Stderr, "e2e: built image %s in %s\n", tag, time.Since(start).Round(100*time.Millisecond))
	return tag, nil
}

// stageImages are the images of the stages before the last one, read
// from the legacy builder's output: the last " ---> ID" before each FROM
// but the first.
func stageImages(buildOutput string) []string {
	var ids []string
	last := ""
	for _, line := range strings.Split(buildOutput, "\n") {
		line = strings.TrimSpace(line)
		if id, ok := strings.CutPrefix(line, "---> "); ok && !strings.Contains(id, " ") {
			last = id
		}
		if strings.HasPrefix(line, "Step ") && strings.Contains(line, " : FROM ") && last != "" {
			ids = append(ids, last)
		}
	}
	return ids
}

// writeFiles writes name → content under dir, making directories.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// copyRelease puts the release build of mainstay into a build context.
func (d *dockerSetup) copyRelease(t *testing.T, dir string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(d.release, "mainstay"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mainstay"), b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// toolbox is the image for the process tests: Debian's base with the
// release mainstay as its ENTRYPOINT, logging JSON; each test gives the
// flags and main (sh -c …) as docker run's arguments.
func (d *dockerSetup) toolbox(t *testing.T) string {
	return d.image(t, "toolbox", func(t *testing.T, dir string) {
		d.copyRelease(t, dir)
		writeFiles(t, dir, map[string]string{"Dockerfile": `FROM debian:bookworm-slim
COPY mainstay /usr/local/bin/mainstay
ENTRYPOINT ["mainstay", "--log-format", "json"]
`})
	})
}

// container is one container this test created; it is removed (with its
// anonymous volumes) when the test ends, and its log is shown when the
// test failed.
type container struct {
	t    *testing.T
	name string
}

// runDetached runs docker run -d --name NAME args... and returns the
// container.
func (d *dockerSetup) runDetached(t *testing.T, what string, args ...string) *container {
	t.Helper()
	c := d.newContainer(t, what)
	docker(t, append([]string{"run", "-d", "--name", c.name}, args...)...)
	return c
}

// newContainer names a container and registers its removal.
func (d *dockerSetup) newContainer(t *testing.T, what string) *container {
	c := &container{t: t, name: d.name(t, what)}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := dockerCmd("logs", c.name)
			t.Logf("docker logs %s:\n%s", c.name, logs)
		}
		_, _ = dockerCmd("rm", "-f", "-v", c.name)
	})
	return c
}

// inspect is docker inspect's answer for the field path (a Go template).
func (c *container) inspect(field string) string {
	c.t.Helper()
	return docker(c.t, "inspect", "--format", "{{"+field+"}}", c.name)
}

// state is the container's State: running, exit code, health.
type state struct {
	Status     string
	Running    bool
	ExitCode   int
	StartedAt  time.Time
	FinishedAt time.Time
	Health     *struct{ Status string }
}

func (c *container) state() state {
	c.t.Helper()
	var s state
	if err := json.Unmarshal([]byte(c.inspect("json .State")), &s); err != nil {
		c.t.Fatalf("docker inspect %s: %v", c.name, err)
	}
	return s
}

// logs is docker logs: main's and mainstay's output, stdout and stderr.
func (c *container) logs() string {
	c.t.Helper()
	return docker(c.t, "logs", c.name)
}

// records are mainstay's JSON log records in docker logs.
func (c *container) records(msg string) []logLine {
	var out []logLine
	for _, l := range parseLogs(c.logs()) {
		if l.str("msg") == msg {
			out = append(out, l)
		}
	}
	return out
}

// waitLogs waits until docker logs contains s, count times.
func (c *container) waitLogs(timeout time.Duration, s string, count int) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("%d× %q in docker logs %s", count, s, c.name), func() bool {
		return strings.Count(c.logs(), s) >= count
	})
}

// waitHealth waits until the HEALTHCHECK's status is want.
func (c *container) waitHealth(timeout time.Duration, want string) {
	c.t.Helper()
	waitFor(c.t, timeout, fmt.Sprintf("health %q of %s", want, c.name), func() bool {
		s := c.state()
		if s.Health == nil {
			c.t.Fatalf("%s has no HEALTHCHECK", c.name)
		}
		if !s.Running {
			c.t.Fatalf("%s exited (%d) while waiting for health %q", c.name, s.ExitCode, want)
		}
		return s.Health.Status == want
	})
}

// waitExited waits until the container is no longer running and returns
// its exit code.
func (c *container) waitExited(timeout time.Duration) int {
	c.t.Helper()
	var s state
	waitFor(c.t, timeout, c.name+" to exit", func() bool {
		s = c.state()
		return !s.Running
	})
	return s.ExitCode
}

// exec runs a command in the container and returns its output.
func (c *container) exec(args ...string) (string, error) {
	return dockerCmd(append([]string{"exec", c.name}, args...)...)
}

// zombies counts the unreaped children of the container's PID 1, read
// from the host's /proc. docker top cannot show them: on cgroup v1 a
// process leaves its cgroup when it exits, before it is reaped.
func (c *container) zombies() int {
	c.t.Helper()
	var pid int
	fmt.Sscan(c.inspect(".State.Pid"), &pid)
	n := 0
	for _, p := range children(pid) {
		if p.state == 'Z' {
			n++
		}
	}
	return n
}

// topProc is one line of docker top -eo pid,stat,uid,args, with the PID
// as the host sees it.
type topProc struct {
	pid       int
	stat, uid string
	args      string
}

func (c *container) top() []topProc {
	c.t.Helper()
	out := docker(c.t, "top", c.name, "-eo", "pid,stat,uid,args")
	var procs []topProc
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 4 {
			continue
		}
		var p topProc
		fmt.Sscan(f[0], &p.pid)
		p.stat, p.uid, p.args = f[1], f[2], strings.Join(f[3:], " ")
		procs = append(procs, p)
	}
	return procs
}

// stop runs docker stop with args and returns how long it took.
func (c *container) stop(args ...string) time.Duration {
	c.t.Helper()
	start := time.Now()
	docker(c.t, append(append([]string{"stop"}, args...), c.name)...)
	return time.Since(start)
}

// dockerRecipeTests are the pages of docs/recipes that a TestDocker test
// builds and runs; a new page needs one.
var dockerRecipeTests = map[string]string{
	"postgresql.md":     "TestDockerRecipePostgreSQL, TestDockerComposePostgreSQL",
	"redis.md":          "TestDockerRecipeRedis, TestDockerReadOnly",
	"web-cache-cron.md": "TestDockerRecipeWebCacheCron",
	"apache-tomcat.md":  "TestDockerRecipeApacheTomcat",
	"app.md":            "TestDockerComposeApp",
}

// TestDockerPagesTested: every recipe page has a Docker test, and every
// page with a Dockerfile says which engine version it was tested with (the
// one here, so that a new engine on the machines is noticed) and no longer
// that it was not built.
var engineNamed = regexp.MustCompile(`Docker Engine ([0-9][0-9A-Za-z.+~-]*[0-9A-Za-z])`)

func TestDockerPagesTested(t *testing.T) {
	d := needDocker(t)
	recipes, _ := filepath.Glob("../docs/recipes/*.md")
	if len(recipes) == 0 {
		t.Fatal("no pages in docs/recipes")
	}
	for _, page := range append([]string{"../README.md"}, recipes...) {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		if page != "../README.md" && dockerRecipeTests[filepath.Base(page)] == "" {
			t.Errorf("%s has no Docker test (dockerRecipeTests)", page)
		}
		// A page names the engine it was tested with; another engine here
		// (a newer Docker on a laptop) is worth a note, not a failure.
		if m := engineNamed.FindSubmatch(b); m == nil {
			t.Errorf("%s does not say which Docker Engine it was tested with (docker version --format '{{.Server.Version}}')", page)
		} else if string(m[1]) != d.engine {
			t.Logf("%s was tested with Docker Engine %s; this engine is %s", page, m[1], d.engine)
		}
		if strings.Contains(string(b), "was not built") || strings.Contains(string(b), "**not** built") {
			t.Errorf("%s still says its Dockerfile was not built", page)
		}
	}
}
