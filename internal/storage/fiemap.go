package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FS_IOC_FIEMAP and its flags (linux/fiemap.h); x/sys/unix does not carry
// them.
const (
	fsIocFiemap = 0xC020660B // _IOWR('f', 11, struct fiemap)

	fiemapFlagSync = 0x1

	fiemapExtentLast       = 0x1
	fiemapExtentUnknown    = 0x2
	fiemapExtentDelalloc   = 0x4
	fiemapExtentEncoded    = 0x8
	fiemapExtentEncrypted  = 0x80
	fiemapExtentNotAligned = 0x100
	fiemapExtentDataInline = 0x200
	fiemapExtentDataTail   = 0x400
	fiemapExtentUnwritten  = 0x800
	fiemapExtentShared     = 0x2000
	fiemapHeaderLen        = 32
	fiemapExtentLen        = 56
	fiemapBatch            = 256
	fiemapUnusable         = fiemapExtentUnknown | fiemapExtentDelalloc | fiemapExtentEncoded | fiemapExtentEncrypted | fiemapExtentNotAligned | fiemapExtentDataInline | fiemapExtentDataTail
)

// Extent is a piece of a file: Length bytes at file offset Logical lie at
// byte Physical of the filesystem's block device.
type Extent struct {
	Logical  int64 `json:"logical"`
	Physical int64 `json:"physical"`
	Length   int64 `json:"length"`
}

// End is the first file offset after the extent.
func (e Extent) End() int64 { return e.Logical + e.Length }

type fiemapExtent struct {
	Extent
	flags uint32
}

// fiemap asks the filesystem where f's blocks are, flushing delayed
// allocations first (FIEMAP_FLAG_SYNC) so every extent has an address.
func fiemap(f *os.File, size int64) ([]fiemapExtent, error) {
	var out []fiemapExtent
	buf := make([]byte, fiemapHeaderLen+fiemapBatch*fiemapExtentLen)
	start := int64(0)
	for start < size {
		clear(buf)
		binary.LittleEndian.PutUint64(buf[0:], uint64(start))
		binary.LittleEndian.PutUint64(buf[8:], uint64(size-start))
		binary.LittleEndian.PutUint32(buf[16:], fiemapFlagSync)
		binary.LittleEndian.PutUint32(buf[24:], fiemapBatch)
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
			return nil, fmt.Errorf("FIEMAP: %w", e)
		}
		n := int(binary.LittleEndian.Uint32(buf[20:]))
		if n == 0 {
			break
		}
		last := false
		for i := 0; i < n; i++ {
			b := buf[fiemapHeaderLen+i*fiemapExtentLen:]
			fe := fiemapExtent{Extent: Extent{
				Logical:  int64(binary.LittleEndian.Uint64(b[0:])),
				Physical: int64(binary.LittleEndian.Uint64(b[8:])),
				Length:   int64(binary.LittleEndian.Uint64(b[16:])),
			}, flags: binary.LittleEndian.Uint32(b[40:])}
			out = append(out, fe)
			start = fe.End()
			last = fe.flags&fiemapExtentLast != 0
		}
		if last {
			break
		}
	}
	return out, nil
}
