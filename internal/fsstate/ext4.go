package fsstate

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
)

// ext4 (and ext3 mounted by the ext4 driver) prove their state by their
// journal: every change reaches the disk through a jbd2 transaction, and
// the log holds each committed transaction until it is checkpointed. The
// journal superblock's s_sequence and s_start move only at checkpoint, so
// the guard walks the log from s_start the way recovery does and records
// the first transaction id it does not find: any commit after the image
// makes that id larger; a replay or an unmount resets the log and moves
// s_sequence past it. The filesystem superblock (mount count and times)
// is part of the state too.

var (
	le = binary.LittleEndian
	be = binary.BigEndian
)

const (
	extCompatHasJournal   = 0x4
	extIncompatRecover    = 0x4
	extIncompatJournalDev = 0x8
	extIncompat64Bit      = 0x80
	extInodeExtents       = 0x80000

	jbdMagic          = 0xC03B3998
	jbdDescriptor     = 1
	jbdCommit         = 2
	jbdSuperV1        = 3
	jbdSuperV2        = 4
	jbdRevoke         = 5
	jbdIncompat64Bit  = 0x2
	jbdIncompatCsumV2 = 0x8
	jbdIncompatCsumV3 = 0x10
	jbdIncompatFast   = 0x20
	jbdFlagSameUUID   = 0x2
	jbdFlagLastTag    = 0x8
)

func readExt(d *disk, fstype, want string) (state, error) {
	sb, err := d.read(1024, 1024, 4096)
	if err != nil {
		return state{}, err
	}
	if le.Uint16(sb[56:]) != 0xEF53 {
		return state{}, fmt.Errorf("%s holds no %s superblock", d.name, fstype)
	}
	sum := sha256.Sum256(sb)
	st := state{uuid: uuidString(sb[104:120])}
	if want != "" && st.uuid != want {
		return st, nil
	}
	base := fmt.Sprintf("mounts=%d mounted=%s written=%s kbytes_written=%d state=%d",
		le.Uint16(sb[52:]), unixTime(le.Uint32(sb[44:])), unixTime(le.Uint32(sb[48:])), le.Uint64(sb[0x178:]), le.Uint16(sb[58:]))
	compat, incompat := le.Uint32(sb[0x5C:]), le.Uint32(sb[0x60:])
	inum, jdev := le.Uint32(sb[0xE0:]), le.Uint32(sb[0xE4:])
	switch {
	case incompat&extIncompatJournalDev != 0:
		return state{}, fmt.Errorf("%s is an ext4 external journal, not a filesystem", d.name)
	case compat&extCompatHasJournal == 0:
		st.unproven = "it has no journal (ext2)"
	case inum == 0 || jdev != 0:
		st.unproven = "its journal is on another device (external journal)"
	}
	if st.unproven != "" {
		st.gen = fmt.Sprintf("%s sb=%x", base, sum[:6])
		return st, nil
	}
	j, err := walkJournal(d, sb, inum)
	if err != nil {
		st.unproven = "its journal cannot be read: " + err.Error()
		st.gen = fmt.Sprintf("%s sb=%x", base, sum[:6])
		return st, nil
	}
	st.unproven = j.unproven
	st.gen = fmt.Sprintf("%s journal=%s sb=%x", base, j.gen, sum[:6])
	return st, nil
}

// extFS is what locating the journal inode's blocks needs.
type extFS struct {
	d     *disk
	bs    int64 // block size
	nodes int   // extent tree blocks read (a forged tree may point back at itself)
}

func (fs *extFS) block(n uint64, ahead int) ([]byte, error) {
	if n > uint64(fs.d.size)/uint64(fs.bs) {
		return nil, fmt.Errorf("block %d past the end of the device", n)
	}
	return fs.d.read(int64(n)*fs.bs, int(fs.bs), ahead)
}

// extent maps a run of the journal's logical blocks to disk blocks.
type extent struct{ logical, physical, count uint64 }

// maxExtents bounds the map's memory (1.5 MiB) on a forged journal inode.
const maxExtents = 1 << 16

// maxTreeBlocks bounds the reads of a journal's extent tree (a real one is
// the inode and perhaps a block or two).
const maxTreeBlocks = 4096

