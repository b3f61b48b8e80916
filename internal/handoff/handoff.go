// Package handoff is the contract between kjump's three actors: hibernate
// in the original kernel, PID 1 of the helper or restore kernel, and resume
// at boot. The original (or resume) writes Instructions into the handoff
// area, the purgatory adds the jump-back entry, the helper reads them and
// writes its Result there before it jumps back.
//
// The area lies in the reserved region outside every kexec segment, so
// what the helper writes survives the jump back (segments are swapped
// back):
//
//	0x0000  magic "KJHANDOF"
//	0x0008  u32 layout version
//	0x0010  u64 jump-back entry          (written by the purgatory)
//	0x0018  u32 instructions length      (original -> helper, JSON)
//	0x001c  u32 result length            (helper -> original, JSON; 0 = none)
//	0x0040  instructions JSON            (up to resultOff)
//	0x4000  result JSON                  (up to Size)
//
// Both sides must run the same kjump build: the version names the layout
// and the JSON's meaning, and a mismatch is refused.
package handoff

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/jump/purgatory"
	"github.com/kjump/kjump/internal/phys"
	"github.com/kjump/kjump/internal/storage"
)

// Size is the handoff area's size.
const Size = 8 * phys.PageSize

const (
	magic = "KJHANDOF"
	// version 2: typed convention, level and codec tokens, the region as
	// a range. Version 3: a restore carries the image digest and the
	// original's RAM instead of VerifyStored's header CRC.
	version        = 3
	instrLenField  = 0x18
	resultLenField = 0x1c
	instrOff       = 0x40
	resultOff      = 0x4000
	entryField     = purgatory.HandoffEntryOffset
)

// Mode is what the helper is asked to do, and what it reports it did.
type Mode string

const (
	// Probe jumps to the helper and back, sampling the original's RAM.
	Probe Mode = "probe"
	// Checkpoint writes an image and jumps back (a probe without a target).
	Checkpoint Mode = "checkpoint"
	// Now writes an image and powers off once it is committed.
	Now Mode = "now"
	// Restore (from resume) writes an image back and jumps into it.
	Restore Mode = "restore"
	// Resumed is the outcome a restore kernel reports on success.
	Resumed Mode = "resumed"
)

// WritesImage reports whether the mode writes an image to a target.
func (m Mode) WritesImage() bool { return m == Checkpoint || m == Now }

// Instructions tell the helper what to do. Written by the original before
// the jump.
type Instructions struct {
	Mode Mode `json:"mode"`
	// SavedContext is the physical address of the original's saved_context
	// (0 on kernels that restore their own GDT).
	SavedContext uint64          `json:"saved_context"`
	Convention   jump.Convention `json:"convention"`
	// Region is the reserved region the helper lives in (HelperPlan.Region):
	// the helper records it in the image, and resume refuses an image made
	// with another one.
	Region phys.Range `json:"region"`
	// Backup and JumpStub are where the purgatory saved low memory and
	// where the helper may put its jump-back stub.
	Backup   uint64     `json:"backup"`
	JumpStub uint64     `json:"jump_stub"`
	Target   TargetSpec `json:"target"`
	// ImageID names the verified image a restore kernel must restore.
	ImageID string `json:"image_id,omitempty"`
	// ImageDigest is the SHA-256 of the header and index resume checked
	// (image.Reader.Digest, hex): the restore kernel reads them again and
	// refuses another image before writing any page (image.WithDigest).
	ImageDigest string `json:"image_digest,omitempty"`
	// RAM is the original's RAM as resume found it, the reserved region
	// left out: the only memory the restore kernel may write
	// (image.WithMachineRAM), never the region it runs in, a hole or MMIO.
	RAM phys.Ranges `json:"ram,omitempty"`
	// Level and Compression are the writer's settings; zero means the
	// helper's default (LevelFast, Zstd).
	Level       image.Level       `json:"level,omitempty"`
	Compression image.Compression `json:"compression,omitempty"`
	Threads     int               `json:"threads,omitempty"`
	// Watchdog is how many seconds the helper's capture may go without
	// progress before it is aborted (helper.watchdog); 0: the helper's
	// default.
	Watchdog int `json:"watchdog,omitempty"`
	// KeepFree makes the helper save the pages the original has free too.
	KeepFree bool `json:"keep_free,omitempty"`
	// DiscardFree says the original does not zero its free pages
	// (init_on_free off), so a restore may leave them as it finds them.
	DiscardFree bool      `json:"discard_free,omitempty"`
	Release     string    `json:"release"`
	Hostname    string    `json:"hostname"`
	BootID      string    `json:"boot_id"`
	Issued      time.Time `json:"issued"`
	// Filesystems are the stale-disk guard's fingerprints of the
	// original's mounted filesystems, taken after its last sync.
	Filesystems []image.Fingerprint `json:"filesystems,omitempty"`
	// Extra is recorded in the image's metadata as it is (notes for
	// people, such as why free pages are zeroed).
	Extra map[string]string `json:"extra,omitempty"`
	// Key is the derived master key of an encrypted image (never the key
	// file or passphrase). The handoff area is in the reserved region,
	// which no image contains; the original wipes it after the jump back.
	Key *image.Key `json:"key,omitempty"`
}

