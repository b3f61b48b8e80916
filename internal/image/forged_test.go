package image

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// forgedImage is an image as an attacker lays it out, with every check
// value right (header CRC, index CRC, commit digest) so that only the
// bounds can refuse it: a header, a records area that reads as zeros, an
// index made entry by entry on the fly (a huge one costs the test no
// memory), and a commit record. It records whether the index was read.
type forgedImage struct {
	hdr         []byte
	count       uint32
	entry       func(i uint32) indexEntry // nil: no index
	idxOff      uint64
	idxCRC      uint32
	commit      []byte
	size        int64
	indexReads  atomic.Int64
	recordReads atomic.Int64
}

func (f *forgedImage) Size() int64 { return f.size }

func (f *forgedImage) ReadAt(p []byte, off int64) (int, error) {
	ilen := indexLen(f.count)
	for k := range p {
		a := uint64(off) + uint64(k)
		switch {
		case a < uint64(len(f.hdr)):
			p[k] = f.hdr[a]
		case a >= uint64(f.size)-commitArea:
			if at := (a - (uint64(f.size) - commitArea)) % commitBlock; at < commitLen {
				p[k] = f.commit[at]
			} else {
				p[k] = 0
			}
		case f.entry != nil && a >= f.idxOff && a-f.idxOff < ilen:
			p[k] = f.indexByte(a - f.idxOff)
			if k == 0 {
				f.indexReads.Add(1)
			}
		default:
			p[k] = 0
			if k == 0 {
				f.recordReads.Add(1)
			}
		}
	}
	return len(p), nil
}

// indexByte is byte at of the index (indexFixedLen + 16*count + CRC).
func (f *forgedImage) indexByte(at uint64) byte {
	var b [indexEntryLen]byte
	switch {
	case at < indexFixedLen:
		copy(b[:], indexMagic)
		le.PutUint32(b[4:], f.count)
		return b[at]
	case at < indexLen(f.count)-crcLen:
		e := f.entry(uint32((at - indexFixedLen) / indexEntryLen))
		le.PutUint64(b[:], e.Offset)
		le.PutUint32(b[8:], e.Length)
		le.PutUint32(b[12:], e.CRC)
		return b[(at-indexFixedLen)%indexEntryLen]
	}
	le.PutUint32(b[:], f.idxCRC)
	return b[at-(indexLen(f.count)-crcLen)]
}

// forge lays out an image of h's header, count chunk records of recLen
// bytes each (the records area reads as zeros), index and commit record,
// with a correct digest. withIndex false leaves the index out; idxOff
// forges its offset in the commit record.
func forge(t testing.TB, h *header, count, recLen uint32, withIndex bool, idxOff *uint64) *forgedImage {
	t.Helper()
	h.ChunkCount = count
	hdr, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	f := &forgedImage{hdr: hdr, count: count}
	off := uint64(len(hdr))
	if withIndex {
		start := off
		f.entry = func(i uint32) indexEntry {
			return indexEntry{Offset: start + uint64(i)*uint64(recLen), Length: recLen}
		}
		off += uint64(count) * uint64(recLen)
	}
	f.idxOff = off
	ilen := indexLen(count)
	end := off
	if withIndex {
		end += ilen
	}
	f.size = int64(end + commitPad(end) + commitArea)
	c := &commit{Major: versionMajor, State: stateCommitted, Seq: 1, ID: h.ID, Length: uint64(f.size), IndexOffset: off,
		ChunkCount: count, ZeroPages: totalSize(h.Ranges) / uint64(h.PageSize)}
	if f.entry != nil {
		// The index CRC and the digest, computed as a reader reads.
		d := sha256.New()
		d.Write(hdr)
		buf := make([]byte, 1<<20)
		var sum uint32
		for pos := uint64(0); pos < ilen; {
			n := min(uint64(len(buf)), ilen-pos)
			for k := range n {
				buf[k] = f.indexByte(pos + k)
			}
			body := buf[:n]
			if pos+n == ilen {
				body = buf[:n-crcLen]
			}
			sum = crc32.Update(sum, castagnoli, body)
			if pos+n == ilen {
				f.idxCRC = sum
				le.PutUint32(buf[n-crcLen:], sum)
			}
			d.Write(buf[:n])
			pos += n
		}
		copy(c.Digest[:], d.Sum(nil))
	}
	if idxOff != nil {
		c.IndexOffset = *idxOff
	}
	f.commit = c.encode()
	return f
}

// allocated runs fn and returns the bytes it allocated.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// forgedLimit is what opening, describing and verifying a forged image may
// allocate: an index piece, one worker's buffers and decoder, the header.
const forgedLimit = 16 << 20

