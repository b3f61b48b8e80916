package hibernate

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// One kjump at a time. The kernel holds one kexec image: a second run that
// loads its helper (or 'hibernate check' probing KEXEC_PRESERVE_CONTEXT)
// inside another run's load → sync → jump window replaces the image the
// first run is about to jump into. Every command that loads or jumps takes
// an exclusive flock on LockPath first; the holder writes its pid and
// command into the file so that a second run can say whom it waits for.
// The kernel drops a flock when its holder exits, so a crash never leaves
// the lock taken.

// LockPath is the lock file (on tmpfs: it never outlives the boot).
var LockPath = "/run/kjump/lock"

// DefaultLockWait is how long a second run waits for the first by default:
// longer than a checkpoint of a large machine to a slow disk takes.
const DefaultLockWait = 5 * time.Minute

// Lock is a held kjump lock.
type Lock struct{ f *os.File }

// LockedError is a run that gave up waiting for another's lock.
type LockedError struct {
	Path   string
	Holder string // "pid N: COMMAND, since TIME", or why it is unknown
	Waited time.Duration
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("another kjump run holds %s (%s) and was still running after %s: nothing was changed; let it finish and try again (--lock-wait DURATION waits longer)",
		e.Path, e.Holder, e.Waited.Round(time.Millisecond))
}

// AcquireLock takes the kjump lock for command (what it writes as the
// holder, e.g. "hibernate checkpoint"), waiting up to wait for another
// holder to finish (0: not at all) and saying once through logf whom it
// waits for.
func AcquireLock(command string, wait time.Duration, logf func(string, ...any)) (*Lock, error) {
	if err := os.MkdirAll(filepath.Dir(LockPath), 0o700); err != nil {
		return nil, fmt.Errorf("creating the lock directory: %w", err)
	}
	f, err := os.OpenFile(LockPath, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the kjump lock: %w", err)
	}
	start := time.Now()
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("locking %s: %w", LockPath, err)
		}
		waited := time.Since(start)
		if waited >= wait {
			holder := lockHolder(f)
			f.Close()
			return nil, &LockedError{Path: LockPath, Holder: holder, Waited: waited}
		}
		if delay == 10*time.Millisecond && logf != nil {
			logf("waiting up to %s for another kjump run to finish: %s holds %s", wait, lockHolder(f), LockPath)
		}
		time.Sleep(min(delay, wait-waited))
	}
	// The file may hold a former holder's line if it died mid-run.
	info := fmt.Sprintf("pid %d: %s, since %s\n", os.Getpid(), command, time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(info), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("writing the holder into %s: %w", LockPath, err)
	}
	return &Lock{f: f}, nil
}

// Release empties the holder line and unlocks.
func (l *Lock) Release() {
	if l == nil || l.f == nil {
		return
	}
	l.f.Truncate(0)
	l.f.Close() // drops the flock
	l.f = nil
}

// lockHolder reads the holder's line from the lock file.
func lockHolder(f *os.File) string {
	b := make([]byte, 256)
	n, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "holder unknown: " + err.Error()
	}
	if s := strings.TrimSpace(string(b[:n])); s != "" {
		return s
	}
	return "a kjump process that has not written its pid yet"
}

// loadMark is the kexec state right after this run loaded (or adopted)
// its helper. Right before the jump, the image loaded must still be that
// one: the lock keeps other kjump runs out, the mark catches other tools
// (kexec -l, kexec-load.service) that know nothing of the lock.
type loadMark struct {
	limit   int64 // kexec_load_limit_reboot after the load
	counted bool  // the kernel counts loads (Linux 6.6+)
}

// markLoaded records the load count after this run's load. An unlimited
// count is limited first, so that any later load or unload changes it.
func markLoaded() loadMark {
	n, err := guardLoads()
	if err != nil {
		return loadMark{}
	}
	return loadMark{limit: n, counted: true}
}

// stillOurs reports why the loaded kexec image may no longer be the one
// this run loaded (nil: it is, as far as the kernel can tell). Without
// the load counter only a missing image is noticed.
func (m loadMark) stillOurs() error {
	if strings.TrimSpace(readString(kexecLoadedPath)) != "1" {
		return errors.New("the helper this run loaded is gone (/sys/kernel/kexec_loaded is 0): another program unloaded it; not jumping, this machine keeps running; find what else runs kexec (kexec-tools' kexec-load.service, LOAD_KEXEC in /etc/default/kexec)")
	}
	if !m.counted {
		return nil
	}
	n, err := readLoadLimit()
	if err != nil {
		return fmt.Errorf("re-reading the kexec load count before the jump: %w; not jumping, this machine keeps running", err)
	}
	if n != m.limit {
		return fmt.Errorf("another kexec load or unload happened after this run loaded its helper (kexec_load_limit_reboot went from %d to %d): not jumping into an image kjump did not load, this machine keeps running; find what else runs kexec (kexec-tools' kexec-load.service, LOAD_KEXEC in /etc/default/kexec)", m.limit, n)
	}
	return nil
}
