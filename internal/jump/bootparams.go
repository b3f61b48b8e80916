package jump

import (
	"encoding/binary"
	"fmt"
)

// struct boot_params offsets (arch/x86/include/uapi/asm/bootparam.h).
const (
	bpAcpiRsdpAddr    = 0x070
	bpExtRamdiskImage = 0x0c0
	bpExtRamdiskSize  = 0x0c4
	bpExtCmdLinePtr   = 0x0c8
	bpE820Entries     = 0x1e8
	bpE820Table       = 0x2d0
	bpE820Max         = 128
	e820EntrySize     = 20

	loaderUndefined = 0xff // type_of_loader: boot loader without an assigned ID
)

// BootParams describes the zero page handed to a kernel entered through the
// 64-bit boot protocol.
type BootParams struct {
	Kernel     *BzImage
	Cmdline    uint64 // physical address of the NUL-terminated command line
	CmdlineLen int    // bytes, without the NUL
	Initrd     Range
	E820       []E820Entry
	ACPIRSDP   uint64 // 0: let the kernel find it (BIOS scan)
}

// Build returns the 4 KiB zero page.
func (p BootParams) Build() ([]byte, error) {
	if len(p.E820) > bpE820Max {
		return nil, fmt.Errorf("memory map has %d entries; boot_params holds %d", len(p.E820), bpE820Max)
	}
	if p.Kernel.CmdlineSize != 0 && uint32(p.CmdlineLen) > p.Kernel.CmdlineSize {
		return nil, fmt.Errorf("helper command line is %d bytes; the kernel accepts %d", p.CmdlineLen, p.Kernel.CmdlineSize)
	}
	bp := make([]byte, PageSize)
	copy(bp[hdrSetupSects:], p.Kernel.Setup)
	le := binary.LittleEndian
	bp[hdrTypeOfLoader] = loaderUndefined
	le.PutUint32(bp[hdrCmdLinePtr:], uint32(p.Cmdline))
	le.PutUint32(bp[bpExtCmdLinePtr:], uint32(p.Cmdline>>32))
	le.PutUint32(bp[hdrRamdiskImage:], uint32(p.Initrd.Start))
	le.PutUint32(bp[bpExtRamdiskImage:], uint32(p.Initrd.Start>>32))
	le.PutUint32(bp[hdrRamdiskSize:], uint32(p.Initrd.Size()))
	le.PutUint32(bp[bpExtRamdiskSize:], uint32(p.Initrd.Size()>>32))
	le.PutUint64(bp[bpAcpiRsdpAddr:], p.ACPIRSDP)
	bp[bpE820Entries] = byte(len(p.E820))
	for i, e := range p.E820 {
		off := bpE820Table + i*e820EntrySize
		le.PutUint64(bp[off:], e.Start)
		le.PutUint64(bp[off+8:], e.Size())
		le.PutUint32(bp[off+16:], uint32(e.Type))
	}
	return bp, nil
}
