package main

// This file enforces the one-owner-of-wait4 rule (STYLE.md, DESIGN.md): only
// package reaper may wait for a child process. exec.Cmd's Wait, Run, Output
// and CombinedOutput all wait internally, and either they or the reaper
// would lose the exit status ("waitid: no child processes"). So do
// os.Process.Wait and direct wait4/waitid calls.

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

// waiters lists what waits for a child: methods by receiver type
// ("pkgpath.Type"), and package functions by package path.
var (
	waitMethods = map[string][]string{
		"os/exec.Cmd": {"Wait", "Run", "Output", "CombinedOutput"},
		"os.Process":  {"Wait"},
	}
	waitFuncs = map[string][]string{
		"syscall":               {"Wait4", "Waitid"},
		"golang.org/x/sys/unix": {"Wait4", "Waitid"},
	}
)

// typeChecker type-checks packages from source. Its importer caches every
// package it loaded, so one is shared by the tests of this file.
type typeChecker struct {
	fset *token.FileSet
	imp  types.Importer
}

var (
	checkerOnce sync.Once
	checker     *typeChecker
)

func sharedChecker() *typeChecker {
	checkerOnce.Do(func() {
		fset := token.NewFileSet()
		checker = &typeChecker{fset: fset, imp: importer.ForCompiler(fset, "source", nil)}
	})
	return checker
}

// waitCalls type-checks files as package path and returns every use of a
// waiter in them, as "file:line: what". A method value or expression
// (f := cmd.Wait, (*exec.Cmd).Run) counts as a use, as do promoted methods
// of a struct embedding *exec.Cmd.
func (c *typeChecker) waitCalls(path string, files []*ast.File) ([]string, error) {
	info := &types.Info{
		Selections: map[*ast.SelectorExpr]*types.Selection{},
		Uses:       map[*ast.Ident]types.Object{},
	}
	var typeErrs []error
	conf := types.Config{Importer: c.imp, Error: func(err error) { typeErrs = append(typeErrs, err) }}
	if _, err := conf.Check(path, c.fset, files, info); err != nil {
		return nil, fmt.Errorf("type-checking %s: %w", path, errors.Join(typeErrs...))
	}
	var found []string
	report := func(pos token.Pos, what string) {
		p := c.fset.Position(pos)
		found = append(found, fmt.Sprintf("%s:%d: %s", p.Filename, p.Line, what))
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if s, ok := info.Selections[sel]; ok {
				fn, ok := s.Obj().(*types.Func)
				if !ok {
					return true
				}
				recv := fn.Type().(*types.Signature).Recv()
				if recv == nil {
					return true
				}
				t := recv.Type()
				if p, ok := t.(*types.Pointer); ok {
					t = p.Elem()
				}
				named, ok := t.(*types.Named)
				if !ok || named.Obj().Pkg() == nil {
					return true
				}
				key := named.Obj().Pkg().Path() + "." + named.Obj().Name()
				if contains(waitMethods[key], fn.Name()) {
					report(sel.Sel.Pos(), fmt.Sprintf("(*%s).%s", key, fn.Name()))
				}
				return true
			}
			// A qualified identifier: pkg.Func.
			if fn, ok := info.Uses[sel.Sel].(*types.Func); ok && fn.Pkg() != nil {
				if contains(waitFuncs[fn.Pkg().Path()], fn.Name()) {
					report(sel.Sel.Pos(), fn.Pkg().Path()+"."+fn.Name())
				}
			}
			return true
		})
	}
	return found, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// moduleRoot walks up from the test's directory to go.mod and returns the
