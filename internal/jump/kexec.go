package jump

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kexec_load flags (include/uapi/linux/kexec.h).
const (
	kexecPreserveContext = 0x00000002
	kexecArchX86_64      = 62 << 16
	kexecSegmentMax      = 16
)

// Segment is one piece of a kexec image: Buf is copied to physical memory
// Mem, and the rest of the Mem range up to MemSize is zeroed.
type Segment struct {
	Buf     []byte
	Mem     uint64
	MemSize uint64
}

// Range is the physical range the segment occupies.
func (s Segment) Range() Range { return RangeOf(s.Mem, s.MemSize) }

func (s Segment) String() string {
	return fmt.Sprintf("segment %v (%d bytes of data)", s.Range(), len(s.Buf))
}

// NewSegment makes a segment for buf at mem, padded to whole pages.
func NewSegment(buf []byte, mem uint64) Segment {
	return Segment{Buf: buf, Mem: mem, MemSize: alignUp(uint64(len(buf)), PageSize)}
}

// Image is a kexec image: an entry point and its segments.
type Image struct {
	Entry    uint64
	Segments []Segment
	// PreserveContext makes the jump a call that can return (kexec jump);
	// without it the running kernel is abandoned.
	PreserveContext bool
}

// Validate applies the kernel's own segment rules, so a bad plan fails with
// a precise message instead of a bare EINVAL from kexec_load.
func (im Image) Validate() error {
	if len(im.Segments) == 0 || len(im.Segments) > kexecSegmentMax {
		return fmt.Errorf("kexec image has %d segments; the kernel takes 1 to %d", len(im.Segments), kexecSegmentMax)
	}
	inSegment := false
	for i, s := range im.Segments {
		if s.Mem%PageSize != 0 || s.MemSize%PageSize != 0 || s.MemSize == 0 {
			return fmt.Errorf("kexec %v is not page aligned", s)
		}
		if uint64(len(s.Buf)) > s.MemSize {
			return fmt.Errorf("kexec %v: data larger than memory size", s)
		}
		for _, o := range im.Segments[:i] {
			if s.Range().Overlaps(o.Range()) {
				return fmt.Errorf("kexec %v overlaps %v", s, o)
			}
		}
		inSegment = inSegment || s.Range().Contains(im.Entry)
	}
	if !inSegment {
		return fmt.Errorf("kexec entry %#x is in no segment", im.Entry)
	}
	return nil
}

// Hash identifies im's content: entry, flags and every segment's placement
// and bytes (hibernate compares a preloaded helper with the one it would
// load now).
func (im Image) Hash() string {
	h := sha256.New()
	var b [8]byte
	put := func(v uint64) { binary.LittleEndian.PutUint64(b[:], v); h.Write(b[:]) }
	put(im.Entry)
	if im.PreserveContext {
		put(1)
	} else {
		put(0)
	}
	for _, s := range im.Segments {
		put(s.Mem)
		put(s.MemSize)
		put(uint64(len(s.Buf)))
		h.Write(s.Buf)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// kexecSegment mirrors struct kexec_segment.
type kexecSegment struct {
	buf   unsafe.Pointer
	bufsz uintptr
	mem   uintptr
	memsz uintptr
}

// Load hands im to the kernel with kexec_load(2), replacing any loaded image.
func (im Image) Load() error {
	if err := im.Validate(); err != nil {
		return err
	}
	segs := make([]kexecSegment, len(im.Segments))
	for i, s := range im.Segments {
		segs[i] = kexecSegment{bufsz: uintptr(len(s.Buf)), mem: uintptr(s.Mem), memsz: uintptr(s.MemSize)}
		if len(s.Buf) > 0 {
			segs[i].buf = unsafe.Pointer(&s.Buf[0])
		}
	}
	flags := uintptr(kexecArchX86_64)
	if im.PreserveContext {
		flags |= kexecPreserveContext
	}
	_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, uintptr(im.Entry), uintptr(len(segs)),
		uintptr(unsafe.Pointer(&segs[0])), flags, 0, 0)
	runtime.KeepAlive(im.Segments)
	runtime.KeepAlive(segs)
	if errno != 0 {
		return loadError(errno)
	}
	return nil
}

func loadError(errno unix.Errno) error {
	switch errno {
	case unix.EPERM:
		return fmt.Errorf("kexec_load: %w: needs root (CAP_SYS_BOOT), and kexec must not be disabled (sysctl kernel.kexec_load_disabled=0, lockdown none)", errno)
	case unix.ENOSYS:
		return fmt.Errorf("kexec_load: %w: the kernel lacks CONFIG_KEXEC", errno)
	case unix.EBUSY:
		return fmt.Errorf("kexec_load: %w: another kexec operation is in progress", errno)
	case unix.EINVAL:
		return fmt.Errorf("kexec_load: %w: the kernel rejected the image (KEXEC_PRESERVE_CONTEXT needs CONFIG_KEXEC_JUMP)", errno)
	case unix.ENOMEM:
		return fmt.Errorf("kexec_load: %w: not enough free memory to stage the image", errno)
	}
	return fmt.Errorf("kexec_load: %w", errno)
}

// Unload removes the loaded (non-crash) kexec image.
func Unload() error {
	_, _, errno := unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, kexecArchX86_64, 0, 0)
	if errno != 0 {
		return fmt.Errorf("kexec unload: %w", errno)
	}
	return nil
}

// ErrNoImage reports a jump with nothing loaded.
var ErrNoImage = errors.New("no kexec image is loaded")

// Jump executes the loaded image (reboot(LINUX_REBOOT_CMD_KEXEC)). With a
// preserve-context image it returns after the peer jumps back; otherwise it
// returns only on failure.
func Jump() error {
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_KEXEC)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL):
		return ErrNoImage
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("kexec jump: %w: a process could not be frozen or a device refused to suspend (see dmesg)", err)
	}
	return fmt.Errorf("kexec jump: %w (see dmesg)", err)
}
