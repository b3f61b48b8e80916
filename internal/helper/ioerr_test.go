package helper

import (
	"strings"
	"testing"
)

func TestIOErrorsIn(t *testing.T) {
	log := []string{
		"virtio_blk virtio1: [vda] 4194304 512-byte logical blocks",
		"I/O error, dev vda, sector 204800 op 0x1:(WRITE) flags 0x4000 phys_seg 254 prio class 2",
		"Buffer I/O error on dev vda, logical block 25600, lost async page write",
		"I/O error, dev vdb, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
		"I/O error, dev vda, sector 206848 op 0x1:(WRITE) flags 0x4000 phys_seg 254 prio class 2",
	}
	got := ioErrorsIn(log, "vda")
	for _, want := range []string{"WRITE failed on /dev/vda at sector 204800", "byte offset 104857600", "2 failed requests"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if got := ioErrorsIn(log, "vdc"); got != "" {
		t.Errorf("no errors on vdc, got %q", got)
	}
}
