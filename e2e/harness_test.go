//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

// Scenario is one end-to-end test.
type Scenario struct {
	Name string
	// Pending, when set, says why the scenario is not yet part of make e2e
	// (and so of make test); it runs only when named in KJUMP_E2E.
	Pending string
	Timeout time.Duration // default 10 minutes
	Run     func(s *S) error
}

// scenarios is filled by the init functions of the scenario files.
var scenarios []Scenario

func register(sc Scenario) { scenarios = append(scenarios, sc) }

// Project binaries put into every initramfs, by image path.
var goPrograms = map[string]string{
	"bin/hibernate":      "./cmd/hibernate",
	"bin/resume":         "./cmd/resume",
	"bin/kjump-workload": "./e2e/workload",
}

var (
	goBins   map[string]string // image path -> built binary
	goBinErr error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kjump-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pkgs := make([]string, 0, len(goPrograms))
	for _, p := range goPrograms {
		pkgs = append(pkgs, p)
	}
	built, err := vm.BuildGo(dir, pkgs...)
	if err != nil {
		goBinErr = err
	} else {
		goBins = map[string]string{}
		for img, pkg := range goPrograms {
			goBins[img] = built[pkg]
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// S is a scenario's environment.
type S struct {
	Name string
	Ctx  context.Context
	T    *testing.T
	// Dir is the run directory (out/runs/<name>/<time>-<pid>): images,
	// disks and one sub-directory of logs per machine. The last few runs
	// are kept for post-mortems.
	Dir string
}

// Start boots a machine; its logs go to Dir/<cfg.Name> (default "vm"). It
// is killed when the scenario ends.
func (s *S) Start(cfg vm.Config) (*vm.Machine, error) {
	if cfg.Name == "" {
		cfg.Name = "vm"
	}
	cfg.RunDir = filepath.Join(s.Dir, cfg.Name)
	if err := os.Mkdir(cfg.RunDir, 0o755); err != nil {
		return nil, err
	}
	m, err := vm.Start(s.Ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.T.Cleanup(m.Kill)
	s.T.Cleanup(func() {
		if s.T.Failed() {
			s.T.Logf("console log: %s", m.ConsolePath())
		}
	})
	return m, nil
}

// Initramfs writes a busybox initramfs whose /init mounts the usual file
// systems, runs body (busybox sh) and powers off, and which holds the
// project binaries (/bin/hibernate, /bin/resume, /bin/kjump-workload) and
// any extra files. The body's exit status is printed as "E2E exit rc=N".
func (s *S) Initramfs(body string, extra map[string]vm.File) (string, error) {
	if goBinErr != nil {
		return "", goBinErr
	}
	files := map[string]vm.File{}
	for img, host := range goBins {
		files[img] = vm.File{Host: host}
	}
	for k, v := range extra {
		files[k] = v
	}
	path := filepath.Join(s.Dir, "initramfs.gz")
	for i := 2; exists(path); i++ {
		path = filepath.Join(s.Dir, fmt.Sprintf("initramfs-%d.gz", i))
	}
	err := vm.Initramfs{Init: initPrelude + body + initEpilogue, Files: files}.Write(path)
	return path, err
}

const initPrelude = `#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
exec </dev/console >/dev/console 2>&1
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
echo "E2E init: kernel $(uname -r), $(nproc) cpus"
e2e_body() {
`

const initEpilogue = `
}
e2e_body
echo "E2E exit rc=$?"
poweroff -f
`

// selected returns the scenarios to run: those not pending by default, or
// the comma-separated names in KJUMP_E2E ("all" for every one).
func selected() ([]Scenario, error) {
	want := os.Getenv("KJUMP_E2E")
	if want == "" || want == "all" {
		var list []Scenario
		for _, sc := range scenarios {
			if want == "all" || sc.Pending == "" {
				list = append(list, sc)
			}
		}
		return list, nil
	}
	var list []Scenario
	for _, name := range strings.Split(want, ",") {
		found := false
		for _, sc := range scenarios {
			if sc.Name == strings.TrimSpace(name) {
				list, found = append(list, sc), true
			}
		}
		if !found {
			return nil, fmt.Errorf("KJUMP_E2E: no scenario %q", name)
		}
	}
	return list, nil
}

// TestScenarios runs the selected scenarios as subtests and prints one
// "SCENARIO name: PASS|FAIL reason" line for each on stdout.
func TestScenarios(t *testing.T) {
	list, err := selected()
	if err != nil {
		t.Fatal(err)
	}
	failed := 0
	for _, sc := range list {
		var runErr error
		var runDir string
		skipped := false
		passed := t.Run(sc.Name, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			timeout := sc.Timeout
			if timeout == 0 {
				timeout = 10 * time.Minute
			}
			ctx, cancel := context.WithTimeout(t.Context(), timeout)
			defer cancel()
			dir, err := vm.NewRunDir(sc.Name)
			if err != nil {
				runErr = err
				t.Fatal(err)
			}
			runDir = dir
			s := &S{Name: sc.Name, Ctx: ctx, T: t, Dir: dir}
			runErr = sc.Run(s)
			if runErr != nil {
				t.Fatal(runErr)
			}
		})
		if passed && !skipped {
			fmt.Printf("SCENARIO %s: PASS\n", sc.Name)
			continue
		}
		failed++
		reason := "failed (see test output)"
		switch {
		case runErr != nil:
			reason, _, _ = strings.Cut(runErr.Error(), "\n")
		case skipped:
			reason = "skipped, which does not count as a pass"
			t.Errorf("scenario %s was skipped", sc.Name)
		}
		fmt.Printf("SCENARIO %s: FAIL %s\n", sc.Name, reason)
		if runDir != "" {
			fmt.Printf("  logs: %s\n", runDir)
		}
	}
	var pending []string
	for _, sc := range scenarios {
		if sc.Pending != "" && !contains(list, sc.Name) {
			pending = append(pending, fmt.Sprintf("%s (%s)", sc.Name, sc.Pending))
		}
	}
	if len(pending) > 0 {
		fmt.Printf("e2e: not run: %s\n", strings.Join(pending, ", "))
	}
	// The plain closing line CI reads.
	fmt.Printf("e2e: %d passed, %d failed\n", len(list)-failed, failed)
}

func contains(list []Scenario, name string) bool {
	for _, sc := range list {
		if sc.Name == name {
			return true
		}
	}
	return false
}

// expectAll expects each pattern in turn, returning the first failure.
func expectAll(m *vm.Machine, timeout time.Duration, patterns ...string) error {
	for _, p := range patterns {
		if _, err := m.ExpectString(p, timeout); err != nil {
			return err
		}
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
