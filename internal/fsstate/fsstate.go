// Package fsstate is the stale-disk guard: it fingerprints the on-disk
// state of every block filesystem the hibernating kernel has mounted, and
// at resume tells whether any of them changed since. Resuming a kernel
// whose cached view of a filesystem no longer matches the disk (because
// another boot mounted, wrote or repaired it, or because the checkpointed
// kernel itself kept writing after the image) corrupts that filesystem and
// silently rolls the machine back.
//
// The state is read from the disk itself (O_DIRECT, past this kernel's
// cache) and must move with every committed change: ext4's journal (the
// next transaction id the log does not hold), xfs's log head, btrfs's
// superblock generation; see ext4.go, xfs.go, btrfs.go. A block filesystem
// whose state the guard cannot read (another type, an external journal, an
// unreadable device) is "unproven": resume refuses it unless told to
// accept it (Check's allowUnproven).
package fsstate

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/image"
)

// Mounted fingerprints every block filesystem in mountinfo (normally
// /proc/self/mountinfo), settling each writable one first (see settle).
// Filesystems not on a block device (tmpfs, proc,
// NFS, overlay, FUSE) keep their state in RAM or on a server and are not
// listed. Only an unreadable mountinfo is an error: a filesystem whose
// state cannot be read is recorded as unproven.
func Mounted(mountinfo string) ([]image.Fingerprint, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []image.Fingerprint
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 5 || len(b) < 2 {
			continue
		}
		dev, err := deviceNode(a[2])
		if err != nil && guarded(b[0]) && strings.HasPrefix(b[1], "/dev/") {
			// btrfs reports an anonymous device number: use its source.
			dev, err = b[1], nil
		}
		if err != nil || seen[dev] {
			continue
		}
		seen[dev] = true
		if guarded(b[0]) && !readOnly(a[5]) {
			if err := settle(unescape(a[4])); err != nil {
				// The state may then move on its own: a false refusal
				// at worst, never a missed change.
				fmt.Fprintf(os.Stderr, "warning: %v\n", err)
			}
		}
		out = append(out, Read(dev, b[0]))
	}
	return out, sc.Err()
}

