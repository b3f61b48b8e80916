package vm

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// keepRuns is how many run directories per name are kept.
const keepRuns = 5

// RunsDir is where run directories go: $KJUMP_RUNS, else out/runs in the
// source tree, else $KJUMP_CACHE/runs.
func RunsDir() string {
	if d := os.Getenv("KJUMP_RUNS"); d != "" {
		return d
	}
	if root, err := RepoRoot(); err == nil {
		return filepath.Join(root, "out", "runs")
	}
	return filepath.Join(CacheDir(), "runs")
}

// NewRunDir creates a fresh directory for one run named name
// (RunsDir()/name/<time>-<pid>), so runs from parallel test processes do
// not mix, and prunes all but the latest runs of that name. A "latest"
// symlink points at it.
func NewRunDir(name string) (string, error) {
	base := filepath.Join(RunsDir(), name)
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	prune(base)
	stamp := time.Now().UTC().Format("20060102T150405.000")
	dir := filepath.Join(base, fmt.Sprintf("%s-%d", stamp, os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	latest := filepath.Join(base, "latest")
	os.Remove(latest)
	os.Symlink(filepath.Base(dir), latest)
	return dir, nil
}

func prune(base string) {
	ents, err := os.ReadDir(base)
	if err != nil {
		return
	}
	var runs []string
	for _, e := range ents {
		if e.IsDir() {
			runs = append(runs, e.Name())
		}
	}
	sort.Strings(runs) // names start with the UTC time
	for len(runs) >= keepRuns {
		os.RemoveAll(filepath.Join(base, runs[0]))
		runs = runs[1:]
	}
}

// portsGiven are the ports FreePort returned in this process.
var (
	portsMu    sync.Mutex
	portsGiven = map[int]bool{}
)

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago, for
// Net.Port. It never returns the same port twice, so scenarios running at
// once cannot connect to each other's machines.
func FreePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !portsGiven[port] {
			portsGiven[port] = true
			return port, nil
		}
	}
}
