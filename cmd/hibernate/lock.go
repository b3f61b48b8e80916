package main

import (
	"fmt"
	"os"

	"github.com/kjump/kjump/internal/hibernate"
)

// lockWait is --lock-wait of the command being run.
var lockWait = hibernate.DefaultLockWait

// heldLock is this process's kjump lock. systemd-sleep takes it around its
// hooks and the jump; runJump inside must not take it again (a second
// flock of the file through another open would wait for itself).
var heldLock *hibernate.Lock

// lockKjump takes the kjump lock for command (see internal/hibernate/
// lock.go) unless this process holds it already. Only root takes it: no
// one else can load a kexec image, and 'hibernate check' as another user
// only reports.
func lockKjump(command string) (release func(), err error) {
	if heldLock != nil || os.Geteuid() != 0 {
		return func() {}, nil
	}
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "hibernate: "+f+"\n", a...) }
	l, err := hibernate.AcquireLock(command, lockWait, logf)
	if err != nil {
		return nil, err
	}
	heldLock = l
	return func() { heldLock = nil; l.Release() }, nil
}

func lockWaitUsage() string {
	return fmt.Sprintf("wait this long for another kjump run to finish (0: refuse at once; default %s)", hibernate.DefaultLockWait)
}
