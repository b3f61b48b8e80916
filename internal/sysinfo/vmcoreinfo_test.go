package sysinfo

import (
	"testing"

	"github.com/kjump/kjump/internal/phys"
)

func TestParseVMCoreInfo(t *testing.T) {
	r, err := ParseVMCoreInfo("0x000000003fe0a000 1000\n")
	if err != nil || r != phys.RangeOf(0x3fe0a000, 0x1000) {
		t.Errorf("got %v, %v", r, err)
	}
	for _, bad := range []string{"", "1", "zz 10", "10 0"} {
		if _, err := ParseVMCoreInfo(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
