package storage

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// A mapped file is a preallocated file on a filesystem the sleeping kernel
// has mounted, used like a swap file: kernels that must not touch that
// filesystem (the helper, the restore kernel) read and write its blocks
// directly on the block device, at the addresses FIEMAP reported. Writing
// data blocks in place changes no filesystem metadata, so the mounted
// filesystem stays consistent. The file holds what a raw device holds: a
// signature block, then the image. While it holds no committed image, the
// signature block is a marker:
//
//	off len field
//	  0   8 magic "KJUMPMAP"
//	  8   4 version (1)
//	 12   4 reserved, zero
//	 16   8 file size
//	 24  16 token (random, set by the original just before each jump)
//	 40   4 CRC32C of bytes 0..39
//
// The token proves to the helper that the device and addresses it was given
// really hold this file before it writes a byte.
const (
	mapMagic   = "KJUMPMAP"
	mapVersion = 1
	tokenLen   = 16
)

// FileMap is where a mapped file's bytes lie on its block device.
type FileMap struct {
	Path    string   `json:"path"`    // as the original sees it, for messages
	Device  string   `json:"device"`  // block device holding the filesystem (/dev/vdb1)
	FSUUID  string   `json:"fs_uuid"` // that filesystem's UUID, to find the device under another name
	Size    int64    `json:"size"`
	Extents []Extent `json:"extents"`
	Token   string   `json:"token,omitempty"` // hex, see SetToken
}

// MinMappedSize is the smallest file Preallocate makes: a signature block
// and room for a small image.
const MinMappedSize = 16 << 20

// Preallocate creates a mapped image file of size bytes (rounded up to 4 KiB):
// allocated with fallocate, then really written, so no extent is left
// "unwritten" (a raw write there would read back as zeros through the
// filesystem). The directory is created 0700 and the file 0600.
func Preallocate(path string, size int64) error {
	size = (max(size, MinMappedSize) + 4095) &^ 4095
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return wrap(path, "create directory for", err)
	}
	tmp := path + ".prealloc"
	os.Remove(tmp)
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return wrap(path, "create", err)
	}
	fail := func(op string, err error) error {
		f.Close()
		os.Remove(tmp)
		return wrap(path, op, err)
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, size); err != nil {
		return fail(fmt.Sprintf("allocate %d MiB for", size>>20), err)
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		n := min(int64(len(buf)), size-off)
		if _, err := f.WriteAt(buf[:n], off); err != nil {
			return fail("fill", err)
		}
	}
	if _, err := f.WriteAt(encodeMarker(size, nil), 0); err != nil {
		return fail("write marker to", err)
	}
	if err := f.Sync(); err != nil {
		return fail("sync", err)
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return wrap(path, "publish", err)
	}
	return wrap(path, "sync directory of", syncDir(dir))
}

func encodeMarker(size int64, token []byte) []byte {
	b := make([]byte, SignatureSize)
	copy(b, mapMagic)
	binary.LittleEndian.PutUint32(b[8:], mapVersion)
	binary.LittleEndian.PutUint64(b[16:], uint64(size))
	copy(b[24:40], token)
	binary.LittleEndian.PutUint32(b[40:], crc32.Checksum(b[:40], castagnoli))
	return b
}

// markerToken returns the token of a valid marker block.
func markerToken(b []byte) ([]byte, bool) {
	if len(b) < 44 || string(b[:8]) != mapMagic || crc32.Checksum(b[:40], castagnoli) != binary.LittleEndian.Uint32(b[40:]) {
		return nil, false
	}
	return b[24:40], true
}

// isMappedFile tells a mapped file (marker or signature at offset 0) from
// an ordinary image file (which starts with the image header).
func isMappedFile(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return hasMappedMagic(f)
}

func hasMappedMagic(f *os.File) bool {
	magic := make([]byte, 8)
	if _, err := f.ReadAt(magic, 0); err != nil {
		return false
	}
	return string(magic) == mapMagic || string(magic) == signatureMagic
}

// MapFile prepares a mapped file for a kernel that will write it directly
// on the block device: it writes a fresh token (which also makes any image
// in the file non-resumable), syncs, and reports where the blocks are.
// The file must come from Preallocate.
func MapFile(path string) (*FileMap, error) {
	f, size, err := openSized(path, os.O_RDWR)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !hasMappedMagic(f) {
		return nil, fmt.Errorf("%s exists but is not a preallocated kjump image file: remove it (kjump then preallocates one, like a swap file) or choose another path", path)
	}
	token := make([]byte, tokenLen)
	rand.Read(token)
	if _, err := f.WriteAt(encodeMarker(size, token), 0); err != nil {
		return nil, wrap(path, "write marker to", err)
	}
	if err := f.Sync(); err != nil {
		return nil, wrap(path, "sync", err)
	}
	m, err := mapOpenFile(f, path, size)
	if err != nil {
		return nil, err
	}
	m.Token = hex.EncodeToString(token)
	// Our own cached copy of the marker would hide what the helper writes.
	unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	return m, nil
}