// TargetSpec tells the helper where the image goes, in terms it can act on
// without udev or the original's mounts: the original resolves UUID=,
// LABEL= and file paths before the jump.
type TargetSpec struct {
	Spec   string `json:"spec"`             // as the user gave it, for messages
	Device string `json:"device,omitempty"` // kernel block device (/dev/vda2) of a raw target or of the filesystem
	// PartUUID is a raw target partition's PARTUUID as the original read
	// it: the helper and restore kernels load only the target's drivers
	// and may name disks differently, so they find the partition by it
	// rather than trust Device (which there may be another disk's).
	PartUUID string `json:"partuuid,omitempty"`
	FSType   string `json:"fstype,omitempty"` // filesystem to mount; empty for raw targets
	Source   string `json:"source,omitempty"` // mount source when not a device (NFS: server:/export)
	Opts     string `json:"opts,omitempty"`   // mount options
	Path     string `json:"path,omitempty"`   // image file relative to the filesystem root
	// Net is the network the helper must bring up to reach Source (NFS).
	Net *NetConfig `json:"net,omitempty"`
	// File is a preallocated image file on a filesystem the original has
	// mounted: the helper writes its blocks on the device, never mounting it.
	File *storage.FileMap `json:"file,omitempty"`
}

// NetConfig is one IPv4 interface, found by its MAC address because the
// helper kernel may name interfaces differently.
type NetConfig struct {
	MAC     string `json:"mac"`
	Address string `json:"address"` // CIDR, e.g. 10.0.2.15/24
}

// Result is what the helper reports back.
type Result struct {
	OK         bool              `json:"ok"`
	Error      string            `json:"error,omitempty"`
	Mode       Mode              `json:"mode"`
	RAMBytes   uint64            `json:"ram_bytes"`
	ImageBytes uint64            `json:"image_bytes,omitempty"`
	Seconds    float64           `json:"seconds"`
	CPUs       int               `json:"cpus"`
	Details    map[string]string `json:"details,omitempty"`
}

// Handoff is a decoded handoff area.
type Handoff struct {
	Entry        uint64
	Instructions Instructions
	Result       *Result
}

// Encode lays out a fresh handoff area with instructions and no result;
// the entry field is left for the purgatory.
func Encode(in Instructions) ([]byte, error) {
	b := make([]byte, Size)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], version)
	js, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	defer clear(js) // it may hold a key
	if len(js) > resultOff-instrOff {
		return nil, fmt.Errorf("helper instructions are %d bytes; the handoff area holds %d", len(js), resultOff-instrOff)
	}
	binary.LittleEndian.PutUint32(b[instrLenField:], uint32(len(js)))
	copy(b[instrOff:], js)
	return b, nil
}

// encodeResult is r as the result part of the area: its length field and
// its JSON. A report too large for the area is replaced by one that says so.
func encodeResult(r Result) (length [4]byte, js []byte, err error) {
	if js, err = json.Marshal(r); err != nil {
		return length, nil, err
	}
	if len(js) > Size-resultOff {
		js, _ = json.Marshal(Result{Mode: r.Mode, Error: "result too large for the handoff area"})
	}
	binary.LittleEndian.PutUint32(length[:], uint32(len(js)))
	return length, js, nil
}

