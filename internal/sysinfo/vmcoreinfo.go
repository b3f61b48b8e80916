package sysinfo

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kjump/kjump/internal/phys"
)

// ReadVMCoreInfo returns the physical range of the running kernel's
// VMCOREINFO note (/sys/kernel/vmcoreinfo: "ADDR SIZE" in hex).
func ReadVMCoreInfo() (Range, error) {
	b, err := os.ReadFile("/sys/kernel/vmcoreinfo")
	if err != nil {
		return Range{}, fmt.Errorf("reading VMCOREINFO location: %w (needs CONFIG_CRASH_CORE)", err)
	}
	return ParseVMCoreInfo(string(b))
}

// ParseVMCoreInfo parses the contents of /sys/kernel/vmcoreinfo.
func ParseVMCoreInfo(s string) (Range, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return Range{}, fmt.Errorf("/sys/kernel/vmcoreinfo: want \"ADDR SIZE\", got %q", s)
	}
	addr, err1 := strconv.ParseUint(strings.TrimPrefix(f[0], "0x"), 16, 64)
	size, err2 := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64)
	if err1 != nil || err2 != nil || size == 0 {
		return Range{}, fmt.Errorf("/sys/kernel/vmcoreinfo: bad values in %q", s)
	}
	return phys.RangeOf(addr, size), nil
}
