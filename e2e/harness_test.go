//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kjump/kjump/e2e/sched"
	"github.com/kjump/kjump/internal/vm"
)

// Scenario is one end-to-end test.
type Scenario struct {
	Name string
	// Pending, when set, says why the scenario is not yet part of make e2e
	// (and so of make test); it runs only when named in KJUMP_E2E.
	Pending string
	Timeout time.Duration // default 10 minutes
	// CPUs is the most vCPUs the scenario's machines have at once (each
	// machine runs them on one host thread, see S.Start, so this is a
	// weight that keeps a busy scenario from sharing the host with too
	// many others); default 1. Scenarios run concurrently while their CPUs fit in
	// KJUMP_E2E_JOBS (default: twice the host's CPU count); one needing more
	// runs alone.
	CPUs int
	// Exclusive names host state outside the run directory the scenario
	// changes ("make-deb": the repository's bin/ and out/); scenarios
	// naming the same never run at once.
	Exclusive []string
	Run       func(s *S) error
}

// makeDeb is the Exclusive of the scenarios that run make deb, which
// writes the repository's bin/ and out/.
var makeDeb = []string{"make-deb"}

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

	mu       sync.Mutex
	machines []startedVM
	peakCPUs int // most vCPUs running at once, checked against Scenario.CPUs
}

type startedVM struct {
	m    *vm.Machine
	cpus int
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
	// Every machine runs its vCPUs on one TCG thread. Multi-threaded TCG
	// races with the kernel's own code patching on a busy host: "Oops:
	// int3" at a jump label just patched, seen with 7.3, Debian's 6.12 and
	// stock 6.1, and the 6.1 test kernel (recalc_sigpending, in a CI run
	// of scenarios side by side). A 2-vCPU scenario used 0.93 host cores
	// on average anyway, and the guests still see all their CPUs.
	cfg.SingleThreadTCG = true
	m, err := vm.Start(s.Ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.countCPUs(m, cfg)
	s.T.Cleanup(m.Kill)
	s.T.Cleanup(func() {
		if s.T.Failed() {
			s.T.Logf("console log: %s", m.ConsolePath())
		}
	})
	return m, nil
}

// countCPUs adds a new machine's vCPUs to those still running (Wait and
// Kill return only once QEMU has exited) and keeps the peak.
func (s *S) countCPUs(m *vm.Machine, cfg vm.Config) {
	cpus := max(cfg.SMP, 1)
	if cfg.SingleThreadTCG {
		cpus = 1
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.machines = append(s.machines, startedVM{m, cpus})
	running := 0
	for _, v := range s.machines {
		select {
		case <-v.m.Exited():
		default:
			running += v.cpus
		}
	}
	s.peakCPUs = max(s.peakCPUs, running)
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

// TestScenarios runs the selected scenarios as subtests, at once as far as
// KJUMP_E2E_JOBS CPU tokens allow (default: twice the host's CPUs; 1 runs them one
// after another in the order given), and prints one
// "SCENARIO name: PASS|FAIL reason" line for each on stdout as it ends.
func TestScenarios(t *testing.T) {
	list, err := selected()
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := jobs()
	if err != nil {
		t.Fatal(err)
	}
	failed := make([]bool, len(list))
	sjobs := make([]sched.Job, len(list))
	for i, sc := range list {
		sjobs[i] = sched.Job{Name: sc.Name, CPUs: sc.CPUs, Locks: sc.Exclusive, Estimate: timeout(sc),
			Run: func() string {
				var report string
				report, failed[i] = runScenario(t, sc)
				return report
			}}
	}
	sched.Run(sjobs, tokens, os.Stdout)
	nfailed := 0
	for _, f := range failed {
		if f {
			nfailed++
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
	fmt.Printf("e2e: %d passed, %d failed\n", len(list)-nfailed, nfailed)
}

// jobs is the CPU token budget: KJUMP_E2E_JOBS, else twice the host's CPU
// count. A TCG guest's vCPU is idle much of a scenario (a 2-vCPU hibernate
// scenario used 0.93 host cores on average here), and the timing-sensitive
// scenarios passed with 2.5-5 vCPUs per core, so one token per core left
// half the machine idle.
func jobs() (int, error) {
	v := os.Getenv("KJUMP_E2E_JOBS")
	if v == "" {
		return 2 * runtime.NumCPU(), nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("KJUMP_E2E_JOBS=%q: want a number of CPUs, 1 or more", v)
	}
	return n, nil
}

func timeout(sc Scenario) time.Duration {
	if sc.Timeout == 0 {
		return 10 * time.Minute
	}
	return sc.Timeout
}

// runScenario runs one scenario as a subtest (t.Run may be called from
// several goroutines at once) and returns its SCENARIO report and whether
// it failed. Its timeout starts now, not while it waited for CPUs.
func runScenario(t *testing.T, sc Scenario) (report string, failed bool) {
	var runErr error
	var runDir, note string
	skipped := false
	passed := t.Run(sc.Name, func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		ctx, cancel := context.WithTimeout(t.Context(), timeout(sc))
		defer cancel()
		dir, err := vm.NewRunDir(sc.Name)
		if err != nil {
			runErr = err
			t.Fatal(err)
		}
		runDir = dir
		s := &S{Name: sc.Name, Ctx: ctx, T: t, Dir: dir}
		runErr = sc.Run(s)
		// Too low a CPUs overloads the host when scenarios run at once.
		s.mu.Lock()
		peak := s.peakCPUs
		s.mu.Unlock()
		if declared := max(sc.CPUs, 1); peak > declared {
			note = fmt.Sprintf("  %s: ran %d vCPUs at once but declares CPUs %d: set CPUs: %d in its register call\n", sc.Name, peak, declared, peak)
			t.Log(strings.TrimSpace(note))
		}
		if runErr != nil {
			t.Fatal(runErr)
		}
	})
	if passed && !skipped {
		return note + fmt.Sprintf("SCENARIO %s: PASS\n", sc.Name), false
	}
	reason := "failed (see test output)"
	switch {
	case runErr != nil:
		reason, _, _ = strings.Cut(runErr.Error(), "\n")
	case skipped:
		reason = "skipped, which does not count as a pass"
		t.Errorf("scenario %s was skipped", sc.Name)
	}
	report = note + fmt.Sprintf("SCENARIO %s: FAIL %s\n", sc.Name, reason)
	if runDir != "" {
		report += fmt.Sprintf("  logs: %s\n", runDir)
	}
	return report, true
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
