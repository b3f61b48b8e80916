package helper

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/kjump/kjump/internal/cmdline"
	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/sysinfo"
)

// The capture runs in a worker process, not in PID 1: the kernel's OOM
// killer can end a worker, while a helper whose PID 1 runs out of memory
// panics and loses the machine. PID 1 re-executes its own binary with
// workerEnv set and reads the worker's reports from file descriptor 3.
const (
	workerEnv    = "KJUMP_HELPER_WORKER"
	workerReport = 3
	// workerName is the worker's argv[0], as ps and the OOM killer show it.
	workerName = "kjump-capture"
)

// IsWorker reports whether this process is the helper's capture worker.
func IsWorker() bool { return os.Getenv(workerEnv) == "1" && os.Getppid() == 1 }

// message is one line the worker sends PID 1. Every message is progress
// for the watchdog.
type message struct {
	// Kind is "step" (a phase began: What says which), "progress" (Done
	// of Total bytes of RAM processed), "finishing" (every chunk is
	// written: sync and commit follow) or "result".
	Kind   string          `json:"kind"`
	What   string          `json:"what,omitempty"`
	Done   uint64          `json:"done,omitempty"`
	Total  uint64          `json:"total,omitempty"`
	Result *handoff.Result `json:"result,omitempty"`
}

// pulse sends a message to PID 1 when this process is the worker; PID 1
// (the restore kernel's, too) runs the same code with pulse a no-op.
var pulse = func(message) {}

// step tells PID 1 that a phase of the capture began.
func step(what string) { pulse(message{Kind: "step", What: what}) }

// WorkerMain is the capture worker: it reads the instructions itself (the
// handoff area holds the key, which never crosses the pipe), does the
// work, and reports the result to PID 1, which writes the report and
// jumps back. It returns the process's exit status.
func WorkerMain() int {
	setOOMScoreAdj(os.Getpid(), 1000) // first to go when memory runs out
	// Name it as the OOM killer and the kernel log will (not "init").
	nameThreads(workerName)
	out := os.NewFile(workerReport, "report")
	if out == nil {
		logf("capture worker: no report pipe on fd %d", workerReport)
		return 2
	}
	var mu sync.Mutex
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	pulse = func(m message) {
		mu.Lock()
		defer mu.Unlock()
		enc.Encode(m)
		w.Flush()
	}
	limitGoHeap()
	mem, _, h, err := readHandoff()
	res := handoff.Result{Mode: h.Instructions.Mode, CPUs: runtime.NumCPU(), Details: map[string]string{}}
	if err == nil {
		gdt, gerr := savedGDT(mem, h.Instructions)
		err = gerr
		if err == nil {
			line, _ := os.ReadFile("/proc/cmdline")
			_, eatMemoryOnWrite = cmdline.Value(string(line), testOOMParam)
			err = run(h, gdt, &res)
		}
	}
	if err != nil {
		res.Error = err.Error()
	} else {
		res.OK = true
	}
	pulse(message{Kind: "result", Result: &res})
	return 0
}

// nameThreads gives every thread of this process the name. prctl
// PR_SET_NAME would name only the calling thread, and after init Go runs
// main on whichever thread it likes, while the OOM killer's report, ps and
// /proc/PID/comm show the thread group leader's name. A thread started
// later copies the name of the thread that starts it, so a pass that finds
// every thread named is the last.
func nameThreads(name string) {
	if len(name) > 15 {
		name = name[:15] // what the kernel keeps (TASK_COMM_LEN)
	}
	for pass := 0; pass < 5; pass++ {
		tids, err := os.ReadDir("/proc/self/task")
		if err != nil {
			logf("naming the process %s: %v", name, err)
			return
		}
		named := true
		for _, t := range tids {
			comm := "/proc/self/task/" + t.Name() + "/comm"
			if b, err := os.ReadFile(comm); err == nil && strings.TrimSuffix(string(b), "\n") == name {
				continue
			}
			named = false
			os.WriteFile(comm, []byte(name), 0) // fails for a thread that just exited; the next pass will not list it
		}
		if named {
			return
		}
	}
}

// limitGoHeap makes the Go collector work harder as the heap nears what
// the helper has free, so garbage does not push a worker that would fit
// into the OOM killer's hands.
func limitGoHeap() {
	if avail, err := sysinfo.MemInfo("/proc/meminfo", "MemAvailable"); err == nil {
		debug.SetMemoryLimit(int64(avail) * 3 / 4)
	}
}

// setOOMScoreAdj sets a process's oom_score_adj: -1000 never killed, 1000
// killed first.
func setOOMScoreAdj(pid, v int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(fmt.Sprint(v)), 0)
}

// testOOMParam on the helper's command line (hibernate --helper-args) makes
// the worker allocate memory until the OOM killer ends it, once a tenth of
// the image is written: the test of the helper running out of memory
// (scenario helper-oom-jumps-back). Off unless given.
const testOOMParam = "kjump.test_oom"

var eatMemoryOnWrite bool

// eatMemory allocates and touches anonymous memory until the kernel ends
// this process.
func eatMemory() {
	logf("%s on the command line: allocating memory until the OOM killer ends this worker", testOOMParam)
	var keep [][]byte
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		keep = append(keep, b)
		if len(keep)%16 == 0 {
			time.Sleep(time.Millisecond) // let the writer make progress meanwhile
		}
	}
}