// journalInode reads inode inum and maps its blocks.
func journalInode(d *disk, sb []byte, inum uint32) (exts []extent, size uint64, bs int64, err error) {
	logBS := le.Uint32(sb[0x18:])
	if logBS > 6 {
		return nil, 0, 0, fmt.Errorf("block size 1024<<%d", logBS)
	}
	bs = 1024 << logBS
	fs := &extFS{d: d, bs: bs}
	ipg, firstData := le.Uint32(sb[0x28:]), le.Uint32(sb[0x14:])
	isize := uint32(128)
	if le.Uint32(sb[0x4C:]) >= 1 { // dynamic revision
		isize = uint32(le.Uint16(sb[0x58:]))
	}
	descSize := uint32(32)
	if le.Uint32(sb[0x60:])&extIncompat64Bit != 0 {
		descSize = uint32(le.Uint16(sb[0xFE:]))
	}
	if ipg == 0 || isize < 128 || int64(isize) > bs || isize&(isize-1) != 0 || descSize < 32 || int64(descSize) > bs {
		return nil, 0, 0, fmt.Errorf("implausible superblock (inodes per group %d, inode size %d, descriptor size %d)", ipg, isize, descSize)
	}
	if (inum-1)/ipg != 0 {
		// Group 0's descriptor is in the block after the superblock
		// with or without meta_bg; other groups' are not.
		return nil, 0, 0, fmt.Errorf("journal inode %d is not in block group 0", inum)
	}
	gd, err := fs.block(uint64(firstData)+1, 0)
	if err != nil {
		return nil, 0, 0, err
	}
	table := uint64(le.Uint32(gd[8:]))
	if descSize >= 64 {
		table |= uint64(le.Uint32(gd[0x28:])) << 32
	}
	off := int64((inum-1)%ipg) * int64(isize)
	tb, err := fs.block(table+uint64(off/bs), 0)
	if err != nil {
		return nil, 0, 0, err
	}
	ino := append([]byte(nil), tb[off%bs:off%bs+128]...)
	size = uint64(le.Uint32(ino[4:])) | uint64(le.Uint32(ino[0x6C:]))<<32
	nblocks := size / uint64(bs)
	if nblocks < 2 || nblocks > 1<<24 {
		return nil, 0, 0, fmt.Errorf("journal inode %d has size %d", inum, size)
	}
	iblock := ino[0x28 : 0x28+60]
	if le.Uint32(ino[0x20:])&extInodeExtents != 0 {
		exts, err = fs.extentTree(iblock, 0)
	} else {
		exts, err = fs.indirect(iblock, nblocks)
	}
	return exts, size, bs, err
}

// extentTree flattens an extent tree node (the inode's i_block or a tree
// block). The journal is a few extents; depth and fan-out are bounded.
func (fs *extFS) extentTree(node []byte, level int) ([]extent, error) {
	if le.Uint16(node[0:]) != 0xF30A {
		return nil, fmt.Errorf("bad extent header")
	}
	entries, depth := int(le.Uint16(node[2:])), int(le.Uint16(node[6:]))
	if level > 5 || depth > 5 || 12+12*entries > len(node) {
		return nil, fmt.Errorf("implausible extent tree (depth %d, %d entries)", depth, entries)
	}
	node = append([]byte(nil), node...) // children reuse the read window
	var out []extent
	for i := 0; i < entries; i++ {
		e := node[12+12*i:]
		if depth == 0 {
			n := uint64(le.Uint16(e[4:]))
			if n > 32768 {
				n -= 32768 // unwritten
			}
			out = append(out, extent{logical: uint64(le.Uint32(e[0:])), physical: uint64(le.Uint16(e[6:]))<<32 | uint64(le.Uint32(e[8:])), count: n})
			continue
		}
		if fs.nodes++; fs.nodes > maxTreeBlocks {
			return nil, fmt.Errorf("journal extent tree of more than %d blocks", maxTreeBlocks)
		}
		child, err := fs.block(uint64(le.Uint16(e[8:]))<<32|uint64(le.Uint32(e[4:])), 0)
		if err != nil {
			return nil, err
		}
		sub, err := fs.extentTree(child, level+1)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
		if len(out) > maxExtents {
			return nil, fmt.Errorf("journal in more than %d pieces", maxExtents)
		}
	}
	return out, nil
}

