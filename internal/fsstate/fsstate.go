// Package fsstate is the stale-disk guard: it fingerprints the on-disk
// state of every block filesystem the hibernating kernel has mounted, and
// at resume tells whether any of them changed since. Resuming a kernel
// whose cached view of a filesystem no longer matches the disk (because
// another boot mounted, wrote or repaired it) corrupts that filesystem.
//
// The fingerprint is taken from the superblock as it is on the disk (read
// with O_DIRECT, past this kernel's cache): ext2/3/4 bump the mount count
// and mount time on every mount, write time and kilobytes written on every
// superblock update, btrfs its generation on every commit; the whole
// superblock is also hashed, so any other on-disk change to it counts too.
package fsstate

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/storage"
)

// Mounted fingerprints the block filesystems in mountinfo (normally
// /proc/self/mountinfo) of the types the guard understands. A filesystem
// whose superblock cannot be read is an error: hibernating without its
// guard would be unsafe to resume.
func Mounted(mountinfo string) ([]image.Fingerprint, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []image.Fingerprint
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 5 || len(b) < 2 || !guarded(b[0]) || seen[a[2]] {
			continue
		}
		seen[a[2]] = true
		dev, err := deviceNode(a[2])
		if err != nil {
			return nil, fmt.Errorf("%s (mounted on %s): %w", b[1], a[4], err)
		}
		fp, err := Read(dev, b[0])
		if err != nil {
			return nil, fmt.Errorf("fingerprinting %s (mounted on %s) for the stale-disk guard: %w", dev, a[4], err)
		}
		out = append(out, fp)
	}
	return out, sc.Err()
}

func guarded(fstype string) bool {
	switch fstype {
	case "ext2", "ext3", "ext4", "btrfs", "xfs":
		return true
	}
	return false
}

// deviceNode finds /dev/NAME for a MAJ:MIN pair (mountinfo may say
// /dev/root, which does not exist).
func deviceNode(majMin string) (string, error) {
	b, err := os.ReadFile("/sys/dev/block/" + majMin + "/uevent")
	if err != nil {
		return "", fmt.Errorf("no block device %s: %w", majMin, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			return "/dev/" + v, nil
		}
	}
	return "", fmt.Errorf("block device %s has no name", majMin)
}

// superblock says where a filesystem type keeps its superblock.
type superblock struct {
	off, len int64
	parse    func(b []byte) (uuid, gen string, ok bool)
}

var superblocks = map[string]superblock{
	"ext2": {1024, 1024, parseExt}, "ext3": {1024, 1024, parseExt}, "ext4": {1024, 1024, parseExt},
	"btrfs": {64 << 10, 4096, parseBtrfs},
	"xfs":   {0, 512, parseXFS},
}

// Read fingerprints the filesystem of type fstype on dev.
func Read(dev, fstype string) (image.Fingerprint, error) {
	sb, ok := superblocks[fstype]
	if !ok {
		return image.Fingerprint{}, fmt.Errorf("no stale-disk guard for %s filesystems", fstype)
	}
	b, err := readDirect(dev, sb.off, sb.len)
	if err != nil {
		return image.Fingerprint{}, err
	}
	uuid, gen, ok := sb.parse(b)
	if !ok {
		return image.Fingerprint{}, fmt.Errorf("%s holds no %s superblock", dev, fstype)
	}
	sum := sha256.Sum256(b)
	return image.Fingerprint{Device: dev, UUID: uuid, Type: fstype, Generation: fmt.Sprintf("%s sum=%x", gen, sum[:6])}, nil
}

// readDirect reads n bytes at off from the disk itself, not from this
// kernel's cache of it.
func readDirect(dev string, off, n int64) ([]byte, error) {
	b, err := storage.ReadDirect(dev, off, int(n))
	if err != nil {
		return nil, fmt.Errorf("reading the superblock of %s: %w", dev, err)
	}
	return b, nil
}

var le = binary.LittleEndian

func parseExt(b []byte) (string, string, bool) {
	if le.Uint16(b[56:]) != 0xEF53 {
		return "", "", false
	}
	return uuidString(b[104:120]), fmt.Sprintf("mounts=%d mounted=%s written=%s kbytes_written=%d state=%d",
		le.Uint16(b[52:]), unixTime(le.Uint32(b[44:])), unixTime(le.Uint32(b[48:])), le.Uint64(b[0x178:]), le.Uint16(b[58:])), true
}

func parseBtrfs(b []byte) (string, string, bool) {
	if string(b[0x40:0x48]) != "_BHRfS_M" {
		return "", "", false
	}
	return uuidString(b[0x20:0x30]), fmt.Sprintf("generation=%d", le.Uint64(b[0x48:])), true
}

func parseXFS(b []byte) (string, string, bool) {
	if string(b[0:4]) != "XFSB" {
		return "", "", false
	}
	// XFS keeps its counters in the log; the superblock hash still sees
	// mounts that change it (and xfs_repair).
	return uuidString(b[32:48]), "xfs", true
}

func unixTime(s uint32) string { return time.Unix(int64(s), 0).UTC().Format("2006-01-02T15:04:05Z") }

func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// StaleError names the filesystem that changed and how.
type StaleError struct {
	Saved, Now image.Fingerprint
}

func (e *StaleError) Error() string {
	return fmt.Sprintf("filesystem %s (%s on %s) changed since hibernation (was: %s; now: %s): it was mounted, written or repaired by another boot, and resuming would corrupt it",
		e.Saved.UUID, e.Saved.Type, e.Now.Device, e.Saved.Generation, e.Now.Generation)
}

// ErrMissing means a filesystem mounted at hibernation is not attached now.
var ErrMissing = errors.New("filesystem not found")

// Check compares each saved fingerprint with the disk now. It returns the
// first change as a *StaleError; filesystems it cannot find are returned
// in missing (a removed USB disk does not make resuming unsafe: the
// resumed kernel sees it gone).
func Check(saved []image.Fingerprint) (missing []image.Fingerprint, err error) {
	for _, s := range saved {
		now, err := find(s)
		if errors.Is(err, ErrMissing) {
			missing = append(missing, s)
			continue
		}
		if err != nil {
			return missing, err
		}
		if now.Generation != s.Generation {
			return missing, &StaleError{Saved: s, Now: now}
		}
	}
	return missing, nil
}

// find reads the filesystem with s's UUID: at its old device name if that
// still holds it, otherwise on any block device.
func find(s image.Fingerprint) (image.Fingerprint, error) {
	if fp, err := Read(s.Device, s.Type); err == nil && fp.UUID == s.UUID {
		return fp, nil
	}
	devs, _ := os.ReadDir("/sys/class/block")
	for _, d := range devs {
		if fp, err := Read("/dev/"+d.Name(), s.Type); err == nil && fp.UUID == s.UUID {
			return fp, nil
		}
	}
	return image.Fingerprint{}, fmt.Errorf("%w: %s (%s, was %s)", ErrMissing, s.UUID, s.Type, s.Device)
}
