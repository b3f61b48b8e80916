package helper

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/storage"
)

// The test binary doubles as a capture worker: KJUMP_TEST_WORKER says how
// it behaves, so the supervisor is tested against a real process, pipe,
// signals and exit statuses.
func TestMain(m *testing.M) {
	if how := os.Getenv("KJUMP_TEST_WORKER"); how != "" {
		os.Exit(fakeWorker(how))
	}
	if os.Getenv("KJUMP_TEST_NAME") != "" {
		os.Exit(nameFromAnotherThread())
	}
	os.Exit(m.Run())
}

func fakeWorker(how string) int {
	out := os.NewFile(workerReport, "report")
	enc := json.NewEncoder(out)
	enc.Encode(message{Kind: "step", What: "writing"})
	for i := uint64(1); i <= 3; i++ {
		enc.Encode(message{Kind: "progress", Done: i << 20, Total: 10 << 20})
	}
	switch how {
	case "stall": // a target that stopped answering
		time.Sleep(time.Hour)
	case "stall-finishing":
		enc.Encode(message{Kind: "finishing"})
		time.Sleep(time.Hour)
	case "slow": // slower than the watchdog in all, but never silent for long
		for i := 0; i < 8; i++ {
			time.Sleep(300 * time.Millisecond)
			enc.Encode(message{Kind: "progress", Done: uint64(4+i) << 20, Total: 12 << 20})
		}
		enc.Encode(message{Kind: "result", Result: &handoff.Result{OK: true, RAMBytes: 12 << 20, Details: map[string]string{"target": "/dev/vda"}}})
	case "announce-fail": // knows it failed, then hangs cleaning up
		enc.Encode(message{Kind: "failed", What: "the NFS server 10.0.2.1 stopped answering"})
		for i := 0; i < 100; i++ { // messages while it hangs do not keep it alive
			time.Sleep(100 * time.Millisecond)
			enc.Encode(message{Kind: "step", What: "removing the unfinished image"})
		}
		time.Sleep(time.Hour)
	case "fail":
		enc.Encode(message{Kind: "result", Result: &handoff.Result{Error: "write image to /dev/vda: input/output error"}})
	case "go-oom":
		fmt.Fprintln(os.Stderr, "fatal error: runtime: out of memory")
		return 2
	case "crash":
		fmt.Fprintln(os.Stderr, "panic: something broke")
		return 2
	}
	return 0
}

func superviseFake(t *testing.T, how string, limit time.Duration, in handoff.Instructions) (handoff.Result, error, time.Duration) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	w, err := startWorker(exe, []string{"KJUMP_TEST_WORKER=" + how})
	if err != nil {
		t.Fatal(err)
	}
	res := handoff.Result{Mode: handoff.Checkpoint, CPUs: 2, Details: map[string]string{}}
	t0 := time.Now()
	err = w.watch(in, limit, &res)
	return res, err, time.Since(t0)
}

var nfsTarget = handoff.Instructions{Mode: handoff.Checkpoint, Target: handoff.TargetSpec{Spec: "/mnt/nfs/ckpt", FSType: "nfs4",
	Source: "10.0.2.1:/export", Path: "ckpt", Net: &handoff.NetConfig{}}}

func TestWatchdogEndsAStalledWorker(t *testing.T) {
	res, err, took := superviseFake(t, "stall", time.Second, nfsTarget)
	if err == nil {
		t.Fatal("a stalled worker passed")
	}
	for _, w := range []string{"no progress for 1s", "at 30% (3.0 MiB of 10 MiB", "10.0.2.1:/export/ckpt", "the NFS server 10.0.2.1 stopped answering", "helper.watchdog"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
	if res.OK || res.Details["commit_uncertain"] != "" {
		t.Errorf("result %+v", res)
	}
	if took > 5*time.Second {
		t.Errorf("took %s to end a worker stalled for 1s", took)
	}
}

func TestWatchdogDuringCommitSaysSo(t *testing.T) {
	in := handoff.Instructions{Target: handoff.TargetSpec{Spec: "/dev/vda", Device: "/dev/vda"}}
	res, err, _ := superviseFake(t, "stall-finishing", time.Second, in)
	if err == nil || !strings.Contains(err.Error(), "while syncing and committing") || !strings.Contains(err.Error(), "may or may not have been committed: check with 'resume image verify /dev/vda'") ||
		!strings.Contains(err.Error(), "the disk /dev/vda stopped answering") {
		t.Fatalf("%v", err)
	}
	if res.Details["commit_uncertain"] != "true" {
		t.Errorf("details %v", res.Details)
	}
}

func TestWatchdogCountsProgressNotTime(t *testing.T) {
	res, err, took := superviseFake(t, "slow", time.Second, nfsTarget)
	if err != nil || !res.OK || res.RAMBytes != 12<<20 || res.CPUs != 2 || res.Details["target"] != "/dev/vda" {
		t.Fatalf("%+v, %v", res, err)
	}
	if took < 2*time.Second {
		t.Errorf("the slow worker took only %s", took)
	}
}

func TestAnnouncedFailureEndsTheWorker(t *testing.T) {
	_, err, took := superviseFake(t, "announce-fail", time.Minute, nfsTarget)
	if err == nil || err.Error() != "the NFS server 10.0.2.1 stopped answering" {
		t.Fatalf("%v", err)
	}
	if took < failedGrace || took > failedGrace+5*time.Second {
		t.Errorf("ended after %s, want the %s grace", took, failedGrace)
	}
}

func TestWorkerFailureIsTheResult(t *testing.T) {
	_, err, _ := superviseFake(t, "fail", time.Minute, nfsTarget)
	if err == nil || err.Error() != "write image to /dev/vda: input/output error" {
		t.Fatalf("%v", err)
	}
}

func TestWorkerOutOfMemoryNamed(t *testing.T) {
	_, err, _ := superviseFake(t, "go-oom", time.Minute, handoff.Instructions{Threads: 4})
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"helper ran out of memory at 30%", "fatal error: runtime: out of memory", "reserve more with helper.reserve", "use fewer workers (image.threads or --threads, now 4)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not say %q: %v", w, err)
		}
	}
}

