package hibernate

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMain doubles as the lock-contending child process of TestLockTwoProcesses.
func TestMain(m *testing.M) {
	if mode := os.Getenv("KJUMP_LOCK_CHILD"); mode != "" {
		os.Exit(lockChild(mode))
	}
	os.Exit(m.Run())
}

// lockChild: "hold" takes the lock, prints HELD and keeps it until stdin
// closes; "try WAIT" takes it waiting up to WAIT and prints GOT or
// REFUSED with the error.
func lockChild(mode string) int {
	LockPath = os.Getenv("KJUMP_LOCK_PATH")
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
	if mode == "hold" {
		l, err := AcquireLock("lock-test-holder", 0, logf)
		if err != nil {
			fmt.Println("REFUSED", err)
			return 1
		}
		fmt.Println("HELD")
		bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
		l.Release()
		return 0
	}
	wait, _ := time.ParseDuration(strings.TrimPrefix(mode, "try "))
	start := time.Now()
	l, err := AcquireLock("lock-test-waiter", wait, logf)
	var le *LockedError
	switch {
	case errors.As(err, &le):
		fmt.Printf("REFUSED LockedError %v\n", err)
		return 1
	case err != nil:
		fmt.Printf("REFUSED %v\n", err)
		return 1
	}
	b, _ := os.ReadFile(LockPath)
	fmt.Printf("GOT after %dms holder=%q\n", time.Since(start).Milliseconds(), strings.TrimSpace(string(b)))
	l.Release()
	return 0
}

func child(t *testing.T, path, mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KJUMP_LOCK_CHILD="+mode, "KJUMP_LOCK_PATH="+path)
	return cmd
}

// Two real processes contend for the lock: a second run refuses at once
// with --lock-wait 0 naming the holder's pid and command, waits (and says
// for whom) with a wait, and gets the lock once the holder lets go; a
// holder killed outright leaves no stale lock behind.
func TestLockTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run/kjump/lock")
	holder := child(t, path, "hold")
	stdin, _ := holder.StdinPipe()
	out, _ := holder.StdoutPipe()
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer holder.Process.Kill()
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "HELD\n" {
		t.Fatalf("holder: %q", line)
	}
	b, _ := os.ReadFile(path)
	want := "pid " + strconv.Itoa(holder.Process.Pid) + ": lock-test-holder, since "
	if !strings.HasPrefix(string(b), want) {
		t.Fatalf("lock file holds %q, want %q...", b, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v", fi.Mode())
	}

	refused, _ := child(t, path, "try 0s").Output()
	if !strings.HasPrefix(string(refused), "REFUSED LockedError") || !strings.Contains(string(refused), want) || !strings.Contains(string(refused), "--lock-wait") {
		t.Errorf("--lock-wait 0 against a holder: %q", refused)
	}
	refused, _ = child(t, path, "try 300ms").Output()
	if !strings.HasPrefix(string(refused), "REFUSED LockedError") || !strings.Contains(string(refused), "after 3") {
		t.Errorf("300ms wait against a holder that stays: %q", refused)
	}

	waiter := child(t, path, "try 30s")
	var wout, werr strings.Builder
	waiter.Stdout, waiter.Stderr = &wout, &werr
	if err := waiter.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(700 * time.Millisecond)
	stdin.Close() // the holder finishes
	if err := waiter.Wait(); err != nil {
		t.Fatalf("waiter: %v: %s %s", err, wout.String(), werr.String())
	}
	holder.Wait()
	if !strings.Contains(werr.String(), "waiting up to 30s") || !strings.Contains(werr.String(), want) {
		t.Errorf("waiter did not say whom it waits for: %q", werr.String())
	}
	var ms int
	fmt.Sscanf(wout.String(), "GOT after %dms", &ms)
	if ms < 500 || !strings.Contains(wout.String(), "lock-test-waiter") {
		t.Errorf("waiter: %q (it should get the lock only after the holder let go)", wout.String())
	}
	if b, _ := os.ReadFile(path); len(b) != 0 {
		t.Errorf("released lock still names a holder: %q", b)
	}

	// SIGKILL while holding: the kernel drops the flock with the process.
	killed := child(t, path, "hold")
	kin, _ := killed.StdinPipe()
	defer kin.Close()
	kout, _ := killed.StdoutPipe()
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(kout).ReadString('\n'); line != "HELD\n" {
		t.Fatalf("second holder: %q", line)
	}
	killed.Process.Signal(syscall.SIGKILL)
	killed.Wait()
	LockPath = path
	t.Cleanup(func() { LockPath = "/run/kjump/lock" })
	l, err := AcquireLock("after-kill", 0, nil)
	if err != nil {
		t.Fatalf("lock after its holder was killed: %v", err)
	}
	defer l.Release()
	if b, _ := os.ReadFile(path); !strings.HasPrefix(string(b), fmt.Sprintf("pid %d: after-kill", os.Getpid())) {
		t.Errorf("new holder line: %q", b)
	}
}

// The check right before the jump: the image must still be loaded and,
// where the kernel counts loads, no load or unload may have happened since
// this run's; an unlimited count is limited first so that loads count.
func TestLoadMarkStillOurs(t *testing.T) {
	dir := t.TempDir()
	LoadLimitPath, kexecLoadedPath = filepath.Join(dir, "limit"), filepath.Join(dir, "loaded")
	t.Cleanup(func() {
		LoadLimitPath, kexecLoadedPath = "/proc/sys/kernel/kexec_load_limit_reboot", "/sys/kernel/kexec_loaded"
	})
	write := func(p, s string) { os.WriteFile(p, []byte(s), 0o600) }
	write(kexecLoadedPath, "1\n")
	m := markLoaded() // no counter (before Linux 6.6): only a missing image shows
	if m.counted || m.stillOurs() != nil {
		t.Fatalf("no counter: %+v %v", m, m.stillOurs())
	}
	write(kexecLoadedPath, "0\n")
	if err := m.stillOurs(); err == nil || !strings.Contains(err.Error(), "kexec_loaded is 0") {
		t.Errorf("unloaded image: %v", err)
	}
	write(kexecLoadedPath, "1\n")
	write(LoadLimitPath, "-1\n")
	m = markLoaded()
	if b, _ := os.ReadFile(LoadLimitPath); !m.counted || m.limit != guardLimit || strings.TrimSpace(string(b)) != strconv.Itoa(guardLimit) {
		t.Fatalf("unlimited count not made countable: %+v, file %q", m, b)
	}
	if err := m.stillOurs(); err != nil {
		t.Errorf("untouched: %v", err)
	}
	write(LoadLimitPath, strconv.Itoa(guardLimit-1))
	if err := m.stillOurs(); err == nil || !strings.Contains(err.Error(), "went from 1073741824 to 1073741823") || !strings.Contains(err.Error(), "keeps running") {
		t.Errorf("foreign load: %v", err)
	}
	if err := m.stillOurs(); err == nil || !strings.Contains(err.Error(), "not jumping") {
		t.Errorf("jump after a foreign load: %v", err)
	}
}
