//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// goImage is the name of the Go image that the README's multi-stage
// Dockerfile builds FROM.
const goImage = "golang:1.26-bookworm"

// goImageDockerfile makes a stand-in for the official Go image from
// Debian's base: git (the README's build command runs git describe) and
// ca-certificates from Debian, and this machine's Go toolchain, which the
// build context carries as go/. The build inside downloads modules from the
// Go proxy as the host does, so it also trusts what the host trusts: the
// host's CA bundle replaces Debian's (a network that inspects TLS has its
// own CA there; elsewhere the two are the same).
const goImageDockerfile = `FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY go /usr/local/go
ENV GOTOOLCHAIN=local GOPATH=/go PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /go
`

// hostCAs is the host's CA bundle (Debian's ca-certificates).
const hostCAs = "/etc/ssl/certs/ca-certificates.crt"

var (
	goImageOnce sync.Once
	goImageErr  error
)

// needGoImage builds golang:1.26-bookworm from Debian's base and
// /usr/local/go, unless the image there was built from the same base,
// Dockerfile and toolchain (a label holds their hash).
func needGoImage(t *testing.T) {
	t.Helper()
	goImageOnce.Do(func() { goImageErr = buildGoImage() })
	if goImageErr != nil {
		t.Fatal(goImageErr)
	}
}

func buildGoImage() error {
	goroot := "/usr/local/go"
	ver, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return fmt.Errorf("the Go toolchain for %s: %v", goImage, err)
	}
	if !strings.HasPrefix(string(ver), "go1.26") {
		return fmt.Errorf("%s/VERSION is %q: %s needs Go 1.26", goroot, strings.SplitN(string(ver), "\n", 2)[0], goImage)
	}
	base, err := dockerCmd("image", "inspect", "--format", "{{.Id}}", "debian:bookworm-slim")
	if err != nil {
		return fmt.Errorf("debian:bookworm-slim: %v: %s", err, base)
	}
	cas, err := os.ReadFile(hostCAs)
	if err != nil {
		return fmt.Errorf("the host's CA bundle for %s: %v", goImage, err)
	}
	sum := sha256.Sum256([]byte(base + "\n" + goImageDockerfile + "\n" + string(ver) + "\n" + string(cas)))
	hash := hex.EncodeToString(sum[:8])
	const label = "dev.mainstay.e2e.recipe"
	if got, _ := dockerCmd("image", "inspect", "--format", "{{index .Config.Labels \""+label+"\"}}", goImage); got == hash {
		return nil
	}
	dir, err := os.MkdirTemp("", "mainstay-e2e-golang-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(goImageDockerfile), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "ca-certificates.crt"), cas, 0o644); err != nil {
		return err
	}
	// The context is a tar stream of the Dockerfile, the CA bundle and
	// GOROOT as go/.
	start := time.Now()
	build := exec.Command("sh", "-c", `tar -c -C "$1" Dockerfile ca-certificates.crt -C "$(dirname "$2")" --transform "s|^$(basename "$2")|go|" "$(basename "$2")" |
		docker build --force-rm --network host --label "$3" -t "$4" -`, "sh", dir, goroot, label+"="+hash, goImage)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %v\n%s", goImage, err, out)
	}
	fmt.Fprintf(os.Stderr, "e2e: built image %s in %s\n", goImage, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// TestDockerMultiStage builds the README's multi-stage Dockerfile as
// written, FROM golang:1.26-bookworm, on a clone of this repository (its
// committed state, with .git, for git describe), and checks that the image's
// mainstay is a static binary reporting the clone's version.
func TestDockerMultiStage(t *testing.T) {
	t.Parallel()
	d := needDocker(t)
	needGoImage(t)
	if runtime.GOARCH != "amd64" {
		t.Skip("the README's build targets x86-64")
	}
	img := d.image(t, "multistage", func(t *testing.T, dir string) {
		if out, err := exec.Command("git", "clone", "-q", "..", dir).CombinedOutput(); err != nil {
			t.Fatalf("git clone: %v\n%s", err, out)
		}
		writeFiles(t, dir, map[string]string{"Dockerfile": readmeDockerfile(t, "## Install", 1)})
	})
	c := d.newContainer(t, "")
	out := docker(t, "run", "--name", c.name, img, "mainstay", "--version")
	if clone := gitDescribe(t); !strings.Contains(out, clone) {
		t.Errorf("mainstay --version in the image: %q, want the checkout's %q", out, clone)
	}
	// Static: it runs in an image without a C library as well.
	if ldd, _ := dockerCmd("run", "--rm", "--entrypoint", "sh", img, "-c", "ldd /usr/local/bin/mainstay 2>&1"); !strings.Contains(ldd, "not a dynamic executable") {
		t.Errorf("the image's mainstay is not static: %s", ldd)
	}
}

// gitDescribe is what the README's build command stamps into a checkout
// of this repository's HEAD.
func gitDescribe(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "describe", "--tags", "--always").CombinedOutput()
	if err != nil {
		t.Fatalf("git describe: %v\n%s", err, out)
	}
	return strings.TrimSpace(string(out))
}
