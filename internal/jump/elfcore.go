package jump

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// CoreLoad is one PT_LOAD of an ELF core header: Size bytes of the
// original's physical memory at PAddr, currently stored at physical
// address Source. Source differs from PAddr only for low memory, which the
// purgatory moved to the backup area before the helper overwrote it.
type CoreLoad struct {
	PAddr, Source, Size uint64
}

// ElfCoreHeader builds the "elfcorehdr=" blob that makes the helper kernel's
// /proc/vmcore show the original's RAM. note, if not empty, is the physical
// range of the original's VMCOREINFO ELF note.
func ElfCoreHeader(loads []CoreLoad, note Range) ([]byte, error) {
	if len(loads) == 0 {
		return nil, fmt.Errorf("ELF core header: no memory to describe")
	}
	phnum := len(loads)
	if !note.Empty() {
		phnum++
	}
	if phnum >= 0xffff {
		return nil, fmt.Errorf("ELF core header: %d program headers is too many", phnum)
	}
	ehdrSize, phdrSize := binary.Size(elf.Header64{}), binary.Size(elf.Prog64{})
	var b bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_CORE), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: uint64(ehdrSize), Ehsize: uint16(ehdrSize), Phentsize: uint16(phdrSize), Phnum: uint16(phnum),
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&b, binary.LittleEndian, h)
	if !note.Empty() {
		binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_NOTE), Off: note.Start,
			Filesz: note.Size(), Memsz: note.Size()})
	}
	for _, l := range loads {
		if l.Size == 0 || l.PAddr%PageSize != 0 || l.Source%PageSize != 0 || l.Size%PageSize != 0 {
			return nil, fmt.Errorf("ELF core header: load %+v is not whole pages", l)
		}
		binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_LOAD),
			Flags: uint32(elf.PF_R | elf.PF_W | elf.PF_X), Off: l.Source, Paddr: l.PAddr,
			Filesz: l.Size, Memsz: l.Size})
	}
	return b.Bytes(), nil
}
