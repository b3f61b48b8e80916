package image

import (
	"bytes"
	"context"
	"runtime"
	"testing"
)

// fuzzAllocLimit is what one fuzzed image may make the reader allocate
// (Open, Info, Verify and Restore together): the bound docs/image-format.md
// promises, on inputs whose every size field is hostile.
const fuzzAllocLimit = 64 << 20

// allocGuard fails t if fn allocates more than fuzzAllocLimit.
func allocGuard(t *testing.T, fn func()) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	if n := after.TotalAlloc - before.TotalAlloc; n > fuzzAllocLimit {
		t.Fatalf("reading one image allocated %d MiB, more than %d MiB", n>>20, fuzzAllocLimit>>20)
	}
}

// tinyImage is an image small enough for the fuzzer to mutate and
// minimize quickly: 28 KiB of RAM in two ranges, 8 KiB chunks, one of
// them all zero.
func tinyImage(t testing.TB, opts ...WriterOption) []byte {
	mem := testMemory(42, 32<<10)
	clear(mem[20<<10 : 28<<10])
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 16 << 10}, {Start: 20 << 10, End: 32 << 10}})
	img, _ := writeImage(t, src, append([]WriterOption{WithChunkSize(8 << 10), WithThreads(1), WithCompression(Zstd)}, opts...)...)
	return img.b
}

// imageParts is an image taken apart into its records, so that a fuzzer
// can change fields and put it together again with every CRC, the commit
// digest (or MAC) and the tiling of the index right: its mutations then
// reach the checks behind the checksums.
type imageParts struct {
	h       *header
	records [][]byte
	c       commit
	keys    *imageKeys
}

// takeApart opens a valid image and keeps its parts.
func takeApart(t testing.TB, img []byte, opts ...ReaderOption) *imageParts {
	r, err := Open(&memImage{b: img}, opts...)
	if err != nil || r.Status() != nil {
		t.Fatalf("base image: %v, %v", err, r.Status())
	}
	p := &imageParts{h: r.h, c: *r.commit, keys: r.keys}
	for _, e := range entriesOf(t, r) {
		p.records = append(p.records, bytes.Clone(img[e.Offset:e.Offset+uint64(e.Length)]))
	}
	return p
}

// build applies the edit script ops to a copy of p and assembles the
// image. Each edit is 6 bytes: what (which record and field), where (16
// bits), a 24-bit value. Values land in the fields that size memory and
// place data: ranges, chunk size and count, record lengths and offsets,
// extents, commit fields.
func (p *imageParts) build(ops []byte) []byte {
	h := *p.h
	h.Ranges = append([]Range(nil), p.h.Ranges...)
	recs := make([][]byte, len(p.records))
	for i, r := range p.records {
		recs[i] = bytes.Clone(r)
	}
	c := p.c
	type idxEdit struct {
		i            int
		off, ln, crc int64
	}
	var idxEdits []idxEdit
	var idxCount = -1
	for ; len(ops) >= 6; ops = ops[6:] {
		what, where := ops[0], int(ops[1])|int(ops[2])<<8
		v := uint64(ops[3]) | uint64(ops[4])<<8 | uint64(ops[5])<<16
		big := v << (8 * (what >> 5)) // the high bits of what scale the value up
		switch what & 0x1f {
		case 0:
			if len(h.Ranges) > 0 {
				h.Ranges[where%len(h.Ranges)].Start = big
			}
		case 1:
			if len(h.Ranges) > 0 {
				h.Ranges[where%len(h.Ranges)].End = big
			}
		case 2:
			h.Ranges = append(h.Ranges, Range{Start: big, End: big + v})
		case 3:
			if len(h.Ranges) > 1 {
				h.Ranges = h.Ranges[:len(h.Ranges)-1]
			}
		case 4:
			h.ChunkSize = uint32(big)
		case 5:
			h.PageSize = uint32(big)
		case 6:
			h.Compression = Compression(v & 7)
		case 7:
			h.ChunkCount = uint32(big)
		case 8, 9, 10: // a byte of a record's header or extents, or anywhere
			if len(recs) > 0 {
				r := recs[where%len(recs)]
				at := int(v>>8) % len(r)
				if what&0x1f != 10 {
					at = int(v>>8) % min(len(r), chunkFixedLen+extentLen*4)
				}
				r[at] ^= byte(v)
			}
		case 11:
			if len(recs) > 0 {
				i := where % len(recs)
				recs = append(recs[:i], recs[i+1:]...)
			}
		case 12:
			if len(recs) > 0 {
				recs = append(recs, bytes.Clone(recs[where%len(recs)]))
			}
		case 13:
			idxEdits = append(idxEdits, idxEdit{i: where, off: int64(big)})
		case 14:
			idxEdits = append(idxEdits, idxEdit{i: where, ln: int64(big)})
		case 15:
			idxEdits = append(idxEdits, idxEdit{i: where, crc: int64(v)})
		case 16:
			idxCount = int(big)
		case 17:
			c.IndexOffset += big
		case 18:
			c.ChunkCount = uint32(big)
		case 19:
			c.StoredPages = big
		case 20:
			c.ZeroPages = big
		case 21:
			c.Length = big
		case 22:
			c.State = uint32(v)
		}
	}
	// Records with their CRCs, tiled after the header.
	hdr, err := h.encode()
	if err != nil {
		return nil
	}
	img := bytes.Clone(hdr)
	entries := make([]indexEntry, 0, len(recs))
	for _, r := range recs {
		r = withSum(r)
		entries = append(entries, indexEntry{Offset: uint64(len(img)), Length: uint32(len(r)), CRC: le.Uint32(r[len(r)-crcLen:])})
		img = append(img, r...)
	}
	for _, e := range idxEdits {
		if len(entries) == 0 {
			break
		}
		x := &entries[e.i%len(entries)]
		x.Offset += uint64(e.off)
		x.Length += uint32(e.ln)
		x.CRC ^= uint32(e.crc)
	}
	idx := encodeIndex(entries)
	if idxCount >= 0 {
		le.PutUint32(idx[4:], uint32(idxCount))
		idx = withCRC(idx)
	}
	// The header again with the chunk count the records make, unless an
	// edit set it; then the commit record over both.
	if h.ChunkCount == p.h.ChunkCount {
		h.ChunkCount = uint32(len(recs))
		if hdr, err = h.encode(); err != nil {
			return nil
		}
		copy(img, hdr)
	}
	idxOff := uint64(len(img))
	img = append(img, idx...)
	if c.ChunkCount == p.c.ChunkCount {
		c.ChunkCount = uint32(len(entries))
	}
	c.IndexOffset += idxOff - p.c.IndexOffset
	end := uint64(len(img))
	if c.Length == p.c.Length {
		c.Length = end + commitPad(end) + commitArea
	}
	cb := sealCommit(&c, p.keys, hdr, idx)
	area := make([]byte, commitPad(end)+commitArea)
	copy(area[len(area)-commitArea:], cb)
	copy(area[len(area)-commitBlock:], cb)
	return append(img, area...)
}

