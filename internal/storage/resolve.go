package storage

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
)

// Resolve turns UUID=, LABEL=, PARTUUID= or PARTLABEL= into a device path.
// It follows /dev/disk/by-* when udev made them and otherwise probes the
// block devices in /sys/class/block itself (helper kernels and early boot
// have no udev): GPT and MBR partition tables for PARTUUID/PARTLABEL,
// ext2/3/4 and swap superblocks for UUID/LABEL.
//
// A raw image overwrites the start of the device, and with it a filesystem
// or swap UUID and LABEL; use PARTUUID= or PARTLABEL= for raw targets.
func Resolve(spec string) (string, error) {
	ps, err := ParseSpec(spec)
	if err != nil {
		return "", err
	}
	if ps.Tag == "" {
		return "", fmt.Errorf("%s is not a UUID=, LABEL=, PARTUUID= or PARTLABEL= tag", spec)
	}
	tag, val := ps.Tag, ps.Value
	link := filepath.Join("/dev/disk", "by-"+strings.ToLower(tag), val)
	if dev, err := filepath.EvalSymlinks(link); err == nil {
		return dev, nil
	}
	devs, err := os.ReadDir("/sys/class/block")
	if err != nil {
		return "", fmt.Errorf("%s: cannot list block devices: %v", spec, err)
	}
	names := make([]string, 0, len(devs))
	for _, d := range devs {
		names = append(names, d.Name())
	}
	sort.Strings(names)
	for _, name := range names {
		dev := "/dev/" + name
		if _, err := os.Stat(dev); err != nil {
			continue
		}
		id, err := probe(name, dev)
		if err != nil {
			continue
		}
		if id.matches(tag, val) {
			return dev, nil
		}
	}
	return "", &Error{Target: spec, Op: "find device", Err: notFound(fmt.Sprintf("no block device has %s %q", tag, val))}
}

// Carries reports whether the block device dev (/dev/NAME) is the one
// the tag spec (UUID=, LABEL=, PARTUUID=, PARTLABEL=) names, by probing it
// as Resolve does.
func Carries(dev, spec string) bool {
	ps, err := ParseSpec(spec)
	if err != nil || ps.Tag == "" || ps.Path != "" {
		return false
	}
	id, err := probe(filepath.Base(dev), dev)
	return err == nil && id.matches(ps.Tag, ps.Value)
}

// PartUUID returns the PARTUUID of the partition dev (/dev/NAME), "" for
// a whole disk or a partition table without one.
func PartUUID(dev string) string {
	id, err := probe(filepath.Base(dev), dev)
	if err != nil {
		return ""
	}
	return id.PartUUID
}

// identity is what a device can be found by.
type identity struct {
	UUID, Label, PartUUID, PartLabel string
}

func (id identity) matches(tag, val string) bool {
	switch tag {
	case "UUID":
		return id.UUID != "" && strings.EqualFold(id.UUID, val)
	case "LABEL":
		return id.Label != "" && id.Label == val
	case "PARTUUID":
		return id.PartUUID != "" && strings.EqualFold(id.PartUUID, val)
	case "PARTLABEL":
		return id.PartLabel != "" && id.PartLabel == val
	}
	return false
}

func probe(name, dev string) (identity, error) {
	var id identity
	f, err := os.Open(dev)
	if err != nil {
		return id, err
	}
	defer f.Close()
	sb := make([]byte, 4096)
	if n, _ := f.ReadAt(sb, 0); n == len(sb) {
		id.UUID, id.Label = superblockID(sb)
	}
	// A partition: find its entry in the parent disk's table.
	pn, err := os.ReadFile(filepath.Join("/sys/class/block", name, "partition"))
	if err != nil {
		return id, nil
	}
	num, err := strconv.Atoi(strings.TrimSpace(string(pn)))
	if err != nil {
		return id, nil
	}
	sys, err := filepath.EvalSymlinks(filepath.Join("/sys/class/block", name))
	if err != nil {
		return id, nil
	}
	parent := filepath.Base(filepath.Dir(sys))
	id.PartUUID, id.PartLabel = partitionID("/dev/"+parent, parent, num)
	return id, nil
}

// superblockID reads UUID and label of ext2/3/4 and Linux swap.
func superblockID(b []byte) (uuid, label string) {
	if binary.LittleEndian.Uint16(b[1024+56:]) == 0xEF53 {
		return fmtUUID(b[1024+104 : 1024+120]), cstr(b[1024+120 : 1024+136])
	}
	if string(b[4086:4096]) == "SWAPSPACE2" {
		return fmtUUID(b[1024+12 : 1024+28]), cstr(b[1024+28 : 1024+44])
	}
	return "", ""
}

// partitionID returns PARTUUID and PARTLABEL of partition num on disk.
func partitionID(disk, name string, num int) (string, string) {
	f, err := os.Open(disk)
	if err != nil {
		return "", ""
	}
	defer f.Close()
	ss := 512
	if b, err := os.ReadFile(filepath.Join("/sys/class/block", name, "queue/logical_block_size")); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n >= 512 && n <= 65536 {
			ss = n
		}
	}
	mbr := make([]byte, 512)
	if _, err := f.ReadAt(mbr, 0); err != nil || mbr[510] != 0x55 || mbr[511] != 0xAA {
		return "", ""
	}
	hdr := make([]byte, 92)
	if _, err := f.ReadAt(hdr, int64(ss)); err == nil && string(hdr[:8]) == "EFI PART" {
		entries := int64(binary.LittleEndian.Uint64(hdr[72:]))
		count := binary.LittleEndian.Uint32(hdr[80:])
		size := binary.LittleEndian.Uint32(hdr[84:])
		if num < 1 || uint32(num) > count || size < 128 || size > 4096 {
			return "", ""
		}
		e := make([]byte, size)
		if _, err := f.ReadAt(e, entries*int64(ss)+int64(num-1)*int64(size)); err != nil {
			return "", ""
		}
		return fmtGUID(e[16:32]), utf16z(e[56:128])
	}
	// MBR: PARTUUID is the disk signature and partition number.
	return fmt.Sprintf("%08x-%02x", binary.LittleEndian.Uint32(mbr[440:]), num), ""
}

func fmtUUID(b []byte) string {
	if allZero(b) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// fmtGUID formats a GPT GUID: the first three fields are little endian.
func fmtGUID(b []byte) string {
	if allZero(b) {
		return ""
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func cstr(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func utf16z(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return string(utf16.Decode(u))
}

// notFound is a lookup miss that matches os.ErrNotExist without repeating
// its text.
type notFound string

func (e notFound) Error() string        { return string(e) }
func (e notFound) Is(target error) bool { return target == os.ErrNotExist }
