package purgatory

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// HandoffEntryOffset is where the purgatory stores the jump-back entry in
// the handoff page (HANDOFF_ENTRY in purgatory.S).
const HandoffEntryOffset = 0x10

// Params are the physical addresses the purgatory needs, patched into its
// parameter slots before it is loaded.
type Params struct {
	Handoff     uint64 // handoff page; the jump-back entry lands at +HandoffEntryOffset
	BackupSrc   uint64 // original's low memory to save (normally 0)
	BackupDst   uint64 // backup area in the reserved region
	BackupLen   uint64 // bytes; a multiple of 8
	PML4        uint64 // identity map for 4-level paging
	PML5        uint64 // the same map under a PML5, for LA57 kernels
	BootParams  uint64 // the helper's struct boot_params
	KernelEntry uint64 // helper kernel load address + 0x200 (64-bit entry)
}

// Build returns the purgatory code with p patched in. Execution starts at
// its first byte.
func Build(p Params) ([]byte, error) {
	if p.BackupLen%8 != 0 {
		return nil, fmt.Errorf("purgatory: backup length %#x is not a multiple of 8", p.BackupLen)
	}
	if p.Handoff == 0 || p.PML4 == 0 || p.PML5 == 0 || p.BootParams == 0 || p.KernelEntry == 0 {
		return nil, fmt.Errorf("purgatory: missing address in %+v", p)
	}
	code := bytes.Clone(purgatoryCode)
	if string(code[offPMagic:offPMagic+8]) != "KJPURG01" {
		return nil, fmt.Errorf("purgatory: generated code lacks its magic; run go generate")
	}
	for _, f := range []struct {
		off int
		v   uint64
	}{
		{offPHandoff, p.Handoff}, {offPBackupSrc, p.BackupSrc}, {offPBackupDst, p.BackupDst},
		{offPBackupLen, p.BackupLen}, {offPPml4, p.PML4}, {offPPml5, p.PML5},
		{offPBootParams, p.BootParams}, {offPKernelEntry, p.KernelEntry},
	} {
		binary.LittleEndian.PutUint64(code[f.off:], f.v)
	}
	return code, nil
}

// Size is the length of the purgatory code, stack included.
func Size() int { return len(purgatoryCode) }

// GDTDesc is an x86 descriptor-table register value (lgdt operand).
type GDTDesc struct {
	Limit uint16
	Base  uint64
}

// JumpBackStub returns the stub that loads gdt (unless its limit is 0) and
// jumps to entry, the original kernel's re-entry point.
func JumpBackStub(entry uint64, gdt GDTDesc) []byte {
	code := bytes.Clone(jumpBackCode)
	binary.LittleEndian.PutUint64(code[offJEntry:], entry)
	binary.LittleEndian.PutUint16(code[offJGdtDesc:], gdt.Limit)
	binary.LittleEndian.PutUint64(code[offJGdtDesc+2:], gdt.Base)
	return code
}
