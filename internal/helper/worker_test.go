package helper

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// nameFromAnotherThread names the process from a thread other than the
// thread group leader, as the worker's main may run on one, and prints
// every thread's name (TestMain runs it in a child process).
func nameFromAnotherThread() int {
	runtime.LockOSThread()
	done := make(chan int)
	name := func() {
		if unix.Gettid() == os.Getpid() {
			fmt.Fprintln(os.Stderr, "naming from the leader thread")
			done <- 2
			return
		}
		nameThreads(workerName)
		done <- 0
	}
	if unix.Gettid() == os.Getpid() {
		// The leader is locked to this goroutine, which waits: another
		// goroutine runs on another thread.
		go func() {
			runtime.LockOSThread()
			name()
		}()
	} else {
		go name()
	}
	if rc := <-done; rc != 0 {
		return rc
	}
	tids, _ := os.ReadDir("/proc/self/task")
	for _, t := range tids {
		b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/comm")
		if err != nil {
			continue // the thread exited since the listing
		}
		fmt.Printf("%s %s", t.Name(), b)
	}
	return 0
}

// The OOM killer's report and ps name the thread group leader: naming
// only the calling thread (prctl) left the worker "init" when Go ran its
// main on another thread.
func TestNameThreadsNamesTheLeaderFromAnyThread(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "KJUMP_TEST_NAME=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		tid, comm, _ := strings.Cut(l, " ")
		names[tid] = comm
	}
	pid := fmt.Sprint(cmd.Process.Pid)
	if names[pid] != workerName {
		t.Errorf("the leader thread %s is named %q, not %q", pid, names[pid], workerName)
	}
	for tid, comm := range names {
		if comm != workerName {
			t.Errorf("thread %s is named %q", tid, comm)
		}
	}
}
