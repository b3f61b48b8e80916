package jump

import (
	"fmt"
	"sort"
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

	// e820OriginalRAM marks the original's RAM while a map is built; it is
	// written out as Reserved.
	e820OriginalRAM E820Type = 0x80000002
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

// HelperMemoryMap builds the helper kernel's e820 map from the firmware map:
// firmware and ACPI ranges stay as they are so the helper finds its devices
// and tables, the original's RAM becomes Reserved (never used by the helper,
// yet known to it, so no PCI window is placed there), and the helper gets
// as RAM only low memory and its part of the reserved region.
func HelperMemoryMap(fw []FirmwareEntry, usable Ranges, reserved Ranges) []E820Entry {
	var m []E820Entry
	for _, f := range fw {
		t := FirmwareType(f.Type)
		if t == E820RAM {
			t = e820OriginalRAM
		}
		m = append(m, E820Entry{f.Range, t})
	}
	for _, r := range usable {
		m = overlay(m, E820Entry{r, E820RAM})
	}
	for _, r := range reserved {
		m = overlay(m, E820Entry{r, E820Reserved})
	}
	m = mergeE820(m)
	for i := range m {
		if m[i].Type != e820OriginalRAM {
			continue
		}
		m[i].Type = E820Reserved
		// Linux merges adjacent entries of one type and marks a reserved
		// range that starts below 1 MiB busy; under IO_STRICT_DEVMEM a busy
		// range cannot be mapped through /dev/mem, which is how the helper
		// reads the original's pages. A one-page hole prevents the merge.
		if i > 0 && m[i-1].Type == E820Reserved && m[i-1].End == m[i].Start && m[i-1].Start < 1<<20 {
			m[i].Start += PageSize
		}
	}
	return m
}

// overlay replaces whatever m says about e's range with e.
func overlay(m []E820Entry, e E820Entry) []E820Entry {
	var out []E820Entry
	for _, x := range m {
		for _, part := range (Ranges{x.Range}).Subtract(e.Range) {
			out = append(out, E820Entry{part, x.Type})
		}
	}
	return append(out, e)
}

func mergeE820(m []E820Entry) []E820Entry {
	sort.Slice(m, func(i, j int) bool { return m[i].Start < m[j].Start })
	var out []E820Entry
	for _, e := range m {
		if e.Empty() {
			continue
		}
		if n := len(out); n > 0 && out[n-1].Type == e.Type && out[n-1].End == e.Start {
			out[n-1].End = e.End
			continue
		}
		out = append(out, e)
	}
	return out
}