func readOnly(opts string) bool {
	for _, o := range strings.Split(opts, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
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

// state is one filesystem's on-disk state as the guard reads it.
type state struct {
	uuid     string
	gen      string // equal means unchanged (when proven)
	unproven string // why gen cannot prove the filesystem unchanged
}

// Read fingerprints the filesystem of type fstype on dev. It always
// returns a fingerprint; one the guard cannot prove is marked unproven
// with the reason (see Unproven).
func Read(dev, fstype string) image.Fingerprint {
	st, err := readState(dev, fstype, "")
	if err != nil {
		st = state{unproven: "its state cannot be read: " + err.Error()}
	}
	return image.Fingerprint{Device: dev, UUID: st.uuid, Type: fstype, Generation: encode(st)}
}

// readState reads dev's state; with want set, it stops after the
// superblock when the UUID differs.
func readState(dev, fstype, want string) (state, error) {
	d, err := openDisk(dev)
	if err != nil {
		return state{}, err
	}
	defer d.Close()
	var st state
	switch fstype {
	case "ext2", "ext3", "ext4":
		st, err = readExt(d, fstype, want)
	case "xfs":
		st, err = readXFS(d, want)
	case "btrfs":
		st, err = readBtrfs(d)
	default:
		st.unproven = "kjump cannot read the state of " + fstype + " filesystems"
	}
	return st, err
}

// A fingerprint's Generation is the state, after "unproven: REASON; "
// when the guard cannot prove it.
const unprovenPrefix = "unproven: "

func encode(st state) string {
	if st.unproven == "" {
		return st.gen
	}
	return unprovenPrefix + strings.ReplaceAll(st.unproven, "; ", ", ") + "; " + st.gen
}

func decode(g string) (reason, gen string) {
	rest, ok := strings.CutPrefix(g, unprovenPrefix)
	if !ok {
		return "", g
	}
	reason, gen, _ = strings.Cut(rest, "; ")
	return reason, gen
}

// Unproven returns why fp cannot prove its filesystem unchanged ("" when
// it can).
func Unproven(fp image.Fingerprint) string {
	r, _ := decode(fp.Generation)
	return r
}

func unixTime(s uint32) string { return time.Unix(int64(s), 0).UTC().Format("2006-01-02T15:04:05Z") }

func uuidString(b []byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Change is one filesystem that changed since the image, or that the guard
// cannot prove unchanged.
type Change struct {
	Saved, Now image.Fingerprint
	Unproven   string // why it cannot be proven; "" for a proven change
}

func (c Change) name() string {
	id := c.Saved.UUID
	if id == "" {
		id = "(no UUID)"
	}
	dev := c.Now.Device
	if dev == "" {
		dev = c.Saved.Device
	}
	return fmt.Sprintf("filesystem %s (%s on %s)", id, c.Saved.Type, dev)
}

func (c Change) String() string {
	if c.Unproven != "" {
		return fmt.Sprintf("%s cannot be proven unchanged since the image: %s", c.name(), c.Unproven)
	}
	return fmt.Sprintf("%s changed since hibernation (was: %s; now: %s)", c.name(), c.Saved.Generation, c.Now.Generation)
}

// StaleError names every filesystem that changed since the image or that
// cannot be proven unchanged: resuming onto them would corrupt them and
// roll the machine back.
type StaleError struct {
	Changes []Change
}

func (e *StaleError) Error() string {
	var parts []string
	proven, unproven := false, false
	for _, c := range e.Changes {
		parts = append(parts, c.String())
		if c.Unproven != "" {
			unproven = true
		} else {
			proven = true
		}
	}
	msg := strings.Join(parts, "; ")
	if proven {
		msg += ": written, mounted or repaired after the image was made (by this machine after a checkpoint, or by another boot), and resuming would corrupt it"
	}
	if unproven {
		msg += ": resuming is refused unless resume.allow_unproven = true (kjump.conf) or kjump.allow_unproven (kernel command line) accepts filesystems kjump cannot check"
	}
	return msg
}

// Unproven reports whether every change is only unproven (none proven).
func (e *StaleError) Unproven() bool {
	for _, c := range e.Changes {
		if c.Unproven == "" {
			return false
		}
	}
	return true
}

// ErrMissing means a filesystem mounted at hibernation is not attached now.
var ErrMissing = errors.New("filesystem not found")

// Result sorts the filesystems Check looked at.
type Result struct {
	Unchanged []image.Fingerprint // proven unchanged (as found now)
	// Missing are not attached now (a removed USB disk does not make
	// resuming unsafe: the resumed kernel sees it gone).
	Missing []image.Fingerprint
	// Accepted cannot be proven unchanged and were let through by
	// allowUnproven.
	Accepted []image.Fingerprint
}

// Check compares each saved fingerprint with the disk now and returns
// every change as one *StaleError. A proven change is always refused;
// unproven filesystems are refused unless allowUnproven.
func Check(saved []image.Fingerprint, allowUnproven bool) (Result, error) {
	var changes []Change
	var res Result
	for _, s := range saved {
		now, err := find(s)
		if errors.Is(err, ErrMissing) && assembled(s.Device) {
			// Not a pulled disk: a volume early boot has not set up yet,
			// whose disks are there and may have changed underneath.
			err = fmt.Errorf("%s is a device-mapper or md volume that is not set up at resume, so it cannot be read", s.Device)
		}
		if errors.Is(err, ErrMissing) {
			res.Missing = append(res.Missing, s)
			continue
		}
		var gone *replacedError
		if errors.As(err, &gone) {
			changes = append(changes, Change{Saved: s, Now: image.Fingerprint{Device: s.Device, Type: s.Type, Generation: gone.Error()}})
			continue
		}
		if err != nil {
			// Its device is there but the guard cannot read it now.
			now = image.Fingerprint{Device: s.Device, UUID: s.UUID, Type: s.Type, Generation: encode(state{unproven: err.Error()})}
		}
		sr, sg := decode(s.Generation)
		nr, ng := decode(now.Generation)
		switch {
		case sg != "" && ng != "" && sg != ng:
			changes = append(changes, Change{Saved: s, Now: now})
		case sr != "" || nr != "":
			if allowUnproven {
				res.Accepted = append(res.Accepted, s)
				continue
			}
			changes = append(changes, Change{Saved: s, Now: now, Unproven: firstOf(sr, nr)})
		case sg != ng:
			changes = append(changes, Change{Saved: s, Now: now})
		default:
			res.Unchanged = append(res.Unchanged, now)
		}
	}
	if len(changes) > 0 {
		return res, &StaleError{Changes: changes}
	}
	return res, nil
}

// Names lists filesystems for a log line: "ext4 /dev/vdb, xfs /dev/vdc".
func Names(fps []image.Fingerprint) string {
	var n []string
	for _, f := range fps {
		n = append(n, f.Type+" "+f.Device)
	}
	return strings.Join(n, ", ")
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// find reads the filesystem with s's UUID: at its old device name if that
// still holds it, otherwise on any block device. A filesystem without a
// UUID (one the guard cannot read) is looked for at its device name.
func find(s image.Fingerprint) (image.Fingerprint, error) {
	if !guarded(s.Type) || s.UUID == "" {
		if !present(s.Device) {
			return image.Fingerprint{}, fmt.Errorf("%w: %s (%s)", ErrMissing, s.Device, s.Type)
		}
		return Read(s.Device, s.Type), nil
	}
	if st, err := readState(s.Device, s.Type, s.UUID); err == nil && st.uuid == s.UUID {
		return image.Fingerprint{Device: s.Device, UUID: st.uuid, Type: s.Type, Generation: encode(st)}, nil
	}
	devs, _ := os.ReadDir("/sys/class/block")
	for _, d := range devs {
		dev := "/dev/" + d.Name()
		if st, err := readState(dev, s.Type, s.UUID); err == nil && st.uuid == s.UUID {
			return image.Fingerprint{Device: dev, UUID: st.uuid, Type: s.Type, Generation: encode(st)}, nil
		}
	}
	if present(s.Device) {
		// Something else is on its device now: reformatted or replaced.
		// The resumed kernel would write its old view over it.
		return image.Fingerprint{}, &replacedError{s.Device}
	}
	return image.Fingerprint{}, fmt.Errorf("%w: %s (%s, was %s)", ErrMissing, s.UUID, s.Type, s.Device)
}

// assembled reports whether dev is a volume built from other disks
// (LVM, dm-crypt, md RAID): the resumed kernel keeps writing through it
// to disks that are present even when early boot has not set it up.
func assembled(dev string) bool {
	name := strings.TrimPrefix(dev, "/dev/")
	return strings.HasPrefix(name, "dm-") || strings.HasPrefix(name, "md") || strings.HasPrefix(name, "mapper/")
}

// present reports whether dev is a block device with media (loop devices
// without a backing file read as size 0).
func present(dev string) bool {
	d, err := openDisk(dev)
	if err != nil {
		return false
	}
	defer d.Close()
	return d.size > 0
}

// replacedError: the filesystem is on no disk, and its device holds
// something else (reformatted or replaced).
type replacedError struct{ dev string }

func (e *replacedError) Error() string {
	return "not found on any disk; " + e.dev + " holds something else now (reformatted or replaced?)"
}
