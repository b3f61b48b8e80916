// Package sysinfo reads what the running kernel tells about itself through
// /proc and /sys: its memory (iomem, the firmware map, meminfo), its symbols,
// its build configuration and release, and its VMCOREINFO note.
package sysinfo

import (
	"fmt"
	"os"
	"strings"
)

// System is a snapshot of the facts a helper plan needs.
type System struct {
	Cmdline    string
	IOMem      []Resource
	Firmware   []FirmwareEntry
	Symbols    Symbols
	VMCoreInfo Range
	// ACPIRSDP is the RSDP from the EFI system table; 0 on BIOS machines,
	// where the helper scans for it.
	ACPIRSDP uint64
}

// Read gathers the kernel facts a plan needs.
func Read() (*System, error) {
	s := &System{}
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	s.Cmdline = strings.TrimSpace(string(b))
	if s.IOMem, err = ReadIOMem(); err != nil {
		return nil, err
	}
	if s.Firmware, err = ReadFirmwareMemmap("/sys/firmware/memmap"); err != nil {
		return nil, err
	}
	if s.Symbols, err = ReadKallsyms(KernelSymbolsWanted...); err != nil {
		return nil, err
	}
	if r, err := ReadVMCoreInfo(); err == nil {
		s.VMCoreInfo = r
	}
	s.ACPIRSDP = acpiRSDP()
	return s, nil
}

// acpiRSDP reads the RSDP from the EFI system table when there is one.
func acpiRSDP() uint64 {
	b, err := os.ReadFile("/sys/firmware/efi/systab")
	if err != nil {
		return 0
	}
	var v uint64
	for _, line := range strings.Fields(string(b)) {
		for _, key := range []string{"ACPI20=", "ACPI="} {
			if s, ok := strings.CutPrefix(line, key); ok && v == 0 {
				fmt.Sscanf(s, "0x%x", &v)
			}
		}
	}
	return v
}