// LocateFile reports where a mapped file's blocks are without changing it
// (resume passes this to the restore kernel).
func LocateFile(path string) (*FileMap, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no kjump image file at %s: %w", path, err)
	}
	f, size, err := openSized(path, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if !hasMappedMagic(f) {
		return nil, fmt.Errorf("%s is not a kjump image file", path)
	}
	return mapOpenFile(f, path, size)
}

// openSized opens an image file (checked on the opened descriptor, see
// openPrivate) and returns its size.
func openSized(path string, flag int) (*os.File, int64, error) {
	f, err := openPrivate(path, path, flag)
	if err != nil {
		return nil, 0, wrap(path, "open", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, wrap(path, "stat", err)
	}
	return f, fi.Size(), nil
}

// SplitDevicePath splits "DEVICE:/path/in/fs", how early boot names an
// image file on a filesystem nobody has mounted yet; DEVICE is a /dev path
// or UUID=, LABEL=, PARTUUID=, PARTLABEL=.
func SplitDevicePath(spec string) (dev, path string, ok bool) {
	dev, path, ok = strings.Cut(spec, ":/")
	if !ok || dev == "" {
		return "", "", false
	}
	k, _, tagged := strings.Cut(dev, "=")
	if !strings.HasPrefix(dev, "/dev/") && !(tagged && isTag(k)) {
		return "", "", false
	}
	return dev, "/" + path, true
}

// MountReadOnly mounts the filesystem on dev (a path or tag) read-only
// without replaying its journal, so that nothing on it changes before the
// saved kernel, which has it mounted, is back. The caller unmounts.
func MountReadOnly(dev string) (dir string, unmount func(), err error) {
	if k, _, ok := strings.Cut(dev, "="); ok && isTag(k) {
		if dev, err = Resolve(dev); err != nil {
			return "", nil, err
		}
	}
	if err := os.MkdirAll("/run/kjump", 0o700); err != nil {
		return "", nil, err
	}
	dir, err = os.MkdirTemp("/run/kjump", "mnt-")
	if err != nil {
		return "", nil, err
	}
	var errs []string
	for _, fs := range []struct{ typ, opts string }{{"ext4", "noload"}, {"xfs", "norecovery"}} {
		err := unix.Mount(dev, dir, fs.typ, unix.MS_RDONLY|unix.MS_NOATIME, fs.opts)
		if err == nil {
			return dir, func() { unix.Unmount(dir, 0); os.Remove(dir) }, nil
		}
		errs = append(errs, fs.typ+": "+err.Error())
	}
	os.Remove(dir)
	return "", nil, fmt.Errorf("cannot mount %s read-only to find the image file (%s): is it the ext4 or xfs filesystem holding the file?", dev, strings.Join(errs, "; "))
}

// mapOpenFile checks the file can be written behind its filesystem's back
// and returns its extents.
func mapOpenFile(f *os.File, path string, size int64) (*FileMap, error) {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
		return nil, wrap(path, "statfs", err)
	}
	switch sfs.Type {
	case unix.EXT4_SUPER_MAGIC, unix.XFS_SUPER_MAGIC:
	default:
		// btrfs and others checksum or relocate data blocks: a raw write
		// would corrupt the file or land on a stale copy.
		return nil, fmt.Errorf("%s is on %s, which kjump cannot write behind its back: put the image file on ext4 or xfs, or use a raw partition or NFS", path, fsName(sfs.Type))
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, wrap(path, "stat", err)
	}
	dev, err := blockDevice(unix.Major(st.Dev), unix.Minor(st.Dev))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	exts, err := fiemap(f, size)
	if err != nil {
		return nil, wrap(path, "map blocks of", err)
	}
	m := &FileMap{Path: path, Device: dev, Size: size}
	next := int64(0)
	for _, e := range exts {
		switch {
		case e.Logical != next:
			return nil, fmt.Errorf("%s has a hole at offset %d: remove it and hibernate again to recreate it", path, next)
		case e.flags&fiemapExtentUnwritten != 0:
			return nil, fmt.Errorf("%s has blocks that were allocated but never written: remove it and hibernate again to recreate it", path)
		case e.flags&fiemapExtentShared != 0:
			return nil, fmt.Errorf("%s shares blocks with another file (reflink copy): writing them directly would change both; remove it and hibernate again to recreate it", path)
		case e.flags&fiemapUnusable != 0 || e.Physical%512 != 0 || e.Length%512 != 0:
			return nil, fmt.Errorf("%s has blocks without a fixed, aligned disk address (extent flags %#x): the filesystem cannot host an image file; use a raw partition or NFS", path, e.flags)
		}
		if n := len(m.Extents); n > 0 && m.Extents[n-1].Physical+m.Extents[n-1].Length == e.Physical {
			m.Extents[n-1].Length += e.Length
		} else {
			m.Extents = append(m.Extents, e.Extent)
		}
		next = e.End()
	}
	if next < size {
		return nil, fmt.Errorf("%s: only %d of %d bytes have disk blocks: remove it and hibernate again to recreate it", path, next, size)
	}
	if sb, err := readAt(dev, 0, 4096); err == nil {
		m.FSUUID, _ = superblockID(sb)
	}
	return m, nil
}

