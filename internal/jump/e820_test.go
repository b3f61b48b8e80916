package jump

import (
	"testing"
)

func TestFirmwareType(t *testing.T) {
	for name, want := range map[string]E820Type{"System RAM": E820RAM, "ACPI Tables": E820ACPI,
		"ACPI Non-volatile Storage": E820NVS, "Reserved": E820Reserved, "something new": E820Reserved} {
		if got := FirmwareType(name); got != want {
			t.Errorf("%q = %d, want %d", name, got, want)
		}
	}
}
