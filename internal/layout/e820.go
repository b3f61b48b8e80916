package layout

import (
	"sort"

	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/sysinfo"
)

// e820OriginalRAM marks the original's RAM while a map is built; it is
// written out as Reserved.
const e820OriginalRAM jump.E820Type = 0x80000002

// HelperMemoryMap builds the helper kernel's e820 map from the firmware map:
// firmware and ACPI ranges stay as they are so the helper finds its devices
// and tables, the original's RAM becomes Reserved (never used by the helper,
// yet known to it, so no PCI window is placed there), and the helper gets
// as RAM only low memory and its part of the reserved region.
func HelperMemoryMap(fw []sysinfo.FirmwareEntry, usable Ranges, reserved Ranges) []jump.E820Entry {
	var m []jump.E820Entry
	for _, f := range fw {
		t := jump.FirmwareType(f.Type)
		if t == jump.E820RAM {
			t = e820OriginalRAM
		}
		m = append(m, jump.E820Entry{Range: f.Range, Type: t})
	}
	for _, r := range usable {
		m = overlay(m, jump.E820Entry{Range: r, Type: jump.E820RAM})
	}
	for _, r := range reserved {
		m = overlay(m, jump.E820Entry{Range: r, Type: jump.E820Reserved})
	}
	m = mergeE820(m)
	for i := range m {
		if m[i].Type != e820OriginalRAM {
			continue
		}
		m[i].Type = jump.E820Reserved
		// Linux merges adjacent entries of one type and marks a reserved
		// range that starts below 1 MiB busy; under IO_STRICT_DEVMEM a busy
		// range cannot be mapped through /dev/mem, which is how the helper
		// reads the original's pages. A one-page hole prevents the merge.
		if i > 0 && m[i-1].Type == jump.E820Reserved && m[i-1].End == m[i].Start && m[i-1].Start < 1<<20 {
			m[i].Start += PageSize
		}
	}
	return m
}

// overlay replaces whatever m says about e's range with e.
func overlay(m []jump.E820Entry, e jump.E820Entry) []jump.E820Entry {
	var out []jump.E820Entry
	for _, x := range m {
		for _, part := range (Ranges{x.Range}).Subtract(e.Range) {
			out = append(out, jump.E820Entry{Range: part, Type: x.Type})
		}
	}
	return append(out, e)
}

func mergeE820(m []jump.E820Entry) []jump.E820Entry {
	sort.Slice(m, func(i, j int) bool { return m[i].Start < m[j].Start })
	var out []jump.E820Entry
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