// blockDevice names the device node of a filesystem's device number, and
// refuses stacked devices (device mapper, md, loop) that another kernel
// would not see without their configuration.
func blockDevice(major, minor uint32) (string, error) {
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", major, minor)
	b, err := os.ReadFile(sys + "/uevent")
	if err != nil {
		return "", fmt.Errorf("its filesystem is not on a block device (device %d:%d): use ext4 or xfs on a disk partition", major, minor)
	}
	name := ""
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
			name = v
		}
	}
	for _, p := range stackedDevices {
		if strings.HasPrefix(name, p) {
			return "", fmt.Errorf("its filesystem is on %s, a stacked device the helper kernel cannot set up: put the image file on a filesystem on a plain disk partition, or use a raw partition or NFS", name)
		}
	}
	if name == "" {
		return "", fmt.Errorf("no device name for block device %d:%d", major, minor)
	}
	return "/dev/" + name, nil
}

// stackedDevices are device name prefixes another kernel cannot see
// without their configuration (tests allow loop devices).
var stackedDevices = []string{"dm-", "md", "loop", "nbd", "zram"}

func readAt(path string, off int64, n int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, n)
	_, err = f.ReadAt(b, off)
	return b, err
}

// extentVolume reads and writes a mapped file through its block device.
type extentVolume struct {
	dev  *os.File
	m    *FileMap
	name string
}

func (v *extentVolume) Size() int64 { return v.m.Size }

// span calls fn for each device piece of [off, off+n).
func (v *extentVolume) span(off int64, n int, fn func(devOff int64, lo, hi int) error) error {
	done := 0
	for done < n {
		pos := off + int64(done)
		e, ok := v.m.extentAt(pos)
		if !ok {
			return &Error{Target: v.name, Op: "access image in", Err: fmt.Errorf("offset %d is outside the file's %d bytes: %w", pos, v.m.Size, unix.ENOSPC)}
		}
		k := int(min(int64(n-done), e.End()-pos))
		if err := fn(e.Physical+pos-e.Logical, done, done+k); err != nil {
			return err
		}
		done += k
	}
	return nil
}

func (m *FileMap) extentAt(off int64) (Extent, bool) {
	lo, hi := 0, len(m.Extents)
	for lo < hi {
		mid := (lo + hi) / 2
		switch e := m.Extents[mid]; {
		case off < e.Logical:
			hi = mid
		case off >= e.End():
			lo = mid + 1
		default:
			return e, off < m.Size
		}
	}
	return Extent{}, false
}

func (v *extentVolume) ReadAt(p []byte, off int64) (int, error) {
	short := false
	if off >= v.m.Size {
		return 0, io.EOF
	}
	if off+int64(len(p)) > v.m.Size {
		p, short = p[:v.m.Size-off], true
	}
	err := v.span(off, len(p), func(d int64, lo, hi int) error {
		_, err := v.dev.ReadAt(p[lo:hi], d)
		return err
	})
	if err != nil {
		return 0, wrap(v.name, "read image from", err)
	}
	if short {
		return len(p), io.EOF
	}
	return len(p), nil
}

func (v *extentVolume) WriteAt(p []byte, off int64) (int, error) {
	err := v.span(off, len(p), func(d int64, lo, hi int) error {
		_, err := v.dev.WriteAt(p[lo:hi], d)
		return err
	})
	if err != nil {
		return 0, wrap(v.name, "write image to", err)
	}
	return len(p), nil
}

func (v *extentVolume) Sync() error  { return v.dev.Sync() }
func (v *extentVolume) Close() error { return v.dev.Close() }

