package sysinfo

import (
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/jump"
)

const kallsyms61 = `ffffffff93400000 T _text
ffffffff93400000 T startup_64
ffffffff95131ba0 b saved_context
ffffffff9340a0c0 T relocate_kernel
`

func TestKallsyms(t *testing.T) {
	s, err := ParseKallsyms(strings.NewReader(kallsyms61), KernelSymbolsWanted...)
	if err != nil {
		t.Fatal(err)
	}
	if s.JumpConvention() != jump.ConventionClassic {
		t.Error("6.1 symbols detected as reworked")
	}
	iomem := []Resource{{Range: Range{Start: 0x3ba00000, End: 0x3c601be7}, Name: "Kernel code", Depth: 1}}
	pa, err := s.SavedContextAddr(iomem)
	if err != nil || pa != 0x3ba00000+0x1d31ba0 {
		t.Errorf("saved_context pa = %#x, %v", pa, err)
	}
	s2, _ := ParseKallsyms(strings.NewReader(kallsyms61+"ffffffff9340a000 T __relocate_kernel_start\n"), KernelSymbolsWanted...)
	if s2.JumpConvention() != jump.ConventionReworked {
		t.Error("7.x symbols detected as classic")
	}
	s3, _ := ParseKallsyms(strings.NewReader("ffffffff93400000 T _text\n"), KernelSymbolsWanted...)
	if _, err := s3.SavedContextAddr(iomem); err == nil || !strings.Contains(err.Error(), "KALLSYMS_ALL") {
		t.Errorf("missing saved_context: %v", err)
	}
	if _, err := ParseKallsyms(strings.NewReader("0000000000000000 T _text\n"), "_text"); err == nil || !strings.Contains(err.Error(), "kptr_restrict") {
		t.Errorf("hidden addresses: %v", err)
	}
}

func TestKernelConfig(t *testing.T) {
	c, err := ParseKernelConfig(strings.NewReader("CONFIG_KEXEC=y\n# CONFIG_KEXEC_JUMP is not set\nCONFIG_LOCALVERSION=\"-x\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Enabled("CONFIG_KEXEC") || c.Enabled("CONFIG_KEXEC_JUMP") || c.Enabled("CONFIG_MISSING") {
		t.Errorf("config values: %+v", c)
	}
}
