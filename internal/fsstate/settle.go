package fsstate

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// settle freezes the filesystem mounted at dir and thaws it at once
// (FIFREEZE, FITHAW: what fsfreeze -f/-u do). A freeze writes everything
// the filesystem still holds back: ext4 checkpoints its journal, btrfs
// commits, xfs covers its log. Without it an idle xfs writes its log
// again within 30 s (log covering), and a checkpoint whose kernel does
// nothing afterwards would be refused as changed. Read-only mounts need
// nothing.
func settle(dir string) error {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	const fifreeze, fithaw = 0xC0045877, 0xC0045878 // _IOWR('X', 119/120, int)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fifreeze, 0); e != 0 {
		return fmt.Errorf("freezing %s: %w", dir, e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fithaw, 0); e != 0 {
		return fmt.Errorf("thawing %s (frozen now: run fsfreeze -u %s): %w", dir, dir, e)
	}
	return nil
}

// unescape decodes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