// maxFuzzEdits bounds the edits one input makes: a few edits reach every
// check, and a short input is quick to minimize.
const maxFuzzEdits = 16

// fuzzBases are the images FuzzImageFields edits: plain, S2, Auto and
// encrypted (its MAC is resealed with the test key).
func fuzzBases(tb testing.TB) []*imageParts {
	k, err := NewKey(KeyFileSecret(testKeyFile))
	if err != nil {
		tb.Fatal(err)
	}
	return []*imageParts{
		takeApart(tb, tinyImage(tb)),
		takeApart(tb, tinyImage(tb, WithCompression(S2))),
		takeApart(tb, tinyImage(tb, WithCompression(Auto), withAlternatingCodecs)),
		takeApart(tb, tinyImage(tb, WithKey(k)), WithSecret(KeyFileSecret(testKeyFile))),
	}
}

// FuzzImageFields: images whose CRCs, index tiling and commit digest are
// right but whose ranges, geometry, records, index entries and commit
// fields are edited never panic, never allocate more than fuzzAllocLimit,
// Verify and Restore agree on whether they are valid, and VerifyStored
// passes what Verify passes.
func FuzzImageFields(f *testing.F) {
	f.Add(byte(0), []byte{})
	f.Add(byte(1), []byte{1, 0, 0, 0, 0x10, 0})                    // a range's end moved up
	f.Add(byte(0), []byte{7 | 3<<5, 0, 0, 0, 0, 0x10})             // chunk count 2^28
	f.Add(byte(2), []byte{14, 1, 0, 0, 0, 0x30})                   // a record 48 MiB longer
	f.Add(byte(0), []byte{0 | 5<<5, 0, 0, 1, 0, 0})                // a range starting at 2^40
	f.Add(byte(3), []byte{17 | 4<<5, 0, 0, 0xff, 0xff, 0xff})      // a wrapping index offset
	f.Add(byte(0), []byte{8, 0, 0, 8, 0, 0x80, 11, 1, 0, 0, 0, 0}) // a slot changed, a record dropped
	f.Add(byte(1), []byte{4, 0, 0, 0, 0x40, 0, 16, 0, 0, 9, 0, 0}) // chunk size and index count
	bases := fuzzBases(f)
	f.Fuzz(func(t *testing.T, base byte, ops []byte) {
		p := bases[int(base)%len(bases)]
		img := p.build(ops[:min(len(ops), 6*maxFuzzEdits)])
		if img == nil {
			return
		}
		var opts []ReaderOption
		if p.keys != nil {
			opts = append(opts, WithSecret(KeyFileSecret(testKeyFile)))
		}
		allocGuard(t, func() {
			r, err := Open(&memImage{b: img}, opts...)
			if err != nil {
				return
			}
			r.Info()
			_, verr := r.Verify(context.Background(), WithThreads(2))
			_, rerr := r.Restore(context.Background(), discard{}, WithThreads(1))
			_, serr := r.VerifyStored(context.Background(), WithThreads(1))
			// VerifyStored does not decode: it may pass what Verify refuses.
			if (verr == nil) != (rerr == nil) || (verr == nil && serr != nil) {
				t.Fatalf("verify %v, restore %v, verify stored %v", verr, rerr, serr)
			}
		})
	})
}
