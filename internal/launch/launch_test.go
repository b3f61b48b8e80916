package launch

import (
	"testing"
)

func TestHelperCmdline(t *testing.T) {
	got := Cmdline("BOOT_IMAGE=/vmlinuz root=/dev/sda1 console=tty0 console=ttyS0,115200 memmap=128M$0x30000000 loglevel=7 quiet no_timer_check")
	if got != "console=tty0 console=ttyS0,115200 loglevel=7 no_timer_check" {
		t.Errorf("got %q", got)
	}
}
