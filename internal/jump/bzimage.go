package jump

import (
	"encoding/binary"
	"fmt"
	"os"
)

// Setup header offsets (Documentation/x86/boot.rst, "The Real-Mode Kernel Header").
const (
	hdrSetupSects      = 0x1f1
	hdrBootFlag        = 0x1fe
	hdrJump            = 0x200
	hdrMagic           = 0x202
	hdrVersion         = 0x206
	hdrTypeOfLoader    = 0x210
	hdrLoadFlags       = 0x211
	hdrRamdiskImage    = 0x218
	hdrRamdiskSize     = 0x21c
	hdrCmdLinePtr      = 0x228
	hdrKernelAlignment = 0x230
	hdrRelocatable     = 0x234
	hdrXLoadFlags      = 0x236
	hdrCmdlineSize     = 0x238
	hdrInitSize        = 0x260

	xlfKernel64 = 1 << 0 // has the 64-bit entry point at load address + 0x200

	entry64Offset = 0x200
)

// BzImage is a parsed x86 Linux bzImage.
type BzImage struct {
	Raw             []byte
	Version         uint16 // boot protocol version, e.g. 0x020f
	Setup           []byte // setup header bytes, copied into boot_params at 0x1f1
	Payload         []byte // protected-mode kernel (what is loaded at the load address)
	KernelAlignment uint64
	InitSize        uint64 // memory the kernel needs from its load address while decompressing
	CmdlineSize     uint32
}

// Entry64 is the 64-bit entry point (startup_64) of the kernel loaded at
// load.
func (k *BzImage) Entry64(load uint64) uint64 { return load + entry64Offset }

// ReadBzImage reads and parses a bzImage file.
func ReadBzImage(path string) (*BzImage, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading helper kernel: %w", err)
	}
	k, err := ParseBzImage(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ParseBzImage checks that b is a relocatable bzImage with a 64-bit entry
// point (boot protocol 2.12+), the only kind the purgatory can enter.
func ParseBzImage(b []byte) (*BzImage, error) {
	if len(b) < 0x270 {
		return nil, fmt.Errorf("not a bzImage: only %d bytes", len(b))
	}
	le := binary.LittleEndian
	if le.Uint16(b[hdrBootFlag:]) != 0xaa55 || string(b[hdrMagic:hdrMagic+4]) != "HdrS" {
		return nil, fmt.Errorf("not a bzImage: no boot sector signature or HdrS magic (a vmlinux or compressed file?)")
	}
	k := &BzImage{Raw: b, Version: le.Uint16(b[hdrVersion:])}
	if k.Version < 0x020c {
		return nil, fmt.Errorf("boot protocol %d.%02d is too old: need 2.12+ (Linux 3.8+)", k.Version>>8, k.Version&0xff)
	}
	if le.Uint16(b[hdrXLoadFlags:])&xlfKernel64 == 0 {
		return nil, fmt.Errorf("kernel has no 64-bit entry point (XLF_KERNEL_64): build it for x86_64")
	}
	if b[hdrRelocatable] == 0 {
		return nil, fmt.Errorf("kernel is not relocatable: enable CONFIG_RELOCATABLE so it can run inside the reserved region")
	}
	setupSects := int(b[hdrSetupSects])
	if setupSects == 0 {
		setupSects = 4
	}
	payloadOff := (setupSects + 1) * 512
	if payloadOff >= len(b) {
		return nil, fmt.Errorf("truncated bzImage: setup claims %d sectors but file has %d bytes", setupSects, len(b))
	}
	hdrEnd := hdrJump + 2 + int(b[hdrJump+1])
	if hdrEnd > payloadOff || hdrEnd <= hdrMagic {
		return nil, fmt.Errorf("bad setup header length %#x", hdrEnd)
	}
	k.Setup = b[hdrSetupSects:hdrEnd]
	k.Payload = b[payloadOff:]
	k.KernelAlignment = uint64(le.Uint32(b[hdrKernelAlignment:]))
	k.InitSize = uint64(le.Uint32(b[hdrInitSize:]))
	k.CmdlineSize = le.Uint32(b[hdrCmdlineSize:])
	if k.KernelAlignment == 0 || k.KernelAlignment&(k.KernelAlignment-1) != 0 {
		return nil, fmt.Errorf("bad kernel_alignment %#x", k.KernelAlignment)
	}
	if k.InitSize < uint64(len(k.Payload)) {
		k.InitSize = uint64(len(k.Payload))
	}
	return k, nil
}