// forgedImages are the hostile images of issue 16, each refused by a
// bound. want is the refusal's wording.
func forgedImages(t testing.TB) map[string]struct {
	img  *forgedImage
	want string
} {
	geometry := func(rs ...Range) *header {
		return &header{PageSize: 4096, ChunkSize: defaultChunkSize, Compression: Zstd, Ranges: rs, ID: [16]byte{0xf0, 0x12}}
	}
	// 2^28 chunks and an index offset that wraps around to end at the
	// commit record: once a 4 GiB index buffer.
	wrap := func() *forgedImage {
		h := geometry(Range{Start: 0, End: 1 << 49})
		h.Meta = Metadata{Hostname: "forged"}
		h.ChunkCount = 1 << 28
		hdr, err := h.encode()
		if err != nil {
			t.Fatal(err)
		}
		off := uint64(len(hdr)) + commitPad(uint64(len(hdr))) // the commit area follows the header
		wrapped := off - indexLen(1<<28)                      // mod 2^64: wrapped + ilen == off
		return forge(t, h, 1<<28, 0, false, &wrapped)
	}
	// 4 Mi chunks of minimal records: a 64 MiB index with valid CRC and
	// digest, records that read as zeros.
	bigIndex := func() *forgedImage {
		return forge(t, geometry(Range{Start: 0, End: 1 << 22 * defaultChunkSize}), 1<<22, minRecordLen, true, nil)
	}
	// Two records of 768 MiB each, holes in a sparse file.
	sparse := func() *forgedImage {
		return forge(t, geometry(Range{Start: 0, End: 4 << 20}), 2, 768<<20, true, nil)
	}
	// One range [4K, 2^64-4K): 0 chunks by overflow, "valid: 16 EiB".
	huge := func() *forgedImage {
		return forge(t, geometry(Range{Start: 4096, End: 1<<64 - 4096}), 0, 0, true, nil)
	}
	// A passphrase image asking Argon2id for 1 GiB and 16 passes.
	argon := func() *forgedImage {
		h := geometry(Range{Start: 0, End: 4 << 20})
		h.Enc = &encParams{Source: KeySourcePassphrase, Time: 16, MemoryKiB: 1 << 20, Threads: 4}
		return forge(t, h, 0, 0, true, nil)
	}
	return map[string]struct {
		img  *forgedImage
		want string
	}{
		"wrapping-index-offset": {wrap(), "do not fit between header and commit area"},
		"index-64MiB":           {bigIndex(), "bad chunk magic"},
		"sparse-768MiB-records": {sparse(), "record length 805306368 exceeds the 2120756 bytes a chunk of this image can take"},
		"range-to-2^64":         {huge(), "ends above the 52-bit physical address space"},
		"argon2id-1GiB":         {argon(), "Argon2id parameters t=16 m=1048576 KiB p=4 outside the accepted t<=8, m<=65536 KiB"},
	}
}

// Every forged image is refused, naming the problem, in bounded memory:
// Open, Info and Verify (what resume, `resume image info` and `verify` do).
func TestForgedImagesRefused(t *testing.T) {
	for name, tc := range forgedImages(t) {
		t.Run(name, func(t *testing.T) {
			var err error
			n := allocated(func() {
				var r *Reader
				if r, err = Open(tc.img, WithSecret(PassphraseSecret([]byte("p")))); err != nil {
					return
				}
				if errors.Is(r.Status(), ErrNotEncrypted) { // plain: open as resume does without a key
					if r, err = Open(tc.img); err != nil {
						return
					}
				}
				r.Info()
				_, err = r.Verify(context.Background(), WithThreads(2))
			})
			t.Logf("%s: %d bytes, %d KiB allocated: %v", name, tc.img.size, n>>10, err)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
			if n > forgedLimit {
				t.Errorf("allocated %d MiB, more than %d MiB", n>>20, forgedLimit>>20)
			}
		})
	}
}

// With the machine's RAM given, an image whose ranges are not this
// machine's RAM is refused before its index is read.
func TestMachineRAMCheckedBeforeIndex(t *testing.T) {
	img := forgedImages(t)["index-64MiB"].img
	var r *Reader
	var err error
	n := allocated(func() {
		r, err = Open(img, WithMachineRAM([]Range{{Start: 0, End: 2 << 30}, {Start: 4 << 30, End: 6 << 30}}))
	})
	if err != nil {
		t.Fatal(err)
	}
	var fe *ForeignRAMError
	if !errors.As(r.Status(), &fe) || !strings.Contains(fe.Error(), "not RAM on this machine") {
		t.Fatalf("status %v, want a *ForeignRAMError", r.Status())
	}
	if img.indexReads.Load() != 0 {
		t.Fatalf("index read %d times before the machine check refused the image", img.indexReads.Load())
	}
	if _, err := r.Verify(context.Background()); !errors.As(err, &fe) {
		t.Fatalf("Verify: %v, want the *ForeignRAMError", err)
	}
	if n > forgedLimit {
		t.Fatalf("allocated %d MiB", n>>20)
	}
	// A real image on a machine with its RAM in two runs that touch.
	imgb, _, _ := smallImage(t)
	r, err = Open(&memImage{b: imgb}, WithMachineRAM([]Range{{Start: 0, End: 64 << 10}, {Start: 64 << 10, End: 1 << 20}}))
	if err != nil || r.Status() != nil {
		t.Fatalf("own machine: %v, %v", err, r.Status())
	}
	if _, err := Open(&memImage{b: imgb}, WithMachineRAM(nil)); err == nil {
		t.Fatal("WithMachineRAM(nil) accepted")
	}
}

// KJUMP_FORGED_DIR=dir writes the forged images there as sparse files, for
// measuring the built binaries (`resume image info|verify FILE`).
func TestWriteForgedImages(t *testing.T) {
	dir := os.Getenv("KJUMP_FORGED_DIR")
	if dir == "" {
		t.Skip("set KJUMP_FORGED_DIR to write the forged images")
	}
	for name, tc := range forgedImages(t) {
		f, err := os.Create(filepath.Join(dir, name+".img"))
		if err != nil {
			t.Fatal(err)
		}
		img := tc.img
		write := func(off, n uint64) {
			buf := make([]byte, 1<<20)
			for pos := off; pos < off+n; {
				k := min(uint64(len(buf)), off+n-pos)
				img.ReadAt(buf[:k], int64(pos))
				if _, err := f.WriteAt(buf[:k], int64(pos)); err != nil {
					t.Fatal(err)
				}
				pos += k
			}
		}
		write(0, uint64(len(img.hdr)))
		if img.entry != nil {
			write(img.idxOff, indexLen(img.count))
		}
		write(uint64(img.size)-commitArea, commitArea)
		if err := f.Truncate(img.size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}
