package layout

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/sysinfo"
)

func TestDirectArgsQEMU(t *testing.T) {
	got, err := DirectArgs(qemuFirmware, Range{Start: 0x30000000, End: 0x38000000})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"memmap=0x2feff000$0x101000",  // 1 MiB + guard page up to the region
		"memmap=0x7fe0000$0x38000000", // the region's end to the top of RAM
		"kjump.direct=0x30000000-0x38000000",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DirectArgs =\n%q\nwant\n%q", got, want)
	}
}

// A laptop's map: RAM split by ACPI and reserved ranges below 4 GiB, the
// PCI hole left out, RAM above 4 GiB. Ranges the map describes between
// them are merged; the hole is not (Linux would trim the host bridge's
// windows under a reserved range there).
func TestDirectArgsMergesDescribedGapsOnly(t *testing.T) {
	fw := []sysinfo.FirmwareEntry{
		{Range: Range{Start: 0x0, End: 0x9f000}, Type: "System RAM"},
		{Range: Range{Start: 0x9f000, End: 0x100000}, Type: "Reserved"},
		{Range: Range{Start: 0x100000, End: 0x09d00000}, Type: "System RAM"},
		{Range: Range{Start: 0x09d00000, End: 0x09e00000}, Type: "ACPI Non-volatile Storage"},
		{Range: Range{Start: 0x09e00000, End: 0x7a000000}, Type: "System RAM"},
		{Range: Range{Start: 0x7a000000, End: 0x7a100000}, Type: "ACPI Tables"},
		{Range: Range{Start: 0x7a100000, End: 0x8c000000}, Type: "System RAM"},
		{Range: Range{Start: 0x8c000000, End: 0x90000000}, Type: "Reserved"},
		// 0x90000000-0x100000000: PCI hole, not in the map
		{Range: Range{Start: 0x100000000, End: 0x470000000}, Type: "System RAM"},
	}
	region := Range{Start: 0x15000000, End: 0x1f000000}
	got, err := DirectArgs(fw, region)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"memmap=0x14eff000$0x101000",     // up to the region, across the NVS range
		"memmap=0x6d000000$0x1f000000",   // from the region to the end of low RAM, across ACPI tables
		"memmap=0x370000000$0x100000000", // above 4 GiB, not joined across the hole
		"kjump.direct=0x15000000-0x1f000000",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("DirectArgs =\n%q\nwant\n%q", got, want)
	}
}

func TestDirectArgsRefuses(t *testing.T) {
	fragmented := []sysinfo.FirmwareEntry{{Range: Range{Start: 0, End: 0x9f000}, Type: "System RAM"}}
	for a := uint64(0x100000); a < 0x100000000; a += 0x20000000 {
		// RAM separated by holes the map leaves out: nothing merges.
		fragmented = append(fragmented, sysinfo.FirmwareEntry{Range: Range{Start: a, End: a + 0x10000000}, Type: "System RAM"})
	}
	for _, tc := range []struct {
		name   string
		fw     []sysinfo.FirmwareEntry
		region Range
		want   string
	}{
		{"below 16 MiB", qemuFirmware, Range{Start: 0x800000, End: 0x8800000}, "at or above 0x1000000"},
		{"not RAM", qemuFirmware, Range{Start: 0x3ff00000, End: 0x48000000}, "is not RAM"},
		{"unaligned", qemuFirmware, Range{Start: 0x30000800, End: 0x38000000}, "page aligned"},
		{"too many ranges", fragmented, Range{Start: 0x20100000, End: 0x28100000}, "at most 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DirectArgs(tc.fw, tc.region)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DirectArgs: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// The handoff area and jump stub a directly booted restore kernel uses
// for the original are where the original's own plan put them.
func TestDirectAddrsMatchPlan(t *testing.T) {
	c := testHelperConfig(t)
	p, err := PlanHelper(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := HandoffAddr(p.Region()); got != p.Handoff {
		t.Errorf("HandoffAddr = %#x, plan's handoff %#x", got, p.Handoff)
	}
	if got := JumpStubAddr(p.Region()); got != p.JumpStub {
		t.Errorf("JumpStubAddr = %#x, plan's stub %#x", got, p.JumpStub)
	}
}