func TestWorkerCrashNamed(t *testing.T) {
	_, err, _ := superviseFake(t, "crash", time.Minute, nfsTarget)
	if err == nil || !strings.Contains(err.Error(), "capture worker exit status 2 at 30%") || !strings.Contains(err.Error(), `"panic: something broke"`) {
		t.Fatalf("%v", err)
	}
}

func TestOOMKillFromKernelLog(t *testing.T) {
	lines := []string{
		"kjump-capture invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=1000",
		"Out of memory: Killed process 96 (kjump-capture) total-vm:1200000kB, anon-rss:81920kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:300kB oom_score_adj:1000",
	}
	if s := oomKill(lines, 95); s != "" {
		t.Errorf("another pid matched: %q", s)
	}
	if s := oomKill(lines, 96); s != "the kernel's OOM killer ended the capture worker (pid 96, 80 MiB resident)" {
		t.Errorf("%q", s)
	}
}

func TestNFSMountOptionsBounded(t *testing.T) {
	for in, want := range map[string]string{
		"vers=4.0,addr=10.0.2.1,clientaddr=10.0.2.2,nolock": "vers=4.0,addr=10.0.2.1,clientaddr=10.0.2.2,nolock,soft,timeo=50,retrans=2",
		"vers=3,hard,timeo=600,retrans=5,nolock":            "vers=3,nolock,soft,timeo=50,retrans=2",
		"":                                                  "soft,timeo=50,retrans=2",
	} {
		if got := mountOptions(handoff.TargetSpec{FSType: "nfs4", Opts: in}, false); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	if got := mountOptions(handoff.TargetSpec{FSType: "nfs", Opts: "vers=3,soft,timeo=50"}, true); got != "vers=3,hard" {
		t.Errorf("the test's hard mount: %q", got)
	}
	if got := mountOptions(handoff.TargetSpec{FSType: "ext4", Opts: "noatime"}, false); got != "noatime" {
		t.Errorf("ext4 options changed: %q", got)
	}
}

func TestTargetNames(t *testing.T) {
	for _, tc := range []struct {
		ts         handoff.TargetSpec
		name, what string
	}{
		{nfsTarget.Target, "10.0.2.1:/export/ckpt", "the NFS server 10.0.2.1"},
		{handoff.TargetSpec{FSType: "nfs", Source: "[fd00::1]:/export/", Path: "k/img"}, "[fd00::1]:/export/k/img", "the NFS server fd00::1"},
		{handoff.TargetSpec{Spec: "LABEL=kj", Device: "/dev/vda2"}, "LABEL=kj", "the disk /dev/vda2"},
		{handoff.TargetSpec{Spec: "/var/kjump.img", File: &storage.FileMap{Device: "/dev/sda1"}}, "/var/kjump.img", "the disk /dev/sda1"},
	} {
		if n, w := targetName(tc.ts), targetWhat(tc.ts); n != tc.name || w != tc.what {
			t.Errorf("%+v: %q, %q", tc.ts, n, w)
		}
	}
}

func TestVanishedDiskNamed(t *testing.T) {
	full := fmt.Errorf("write image to /dev/kjtest-gone: %w", &os.PathError{Op: "write", Path: "/dev/kjtest-gone", Err: syscall.ENOSPC})
	err := vanished(full, handoff.TargetSpec{Device: "/dev/kjtest-gone"})
	want := "the disk /dev/kjtest-gone vanished while the image was being written (unplugged, powered off, or its controller failed; the write failed with no space left on device): reconnect it or choose another target"
	if err == nil || err.Error() != want || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("%v", err)
	}
	// A disk that is still there keeps its own error.
	entries, _ := os.ReadDir("/sys/class/block")
	for _, e := range entries {
		if b, _ := os.ReadFile("/sys/class/block/" + e.Name() + "/size"); len(b) > 0 && strings.TrimSpace(string(b)) != "0" {
			if got := vanished(full, handoff.TargetSpec{Device: "/dev/" + e.Name()}); got != full {
				t.Errorf("present disk %s: %v", e.Name(), got)
			}
			break
		}
	}
	if got := vanished(full, handoff.TargetSpec{Source: "10.0.2.1:/export"}); got != full {
		t.Errorf("NFS target: %v", got)
	}
}