// SetResult stores r in the encoded handoff area b.
func SetResult(b []byte, r Result) error {
	n, js, err := encodeResult(r)
	if err != nil {
		return err
	}
	copy(b[resultLenField:], n[:])
	copy(b[resultOff:], js)
	return nil
}

// Decode parses a handoff area.
func Decode(b []byte) (Handoff, error) {
	var h Handoff
	if len(b) < Size || !bytes.Equal(b[:8], []byte(magic)) {
		return h, fmt.Errorf("handoff area has no kjump magic: the helper was not started by kjump, or the reserved region was overwritten")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != version {
		return h, fmt.Errorf("handoff area version %d, this kjump speaks %d: the helper initramfs and the running kjump are different builds; run 'hibernate prepare' to rebuild the initramfs with this kjump", v, version)
	}
	h.Entry = binary.LittleEndian.Uint64(b[entryField:])
	il := binary.LittleEndian.Uint32(b[instrLenField:])
	if il > resultOff-instrOff {
		return h, fmt.Errorf("handoff instructions length %d is out of range", il)
	}
	if err := json.Unmarshal(b[instrOff:instrOff+il], &h.Instructions); err != nil {
		return h, fmt.Errorf("handoff instructions: %w", err)
	}
	if rl := binary.LittleEndian.Uint32(b[resultLenField:]); rl != 0 {
		if rl > Size-resultOff {
			return h, fmt.Errorf("handoff result length %d is out of range", rl)
		}
		h.Result = new(Result)
		if err := json.Unmarshal(b[resultOff:resultOff+rl], h.Result); err != nil {
			return h, fmt.Errorf("handoff result: %w", err)
		}
	}
	return h, nil
}

// Memory is physical memory as physmem.Mem gives it.
type Memory interface {
	io.ReaderAt
	io.WriterAt
}

// Area is the handoff area at Addr in physical memory: every actor reads
// and writes it through this one value.
type Area struct {
	Mem  Memory
	Addr uint64
}

// Write lays out the instructions in the area, with no result. The
// encoded copy (which may hold a key) does not outlive the call.
func (a Area) Write(in Instructions) error {
	b, err := Encode(in)
	if err != nil {
		return fmt.Errorf("writing the handoff area: %w", err)
	}
	defer clear(b)
	if _, err := a.Mem.WriteAt(b, int64(a.Addr)); err != nil {
		return fmt.Errorf("writing the handoff area at %#x: %w", a.Addr, err)
	}
	return nil
}

// Read decodes the area.
func (a Area) Read() (Handoff, error) {
	b := make([]byte, Size)
	defer clear(b)
	if _, err := a.Mem.ReadAt(b, int64(a.Addr)); err != nil {
		return Handoff{}, fmt.Errorf("reading the handoff area at %#x: %w", a.Addr, err)
	}
	return Decode(b)
}

// Report stores the helper's result, leaving the instructions as they are:
// the JSON first, its length last.
func (a Area) Report(r Result) error {
	n, js, err := encodeResult(r)
	if err == nil {
		_, err = a.Mem.WriteAt(js, int64(a.Addr+resultOff))
	}
	if err == nil {
		_, err = a.Mem.WriteAt(n[:], int64(a.Addr+resultLenField))
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// Wipe zeroes the area: the instructions may hold a key.
func (a Area) Wipe() error {
	if _, err := a.Mem.WriteAt(make([]byte, Size), int64(a.Addr)); err != nil {
		return fmt.Errorf("clearing the handoff area: %w", err)
	}
	return nil
}

// RegionKey is the image metadata key (Metadata.Extra) that records the
// reserved region the image was made with, as RegionText writes it.
const RegionKey = "region"

// RegionText is the region as images record it: "0x30000000-0x38000000".
func RegionText(r phys.Range) string { return fmt.Sprintf("%#x-%#x", r.Start, r.End) }

// ParseRegion reads RegionText's form.
func ParseRegion(s string) (phys.Range, error) {
	a, b, ok := strings.Cut(s, "-")
	start, err1 := strconv.ParseUint(a, 0, 64)
	end, err2 := strconv.ParseUint(b, 0, 64)
	if !ok || err1 != nil || err2 != nil || end <= start {
		return phys.Range{}, fmt.Errorf("region %q is not START-END", s)
	}
	return phys.Range{Start: start, End: end}, nil
}