// directory and the module path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`)
				}
			}
			t.Fatalf("%s/go.mod has no module line", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// excluded are the module's directories the rule does not apply to: the
// reaper owns wait4, and e2e drives the built binary from outside.
var excluded = []string{"reaper", "e2e"}

// modulePackages parses every non-test .go file of the module outside the
// excluded directories, grouped by directory (relative to root). Files
// that the current platform's build would not compile are listed in skipped.
func modulePackages(t *testing.T, fset *token.FileSet, root string) (pkgs map[string][]*ast.File, skipped []string) {
	t.Helper()
	pkgs = map[string][]*ast.File{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			name := d.Name()
			switch {
			case rel == ".":
				return nil
			case contains(excluded, rel), strings.HasPrefix(name, "."), strings.HasPrefix(name, "_"), name == "testdata", name == "vendor":
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.Dir(path)
		if ok, err := build.Default.MatchFile(dir, d.Name()); err != nil || !ok {
			skipped = append(skipped, rel)
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		relDir := filepath.Dir(rel)
		pkgs[relDir] = append(pkgs[relDir], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs, skipped
}

// TestNoWaitOutsideReaper fails when code outside reaper/ waits for a child
// itself instead of going through the reaper.
func TestNoWaitOutsideReaper(t *testing.T) {
	c := sharedChecker()
	root, module := moduleRoot(t)
	pkgs, skipped := modulePackages(t, c.fset, root)
	if len(skipped) > 0 {
		t.Logf("not checked (build constraints exclude them on %s/%s): %v", build.Default.GOOS, build.Default.GOARCH, skipped)
	}
	// Guard against a walk that finds nothing and so passes vacuously.
	for _, must := range []string{"cmd/mainstay", "main", "readiness", "helpers"} {
		if len(pkgs[must]) == 0 {
			t.Errorf("no files found in %s/: the walk is wrong", must)
		}
	}
	for dir := range pkgs {
		if dir == "reaper" || strings.HasPrefix(dir, "reaper/") {
			t.Errorf("walked into excluded directory %s", dir)
		}
	}
	dirs := make([]string, 0, len(pkgs))
	for dir := range pkgs {
		dirs = append(dirs, dir)
	}
	sort.Strings(dirs)
	for _, dir := range dirs {
		path := module
		if dir != "." {
			path += "/" + filepath.ToSlash(dir)
		}
		found, err := c.waitCalls(path, pkgs[dir])
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			rel, _ := filepath.Rel(root, f)
			t.Errorf("%s: only package reaper may wait for a child; start it with the Runner (*reaper.Reaper) instead", rel)
		}
	}
}

// The checker must flag every way of waiting, and nothing else: the same
// checker on small programs whose verdict is known.
func TestNoWaitChecker(t *testing.T) {
	tests := []struct {
		name string
		body string   // the body of func f(ctx context.Context, r *reaper.Reaper, c *exec.Cmd)
		want []string // what must be flagged, in order
	}{
		{"Run on a local from exec.Command", `cmd := exec.Command("x"); _ = cmd.Run()`, []string{"(*os/exec.Cmd).Run"}},
		{"Run on an exec.Command chain", `_ = exec.Command("x").Run()`, []string{"(*os/exec.Cmd).Run"}},
		{"CombinedOutput on a CommandContext chain", `_, _ = exec.CommandContext(ctx, "x").CombinedOutput()`, []string{"(*os/exec.Cmd).CombinedOutput"}},
		{"Wait on a parameter", `_ = c.Start(); _ = c.Wait()`, []string{"(*os/exec.Cmd).Wait"}},
		{"Output on a struct field", `s := struct{ cmd *exec.Cmd }{c}; _, _ = s.cmd.Output()`, []string{"(*os/exec.Cmd).Output"}},
		{"method value", `w := c.Wait; _ = w()`, []string{"(*os/exec.Cmd).Wait"}},
		{"method expression", `_ = (*exec.Cmd).Run(c)`, []string{"(*os/exec.Cmd).Run"}},
		{"deferred and in a goroutine", `defer c.Wait(); go c.Run()`, []string{"(*os/exec.Cmd).Wait", "(*os/exec.Cmd).Run"}},
		{"promoted through embedding", `j := struct{ *exec.Cmd }{c}; _ = j.Run()`, []string{"(*os/exec.Cmd).Run"}},
		{"os.Process.Wait", `_, _ = c.Process.Wait()`, []string{"(*os.Process).Wait"}},
		{"unix.Wait4", `var ws unix.WaitStatus; _, _ = unix.Wait4(-1, &ws, 0, nil)`, []string{"golang.org/x/sys/unix.Wait4"}},
		{"syscall.Wait4", `var ws syscall.WaitStatus; _, _ = syscall.Wait4(-1, &ws, 0, nil)`, []string{"syscall.Wait4"}},

		// Negative controls.
		{"Proc.Wait through the reaper", `p, _ := r.Start(reaper.Spec{Argv: []string{"x"}}); _ = p.Wait()`, nil},
		{"Reaper.Run is not Cmd.Run", `_, _ = r.Run(ctx, reaper.Spec{Argv: []string{"x"}})`, nil},
		{"Start alone", `_ = exec.Command("x").Start()`, nil},
		{"other Wait methods", `var wg sync.WaitGroup; wg.Wait(); var ws syscall.WaitStatus; _ = ws.Exited()`, nil},
		{"a local function named Wait", `Wait := func() error { return nil }; _ = Wait()`, nil},
	}
	c := sharedChecker()
	root, _ := moduleRoot(t)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := `package snippet

import (
	"context"
	"os/exec"
	"sync"
	"syscall"

	"github.com/mainstay-dev/mainstay/reaper"
	"golang.org/x/sys/unix"
)

var (
	_ sync.Mutex
	_ syscall.Signal
	_ unix.Signal
)

func f(ctx context.Context, r *reaper.Reaper, c *exec.Cmd) {
	` + tt.body + `
}
`
			// A file name inside the module, so its imports resolve as the
			// module's own would.
			name := filepath.Join(root, fmt.Sprintf("snippet%d.go", i))
			f, err := parser.ParseFile(c.fset, name, src, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			found, err := c.waitCalls(fmt.Sprintf("example.com/snippet%d", i), []*ast.File{f})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range found {
				_, what, _ := strings.Cut(s, ": ")
				got = append(got, what)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("flagged %q, want %q", got, tt.want)
			}
		})
	}
}
