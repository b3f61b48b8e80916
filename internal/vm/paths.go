// Package vm is the test harness that boots kernels under QEMU: it finds or
// builds the test kernel, builds busybox initramfs images, starts QEMU with
// its serial console wired to the Go process, and offers expect-style
// assertions on the console.
package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

const module = "module github.com/kjump/kjump"

// RepoRoot returns the kjump source tree containing the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte(module+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("vm: not inside the kjump source tree (no go.mod with " + module + ")")
		}
		dir = parent
	}
}

// CacheDir is where built kernels and downloads live: $KJUMP_CACHE, by
// default /var/cache/kjump. It is outside the repository so that clones and
// `git clean` keep the 10-minute kernel build.
func CacheDir() string {
	if d := os.Getenv("KJUMP_CACHE"); d != "" {
		return d
	}
	return "/var/cache/kjump"
}

var (
	scriptsMu sync.Mutex
	scripts   = map[string]*scriptRun{} // by script and arguments
)

// scriptRun is one script's result; scenarios running at once wait only
// for the script they need (each script locks its own cache entry).
type scriptRun struct {
	once sync.Once
	path string
	err  error
}

// Kernel returns the path of the kjump test kernel (Linux 6.1 built by
// kernel/build.sh, which builds it on first use and caches it), or
// $KJUMP_KERNEL if set.
func Kernel() (string, error) {
	if p := os.Getenv("KJUMP_KERNEL"); p != "" {
		return existing("KJUMP_KERNEL", p)
	}
	return BuildKernel("6.1")
}

// BuildKernel returns the test kernel built from Debian's
// linux-source-VERSION, building it if it is not cached yet.
func BuildKernel(version string) (string, error) {
	return script("kernel/build.sh", version)
}

// DistroKernel returns a distribution kernel of Linux VERSION built by
// kernel/distro-vm.sh (Debian's config plus KEXEC_JUMP, drivers as
// modules under lib/modules/ next to it), building it if not cached yet.
func DistroKernel(version string) (string, error) {
	return script("kernel/distro-vm.sh", version)
}

// StockKernel returns Debian's stock kernel image (no CONFIG_KEXEC_JUMP),
// downloaded by kernel/stock.sh, or $KJUMP_STOCK_KERNEL if set.
func StockKernel() (string, error) {
	if p := os.Getenv("KJUMP_STOCK_KERNEL"); p != "" {
		return existing("KJUMP_STOCK_KERNEL", p)
	}
	return script("kernel/stock.sh")
}

func existing(env, p string) (string, error) {
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("vm: %s: %w", env, err)
	}
	return p, nil
}

// script runs one of the repository's kernel scripts once per process and
// returns the path it prints. Its progress output goes to our stderr.
func script(name string, args ...string) (string, error) {
	key := strings.Join(append([]string{name}, args...), " ")
	scriptsMu.Lock()
	r := scripts[key]
	if r == nil {
		r = &scriptRun{}
		scripts[key] = r
	}
	scriptsMu.Unlock()
	r.once.Do(func() { r.path, r.err = runScript(name, args...) })
	return r.path, r.err
}

func runScript(name string, args ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, name), args...)
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(os.Stderr, &stderr)
	cmd.Env = append(os.Environ(), "KJUMP_CACHE="+CacheDir())
	if err := cmd.Run(); err != nil {
		// The script's own last message names the cause; the log tail
		// before it is already on stderr.
		msg := ""
		for _, l := range strings.Split(stderr.String(), "\n") {
			if strings.HasPrefix(l, name+":") {
				msg = l
			}
		}
		if msg == "" {
			msg = fmt.Sprintf("%s %s: %v", name, strings.Join(args, " "), err)
		}
		return "", errors.New(msg)
	}
	p := strings.TrimSpace(stdout.String())
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", name, p, err)
	}
	return p, nil
}

// BuildGo builds the given packages of this module as static binaries
// (CGO_ENABLED=0, so they run in a bare initramfs) into dir and returns
// their paths by package path.
func BuildGo(dir string, pkgs ...string) (map[string]string, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", append([]string{"build", "-trimpath", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	bins := map[string]string{}
	for _, p := range pkgs {
		bins[p] = filepath.Join(dir, filepath.Base(p))
	}
	return bins, nil
}