// OpenMapped opens a mapped file on its block device for a kernel that has
// no filesystem mounted (the helper, the restore kernel). With a token set
// it first checks that the device holds the marker the original wrote, and
// otherwise looks for the filesystem by UUID under other device names.
func OpenMapped(m FileMap) (Target, error) {
	name := fmt.Sprintf("%s (on %s)", m.Path, m.Device)
	if len(m.Extents) == 0 || m.Size < SignatureSize {
		return nil, fmt.Errorf("image file %s: no extents given", name)
	}
	check := func(dev string) error {
		if m.Token == "" {
			return nil
		}
		want, err := hex.DecodeString(m.Token)
		if err != nil {
			return fmt.Errorf("bad token %q", m.Token)
		}
		f, err := os.Open(dev)
		if err != nil {
			return err
		}
		defer f.Close()
		b := make([]byte, SignatureSize)
		if _, err := f.ReadAt(b, m.Extents[0].Physical); err != nil {
			return err
		}
		if tok, ok := markerToken(b); !ok || !bytes.Equal(tok, want) {
			return fmt.Errorf("%s at byte %d does not hold the marker the original kernel just wrote", dev, m.Extents[0].Physical)
		}
		return nil
	}
	err := check(m.Device)
	if err != nil && m.FSUUID != "" {
		if dev, rerr := Resolve("UUID=" + m.FSUUID); rerr == nil && dev != m.Device {
			if check(dev) == nil {
				m.Device, err = dev, nil
				name = fmt.Sprintf("%s (on %s)", m.Path, dev)
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("image file %s: %w; refusing to write blocks that may belong to something else (was the file moved, or the disk renamed?)", name, err)
	}
	mm := m
	return &blockTarget{name: name, spec: m.Path, blank: encodeMarker(m.Size, nil),
		open: func(writable, excl bool) (volume, error) {
			flag := os.O_RDONLY
			if writable {
				flag = os.O_RDWR
			}
			f, err := os.OpenFile(mm.Device, flag, 0)
			if err != nil {
				return nil, wrap(name, "open device of", err)
			}
			return &extentVolume{dev: f, m: &mm, name: name}, nil
		}}, nil
}

// openMappedFile is a mapped file seen through its mounted filesystem.
// Reads go through the file; writes too, unless the filesystem is mounted
// read-only (early boot mounts it so, without journal replay, to find the
// image), in which case they go to the device at the file's extents.
func openMappedFile(path, spec string) (Target, error) {
	real, err := checkPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", spec, err)
	}
	return &blockTarget{name: path, spec: spec, blank: nil,
		open: func(writable, excl bool) (volume, error) {
			f, size, err := openSized(real, os.O_RDONLY)
			if err != nil {
				return nil, err
			}
			if !writable {
				return &fileVolume{File: f, size: size}, nil
			}
			var sfs unix.Statfs_t
			if err := unix.Fstatfs(int(f.Fd()), &sfs); err != nil {
				f.Close()
				return nil, wrap(path, "statfs", err)
			}
			if sfs.Flags&unix.ST_RDONLY == 0 {
				f.Close()
				if f, err = openPrivate(real, path, os.O_RDWR); err != nil {
					return nil, wrap(path, "open", err)
				}
				return &fileVolume{File: f, size: size}, nil
			}
			defer f.Close()
			m, err := mapOpenFile(f, path, size)
			if err != nil {
				return nil, err
			}
			dev, err := os.OpenFile(m.Device, os.O_RDWR, 0)
			if err != nil {
				return nil, wrap(path, "open device of", err)
			}
			return &extentVolume{dev: dev, m: m, name: path}, nil
		}}, nil
}

// DropCache makes this kernel forget cached pages of path, after another
// kernel wrote its blocks directly.
func DropCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// fsName names a filesystem by its statfs magic for messages (people know
// "btrfs", not 0x9123683e).
func fsName(magic int64) string {
	names := map[int64]string{unix.BTRFS_SUPER_MAGIC: "btrfs", unix.TMPFS_MAGIC: "tmpfs", unix.NFS_SUPER_MAGIC: "NFS",
		unix.OVERLAYFS_SUPER_MAGIC: "overlayfs", unix.MSDOS_SUPER_MAGIC: "FAT", unix.F2FS_SUPER_MAGIC: "f2fs",
		unix.FUSE_SUPER_MAGIC: "a FUSE filesystem", unix.SMB2_SUPER_MAGIC: "SMB", unix.CIFS_SUPER_MAGIC: "CIFS",
		unix.RAMFS_MAGIC: "ramfs", unix.SQUASHFS_MAGIC: "squashfs", unix.BCACHEFS_SUPER_MAGIC: "bcachefs",
		0x2fc12fc1: "ZFS", unix.EXFAT_SUPER_MAGIC: "exFAT", 0x5346544e: "NTFS"}
	if n, ok := names[magic]; ok {
		return n
	}
	return fmt.Sprintf("a filesystem of type %#x", magic)
}
