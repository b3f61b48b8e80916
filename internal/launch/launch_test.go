package launch

import (
	"testing"
)

// The helper boots quiet; the original's console and loglevel settings
// follow, so a loglevel= there (or in helper.args, later still) wins.
func TestHelperCmdline(t *testing.T) {
	got := Cmdline("BOOT_IMAGE=/vmlinuz root=/dev/sda1 console=tty0 console=ttyS0,115200 memmap=128M$0x30000000 loglevel=7 quiet no_timer_check")
	if got != "quiet console=tty0 console=ttyS0,115200 loglevel=7 no_timer_check" {
		t.Errorf("got %q", got)
	}
	if got := Cmdline("root=/dev/sda1"); got != "quiet no_timer_check" {
		t.Errorf("got %q", got)
	}
}
