package fsstate

import (
	"crypto/sha256"
	"fmt"
)

// xfs proves its state by its log: every metadata change (and the
// timestamp change of every data write) is written to the circular log
// before it reaches its place on the disk, and each 512-byte log block
// starts with the cycle number of the pass that wrote it. The head is
// where the current cycle ends; recovery finds it by bisection, and so
// does the guard. Log writes may land out of order, up to the in-flight
// log buffers (8 x 256 KiB), so the guard also hashes the log around the
// head: a new record changes the head or the bytes next to it.

const (
	xfsLogMagic = 0xFEEDBABE
	xfsWindowBB = 2 * (8 * 256 << 10) / 512 // each side of the head, in 512-byte blocks
)

func readXFS(d *disk, want string) (state, error) {
	sb, err := d.read(0, 512, 4096)
	if err != nil {
		return state{}, err
	}
	if string(sb[0:4]) != "XFSB" {
		return state{}, fmt.Errorf("%s holds no xfs superblock", d.name)
	}
	sum := sha256.Sum256(sb)
	st := state{uuid: uuidString(sb[32:48])}
	if want != "" && st.uuid != want {
		return st, nil
	}
	blocksize, agblocks, agblklog := int64(be.Uint32(sb[4:])), int64(be.Uint32(sb[84:])), sb[124]
	logstart, logblocks := be.Uint64(sb[48:]), int64(be.Uint32(sb[96:]))
	if logstart == 0 {
		st.unproven = "its log is on another device (external log)"
		st.gen = fmt.Sprintf("sb=%x", sum[:6])
		return st, nil
	}
	if blocksize < 512 || blocksize > 65536 || agblklog > 40 || logblocks <= 0 {
		return state{}, fmt.Errorf("implausible xfs superblock on %s", d.name)
	}
	agno, agbno := logstart>>agblklog, logstart&(1<<agblklog-1)
	fsb := uint64(d.size / blocksize) // the device's size in filesystem blocks
	if agno > fsb || uint64(agblocks) > fsb || agno*uint64(agblocks)+agbno > fsb {
		return state{}, fmt.Errorf("xfs log of %s starts past the device's end", d.name)
	}
	logOff := int64(agno*uint64(agblocks)+agbno) * blocksize
	logBB := logblocks * blocksize / 512
	if logOff <= 0 || logOff+logBB*512 > d.size {
		return state{}, fmt.Errorf("xfs log of %s at %d (%d blocks) lies outside the device", d.name, logOff, logBB)
	}
	cycle := func(bb int64) (uint32, error) {
		b, err := d.read(logOff+bb*512, 512, 0)
		if err != nil {
			return 0, err
		}
		if be.Uint32(b) == xfsLogMagic { // a record header keeps its cycle next
			return be.Uint32(b[4:]), nil
		}
		return be.Uint32(b), nil
	}
	first, err := cycle(0)
	if err != nil {
		return state{}, err
	}
	last, err := cycle(logBB - 1)
	if err != nil {
		return state{}, err
	}
	head := int64(0) // the whole log is of one cycle: the head wrapped to its start
	if first != last {
		// The first block of the last block's (older) cycle.
		lo, hi := int64(0), logBB-1
		for hi-lo > 1 {
			mid := lo + (hi-lo)/2
			c, err := cycle(mid)
			if err != nil {
				return state{}, err
			}
			if c == last {
				hi = mid
			} else {
				lo = mid
			}
		}
		head = hi
	}
	h := sha256.New()
	span := min(2*xfsWindowBB, logBB)
	for i, bb := int64(0), (head-span/2+logBB)%logBB; i < span; {
		n := min(span-i, logBB-bb, 1024) // up to 512 KiB per read, not past the log's end
		b, err := d.read(logOff+bb*512, int(n*512), 0)
		if err != nil {
			return state{}, err
		}
		h.Write(b)
		i += n
		bb = (bb + n) % logBB
	}
	st.gen = fmt.Sprintf("log_head=%d:%d log=%x sb=%x", first, head, h.Sum(nil)[:6], sum[:6])
	return st, nil
}