// indirect maps an ext3-style journal (direct, indirect, double and triple
// indirect blocks) for its first n blocks.
func (fs *extFS) indirect(iblock []byte, n uint64) ([]extent, error) {
	var out []extent
	next := uint64(0)
	add := func(p uint64) error {
		if k := len(out) - 1; k >= 0 && out[k].physical+out[k].count == p && out[k].logical+out[k].count == next {
			out[k].count++
		} else if len(out) < maxExtents {
			out = append(out, extent{logical: next, physical: p, count: 1})
		} else {
			return fmt.Errorf("journal in more than %d pieces", maxExtents)
		}
		next++
		return nil
	}
	var walk func(blk uint64, level int) error
	walk = func(blk uint64, level int) error {
		b, err := fs.block(blk, 0)
		if err != nil {
			return err
		}
		ptrs := append([]byte(nil), b...)
		for i := 0; i+4 <= len(ptrs) && next < n; i += 4 {
			p := uint64(le.Uint32(ptrs[i:]))
			if p == 0 {
				return fmt.Errorf("hole at journal block %d", next)
			}
			var err error
			if level == 0 {
				err = add(p)
			} else {
				err = walk(p, level-1)
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < 15 && next < n; i++ {
		p := uint64(le.Uint32(iblock[4*i:]))
		if p == 0 {
			return nil, fmt.Errorf("hole at journal block %d", next)
		}
		var err error
		if i < 12 {
			err = add(p)
		} else {
			err = walk(p, i-12)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// journalState is the log's state: gen names the first transaction id the
// log does not hold.
type journalState struct {
	gen, unproven string
	nextTID       uint32
}

func walkJournal(d *disk, sb []byte, inum uint32) (journalState, error) {
	exts, size, bs, err := journalInode(d, sb, inum)
	if err != nil {
		return journalState{}, err
	}
	nblocks := size / uint64(bs)
	sort.Slice(exts, func(i, j int) bool { return exts[i].logical < exts[j].logical })
	phys := func(l uint64) (uint64, error) {
		i := sort.Search(len(exts), func(i int) bool { return exts[i].logical+exts[i].count > l })
		if i < len(exts) && l >= exts[i].logical {
			return exts[i].physical + l - exts[i].logical, nil
		}
		return 0, fmt.Errorf("journal block %d is not mapped", l)
	}
	fs := &extFS{d: d, bs: bs}
	jblock := func(l uint64) ([]byte, error) {
		p, err := phys(l)
		if err != nil {
			return nil, err
		}
		return fs.block(p, 256<<10)
	}
	jsb, err := jblock(0)
	if err != nil {
		return journalState{}, err
	}
	if be.Uint32(jsb[0:]) != jbdMagic {
		return journalState{}, fmt.Errorf("no journal superblock in journal block 0")
	}
	var incompat uint32
	switch be.Uint32(jsb[4:]) {
	case jbdSuperV1:
	case jbdSuperV2:
		incompat = be.Uint32(jsb[0x28:])
	default:
		return journalState{}, fmt.Errorf("journal block 0 is of type %d, not a superblock", be.Uint32(jsb[4:]))
	}
	jbs, maxlen, first := be.Uint32(jsb[0xC:]), uint64(be.Uint32(jsb[0x10:])), uint64(be.Uint32(jsb[0x14:]))
	seq, start := be.Uint32(jsb[0x18:]), uint64(be.Uint32(jsb[0x1C:]))
	if int64(jbs) != bs || maxlen > nblocks || first == 0 || first >= maxlen || (start != 0 && (start < first || start >= maxlen)) {
		return journalState{}, fmt.Errorf("implausible journal superblock (block size %d, blocks %d, first %d, start %d; inode has %d blocks)", jbs, maxlen, first, start, nblocks)
	}
	js := journalState{nextTID: seq}
	if incompat&jbdIncompatFast != 0 {
		// Fast commits go to their own area without a full commit.
		js.unproven = "its journal has fast commits, which kjump does not read"
	}
	if start == 0 { // empty log: clean unmount or checkpointed
		js.gen = fmt.Sprintf("clean,next_tid=%d", seq)
		return js, nil
	}
	tagBytes := uint64(12)
	csum := incompat&(jbdIncompatCsumV2|jbdIncompatCsumV3) != 0
	switch {
	case incompat&jbdIncompatCsumV3 != 0:
		tagBytes = 16
	default:
		if incompat&jbdIncompatCsumV2 != 0 {
			tagBytes += 2
		}
		if incompat&jbdIncompat64Bit == 0 {
			tagBytes -= 4
		}
	}
	wrap := func(b uint64) uint64 {
		for b >= maxlen {
			b = b - maxlen + first
		}
		return b
	}
	// Recovery's scan: follow blocks of the expected sequence, skipping
	// each descriptor's data blocks by counting its tags (so escaped data
	// blocks are never looked at); a commit block ends a transaction.
	blk, tid := start, seq
scan:
	for walked := uint64(0); ; {
		if walked > maxlen {
			return journalState{}, fmt.Errorf("the log walk from block %d went round the whole journal", start)
		}
		b, err := jblock(blk)
		if err != nil {
			return journalState{}, err
		}
		if be.Uint32(b[0:]) != jbdMagic || be.Uint32(b[8:]) != tid {
			break scan
		}
		step := uint64(1)
		switch be.Uint32(b[4:]) {
		case jbdDescriptor:
			step += countTags(b, tagBytes, csum)
		case jbdCommit:
			tid++
		case jbdRevoke:
		default:
			break scan
		}
		walked += step
		blk = wrap(blk + step)
	}
	js.nextTID = tid
	js.gen = fmt.Sprintf("tail_tid=%d@%d,next_tid=%d@%d", seq, start, tid, blk)
	return js, nil
}

// countTags counts the data blocks a descriptor block describes.
func countTags(b []byte, tagBytes uint64, csum bool) uint64 {
	size := uint64(len(b))
	if csum {
		size -= 4 // block tail checksum
	}
	n := uint64(0)
	for p := uint64(12); p+tagBytes <= size; {
		// t_flags' low 16 bits are at offset 6 in every tag layout.
		flags := be.Uint16(b[p+6:])
		n++
		p += tagBytes
		if flags&jbdFlagSameUUID == 0 {
			p += 16
		}
		if flags&jbdFlagLastTag != 0 {
			break
		}
	}
	return n
}
