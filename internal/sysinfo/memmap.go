package sysinfo

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// FirmwareEntry is one entry of the firmware-provided memory map as exported
// in /sys/firmware/memmap (the e820 map before any memmap= edits).
type FirmwareEntry struct {
	Range
	Type string // "System RAM", "Reserved", "ACPI Tables", "ACPI Non-volatile Storage", ...
}

// ReadFirmwareMemmap reads dir (normally /sys/firmware/memmap), whose numbered
// subdirectories hold start, end (inclusive, hex) and type files.
func ReadFirmwareMemmap(dir string) ([]FirmwareEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading firmware memory map: %w (needs CONFIG_FIRMWARE_MEMMAP and sysfs mounted)", err)
	}
	var out []FirmwareEntry
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		d := filepath.Join(dir, e.Name())
		read := func(f string) (string, error) {
			b, err := os.ReadFile(filepath.Join(d, f))
			return strings.TrimSpace(string(b)), err
		}
		s, err1 := read("start")
		en, err2 := read("end")
		t, err3 := read("type")
		if err1 != nil || err2 != nil || err3 != nil {
			return nil, fmt.Errorf("firmware memory map entry %s is unreadable", d)
		}
		start, err1 := strconv.ParseUint(strings.TrimPrefix(s, "0x"), 16, 64)
		end, err2 := strconv.ParseUint(strings.TrimPrefix(en, "0x"), 16, 64)
		if err1 != nil || err2 != nil || end < start {
			return nil, fmt.Errorf("firmware memory map entry %s: bad range %s-%s", d, s, en)
		}
		out = append(out, FirmwareEntry{Range: Range{Start: start, End: end + 1}, Type: t})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("firmware memory map %s is empty", dir)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out, nil
}
