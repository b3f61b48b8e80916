package jump

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump/purgatory"
	"github.com/kjump/kjump/internal/storage"
)

// The handoff area is how the original kernel, the purgatory and the helper
// talk. It lies in the reserved region outside every kexec segment, so what
// the helper writes survives the jump back (segments are swapped back).
//
//	0x0000  magic "KJHANDOF"
//	0x0008  u32 layout version
//	0x0010  u64 jump-back entry          (written by the purgatory)
//	0x0018  u32 instructions length      (original -> helper, JSON)
//	0x001c  u32 result length            (helper -> original, JSON; 0 = none)
//	0x0040  instructions JSON            (up to handoffResultOff)
//	0x4000  result JSON                  (up to HandoffSize)
const (
	HandoffSize       = 8 * PageSize
	handoffMagic      = "KJHANDOF"
	handoffVersion    = 1
	handoffInstrLen   = 0x18
	handoffResultLen  = 0x1c
	handoffInstrOff   = 0x40
	handoffResultOff  = 0x4000
	handoffEntryField = purgatory.HandoffEntryOffset
)

// Instructions tell the helper what to do. Written by the original before
// the jump.
type Instructions struct {
	Mode string `json:"mode"` // "probe", "checkpoint", "now"
	// SavedContext is the physical address of the original's saved_context
	// (0 on kernels that restore their own GDT).
	SavedContext uint64 `json:"saved_context"`
	Convention   string `json:"convention"`
	// Backup and JumpStub are where the purgatory saved low memory and
	// where the helper may put its jump-back stub.
	Backup   uint64     `json:"backup"`
	JumpStub uint64     `json:"jump_stub"`
	Target   TargetSpec `json:"target"`
	// ImageID names the verified image a restore kernel must restore.
	ImageID string `json:"image_id,omitempty"`
	// StoredHeaders is resume's VerifyStored Stats.Headers, hex: the
	// restore kernel restores with image.WithVerifiedStored.
	StoredHeaders string `json:"stored_headers,omitempty"`
	Level         string `json:"level,omitempty"`
	// Compression is the codec: "auto", "zstd" (also when empty) or "s2".
	Compression string `json:"compression,omitempty"`
	Threads     int    `json:"threads,omitempty"`
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
	// Extra carries mode-specific settings.
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
	FSType string `json:"fstype,omitempty"` // filesystem to mount; empty for raw targets
	Source string `json:"source,omitempty"` // mount source when not a device (NFS: server:/export)
	Opts   string `json:"opts,omitempty"`   // mount options
	Path   string `json:"path,omitempty"`   // image file relative to the filesystem root
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
	Mode       string            `json:"mode"`
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

// EncodeHandoff lays out a fresh handoff area with instructions and no
// result; the entry field is left for the purgatory.
func EncodeHandoff(in Instructions) ([]byte, error) {
	b := make([]byte, HandoffSize)
	copy(b, handoffMagic)
	binary.LittleEndian.PutUint32(b[8:], handoffVersion)
	js, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if len(js) > handoffResultOff-handoffInstrOff {
		return nil, fmt.Errorf("helper instructions are %d bytes; the handoff area holds %d", len(js), handoffResultOff-handoffInstrOff)
	}
	binary.LittleEndian.PutUint32(b[handoffInstrLen:], uint32(len(js)))
	copy(b[handoffInstrOff:], js)
	return b, nil
}

// SetResult stores r in the handoff area b.
func SetResult(b []byte, r Result) error {
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if len(js) > HandoffSize-handoffResultOff {
		js, _ = json.Marshal(Result{Mode: r.Mode, Error: "result too large for the handoff area"})
	}
	binary.LittleEndian.PutUint32(b[handoffResultLen:], uint32(len(js)))
	copy(b[handoffResultOff:], js)
	return nil
}

// DecodeHandoff parses a handoff area.
func DecodeHandoff(b []byte) (Handoff, error) {
	var h Handoff
	if len(b) < HandoffSize || !bytes.Equal(b[:8], []byte(handoffMagic)) {
		return h, fmt.Errorf("handoff area has no kjump magic: the helper was not started by kjump, or the reserved region was overwritten")
	}
	if v := binary.LittleEndian.Uint32(b[8:]); v != handoffVersion {
		return h, fmt.Errorf("handoff area version %d, this kjump speaks %d: use the same kjump build on both sides", v, handoffVersion)
	}
	h.Entry = binary.LittleEndian.Uint64(b[handoffEntryField:])
	il := binary.LittleEndian.Uint32(b[handoffInstrLen:])
	if il > handoffResultOff-handoffInstrOff {
		return h, fmt.Errorf("handoff instructions length %d is out of range", il)
	}
	if err := json.Unmarshal(b[handoffInstrOff:handoffInstrOff+il], &h.Instructions); err != nil {
		return h, fmt.Errorf("handoff instructions: %w", err)
	}
	if rl := binary.LittleEndian.Uint32(b[handoffResultLen:]); rl != 0 {
		if rl > HandoffSize-handoffResultOff {
			return h, fmt.Errorf("handoff result length %d is out of range", rl)
		}
		h.Result = new(Result)
		if err := json.Unmarshal(b[handoffResultOff:handoffResultOff+rl], h.Result); err != nil {
			return h, fmt.Errorf("handoff result: %w", err)
		}
	}
	return h, nil
}
