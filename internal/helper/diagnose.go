package helper

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/sysinfo"
)

// What PID 1 says when the capture worker gives no result: what stopped
// answering, what ran out of memory, and in what state the worker was.

// outOfMemory is the error for a worker the helper's memory did not hold.
func outOfMemory(in handoff.Instructions, st *watchState, kernel string) error {
	total, _ := sysinfo.MemInfo("/proc/meminfo", "MemTotal")
	threads := "one per CPU"
	if in.Threads > 0 {
		threads = fmt.Sprint(in.Threads)
	}
	return fmt.Errorf("helper ran out of memory %s: %s; the helper kernel has %s of RAM: reserve more with helper.reserve in kjump.conf "+
		"(and the memmap= or crashkernel= size on the kernel command line, then reboot) or use fewer workers (image.threads or --threads, now %s)",
		st.where(), kernel, humanize.IBytes(total), threads)
}

// oomKillRE matches the OOM killer's report (oom_kill_process): "Out of
// memory: Killed process 97 (kjump-capture) total-vm:..., anon-rss:...".
var oomKillRE = regexp.MustCompile(`Killed process (\d+) \(([^)]*)\)(?: total-vm:(\d+)kB, anon-rss:(\d+)kB)?`)

// oomKill finds the OOM killer's report on pid in kernel log lines.
func oomKill(lines []string, pid int) string {
	for _, l := range lines {
		m := oomKillRE.FindStringSubmatch(l)
		if m == nil || m[1] != fmt.Sprint(pid) {
			continue
		}
		s := fmt.Sprintf("the kernel's OOM killer ended the capture worker (pid %s", m[1])
		if m[4] != "" {
			var kb uint64
			fmt.Sscan(m[4], &kb)
			s += ", " + humanize.IBytes(kb<<10) + " resident"
		}
		return s + ")"
	}
	return ""
}

// stallError names what stopped answering.
func stallError(in handoff.Instructions, limit time.Duration, st *watchState, state string) error {
	msg := fmt.Sprintf("helper watchdog: no progress for %s %s writing to %s: %s stopped answering; the capture was aborted",
		limit, st.where(), targetName(in.Target), targetWhat(in.Target))
	if st.finishing {
		msg += "; the image may or may not have been committed: check with 'resume image verify " + in.Target.Spec + "'"
	}
	if strings.HasPrefix(state, "D") {
		msg += " (it was blocked in the kernel, waiting for the target)"
	}
	return fmt.Errorf("%s (helper.watchdog in kjump.conf sets the limit)", msg)
}

// targetName is the image's place as the user knows it.
func targetName(ts handoff.TargetSpec) string {
	switch {
	case ts.Source != "":
		return strings.TrimSuffix(ts.Source, "/") + "/" + strings.TrimPrefix(ts.Path, "/")
	case ts.Spec != "":
		return ts.Spec
	case ts.Device != "":
		return ts.Device
	}
	return "the target"
}

// targetWhat says what can have stopped answering.
func targetWhat(ts handoff.TargetSpec) string {
	if ts.Source != "" && strings.HasPrefix(ts.FSType, "nfs") {
		return "the NFS server " + nfsServerOf(ts.Source)
	}
	dev := ts.Device
	if ts.File != nil {
		dev = ts.File.Device
	}
	if dev != "" {
		return "the disk " + dev
	}
	return "the target"
}

// processState is a process's state as its threads show it: the first
// thread in uninterruptible sleep (D) if any, else the main thread, with
// what it waits in, e.g. "D (wchan folio_wait_bit_common) in thread 84".
func processState(pid int) string {
	tids, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return "gone"
	}
	main := threadState(pid, pid)
	for _, t := range tids {
		var tid int
		if _, err := fmt.Sscan(t.Name(), &tid); err != nil || tid == pid {
			continue
		}
		if s := threadState(pid, tid); strings.HasPrefix(s, "D") {
			return fmt.Sprintf("%s in thread %d of %d", s, tid, len(tids))
		}
	}
	return main
}

func threadState(pid, tid int) string {
	dir := fmt.Sprintf("/proc/%d/task/%d/", pid, tid)
	b, err := os.ReadFile(dir + "stat")
	if err != nil {
		return "gone"
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		s = s[i+2:]
	}
	state, _, _ := strings.Cut(s, " ")
	if wc, err := os.ReadFile(dir + "wchan"); err == nil && len(wc) > 0 && string(wc) != "0" {
		state += " (wchan " + string(wc) + ")"
	}
	return state
}
