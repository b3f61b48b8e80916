package jump

import (
	"fmt"
)

// E820Type is a BIOS memory map entry type.
type E820Type uint32

// E820 types (arch/x86/include/asm/e820/types.h).
const (
	E820RAM          E820Type = 1
	E820Reserved     E820Type = 2
	E820ACPI         E820Type = 3
	E820NVS          E820Type = 4
	E820Unusable     E820Type = 5
	E820PMEM         E820Type = 7
	E820PRAM         E820Type = 12
	E820SoftReserved E820Type = 0xefffffff
)

// E820Entry is one range of a memory map passed in boot_params.
type E820Entry struct {
	Range
	Type E820Type
}

func (e E820Entry) String() string { return fmt.Sprintf("%v type %d", e.Range, e.Type) }

// FirmwareType maps a /sys/firmware/memmap type name to its e820 type.
// Unknown names become Reserved: the helper must never use them.
func FirmwareType(name string) E820Type {
	switch name {
	case "System RAM":
		return E820RAM
	case "ACPI Tables":
		return E820ACPI
	case "ACPI Non-volatile Storage":
		return E820NVS
	case "Unusable memory":
		return E820Unusable
	case "Persistent Memory":
		return E820PMEM
	case "Persistent Memory (legacy)":
		return E820PRAM
	case "Soft Reserved":
		return E820SoftReserved
	}
	return E820Reserved
}
