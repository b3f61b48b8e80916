package image

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
)

// smallImage is an image small enough to corrupt at every byte: 96 KiB of
// RAM in three ranges, 16 KiB chunks, some all-zero.
func smallImage(t testing.TB, opts ...WriterOption) ([]byte, Source, []byte) {
	mem := testMemory(42, 96<<10)
	clear(mem[32<<10 : 48<<10]) // one all-zero chunk
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 40 << 10}, {Start: 48 << 10, End: 64 << 10}, {Start: 72 << 10, End: 96 << 10}})
	img, _ := writeImage(t, src, append([]WriterOption{WithChunkSize(16 << 10), WithThreads(1)}, opts...)...)
	return img.b, src, mem
}

// checkDetected opens, verifies and restores a damaged image and fails the
// test unless one of them reports an error. It also checks that no wrong
// byte ever reached the sink: a chunk is checked before it is written.
func checkDetected(t *testing.T, what string, img, mem []byte) {
	t.Helper()
	r, err := Open(&memImage{b: img})
	if err != nil {
		return // header damage: nothing can be read
	}
	_, verr := r.Verify(context.Background(), WithThreads(1))
	_, serr := r.VerifyStored(context.Background(), WithThreads(1))
	sink := &sparseMem{}
	_, rerr := r.Restore(context.Background(), sink, WithThreads(1), WithForce())
	if verr == nil || serr == nil || rerr == nil {
		t.Fatalf("%s: not detected (verify %v, verify stored %v, restore %v)", what, verr, serr, rerr)
	}
	for i, b := range sink.b {
		if b != 0 && b != mem[i] {
			t.Fatalf("%s: restore wrote a wrong byte at physical %#x before detecting: %v", what, i, rerr)
		}
	}
}

// eachCompression runs f on the small image written with each codec (Auto
// alternating between zstd and S2 chunks).
func eachCompression(t *testing.T, f func(t *testing.T, img, mem []byte)) {
	for _, c := range []Compression{Zstd, S2, Auto} {
		t.Run(c.String(), func(t *testing.T) {
			img, _, mem := smallImage(t, WithCompression(c), withAlternatingCodecs)
			f(t, img, mem)
		})
	}
}

func TestEverySingleByteCorruptionDetected(t *testing.T) {
	eachCompression(t, func(t *testing.T, img, mem []byte) {
		t.Logf("image is %d bytes", len(img))
		bad := bytes.Clone(img)
		for off := range img {
			for _, x := range []byte{0xff, 0x01, 0x80} {
				bad[off] = img[off] ^ x
				if at := off - (len(img) - commitArea); at >= 0 {
					// A copy of the commit record: detected, the other copy
					// counts. Every byte of the records, a sample of the
					// zeros after them (each restores the whole image).
					if at%commitBlock < commitLen || at%61 == 0 {
						checkSpareCopy(t, "byte "+itoa(off), bad, mem)
					}
				} else {
					checkDetected(t, "byte "+itoa(off), bad, mem)
				}
			}
			bad[off] = img[off]
		}
	})
}

// checkSpareCopy checks an image with one copy of its commit record
// damaged: the other copy counts, so it is exactly as committed and
// restores byte for byte.
func checkSpareCopy(t *testing.T, what string, img, mem []byte) {
	t.Helper()
	r, err := Open(&memImage{b: img})
	if err != nil || r.Status() != nil {
		t.Fatalf("%s: one damaged copy of the commit record made the image unusable: %v %v", what, err, r.Status())
	}
	sink := &sparseMem{}
	if _, err := r.Restore(context.Background(), sink, WithThreads(1)); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	for i, b := range sink.b {
		if b != 0 && b != mem[i] {
			t.Fatalf("%s: wrong byte restored at %#x", what, i)
		}
	}
	if st, err := r.Verify(context.Background(), WithThreads(1)); err != nil || st.StoredPages == 0 {
		t.Fatalf("%s: verify %v", what, err)
	}
}

func TestEveryTruncationDetected(t *testing.T) { eachCompression(t, everyTruncationDetected) }

func everyTruncationDetected(t *testing.T, img, mem []byte) {
	for n := 0; n < len(img); n++ {
		r, err := Open(&memImage{b: img[:n]})
		if err != nil {
			continue
		}
		if r.Status() == nil {
			t.Fatalf("truncated to %d of %d bytes: status nil", n, len(img))
		}
		checkDetected(t, "truncation to "+itoa(n), img[:n], mem)
	}
	// Extending an image is detected too: the commit record must end it.
	checkDetected(t, "extension", append(bytes.Clone(img), 0), mem)
}

func TestCorruptErrorNamesChunk(t *testing.T) {
	img, _, _ := smallImage(t)
	r, _ := Open(&memImage{b: img})
	e := entriesOf(t, r)[1]
	bad := bytes.Clone(img)
	bad[e.Offset+uint64(e.Length)/2] ^= 0x55
	r, err := Open(&memImage{b: bad})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(context.Background())
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) || ce.Chunk != 1 || ce.Offset != int64(e.Offset) {
		t.Fatalf("got %v (%#v)", err, ce)
	}
}

// A payload changed with its record sum kept (forgery.FlipKeepingSum; only an
// encrypted image's tags stop this) passes VerifyStored, which checks what
// was stored, but not Verify, and Restore refuses the chunk before writing
// any of its pages.
func TestVerifyStoredLeavesDecodingToRestore(t *testing.T) {
	eachCompression(t, verifyStoredLeavesDecodingToRestore)
}

func verifyStoredLeavesDecodingToRestore(t *testing.T, img, mem []byte) {
	r, _ := Open(&memImage{b: img})
	_, bad := forgeChunk(t, img, entriesOf(t, r), 0)
	r, err := Open(&memImage{b: bad})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyStored(context.Background()); err != nil {
		t.Fatalf("VerifyStored refused an image whose stored bytes check out: %v", err)
	}
	if _, err := r.Verify(context.Background()); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Verify: %v, want a corrupt chunk", err)
	}
	checkRestoreRefuses(t, r, mem)
}

func checkRestoreRefuses(t *testing.T, r *Reader, mem []byte) {
	t.Helper()
	sink := &sparseMem{}
	_, err := r.Restore(context.Background(), sink, WithThreads(1))
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Chunk != 0 {
		t.Fatalf("Restore: %v, want chunk 0 refused", err)
	}
	for i, b := range sink.b {
		if b != 0 && b != mem[i] {
			t.Fatalf("restore wrote a wrong byte at physical %#x", i)
		}
	}
}

func TestNotAnImage(t *testing.T) {
	if _, err := Open(&memImage{b: make([]byte, 4096)}); !errors.Is(err, ErrNotImage) {
		t.Fatalf("zeros: %v", err)
	}
	img, _, _ := smallImage(t)
	img = bytes.Clone(img)
	img[8] = 9 // major version
	var ve *VersionError
	if _, err := Open(&memImage{b: img}); !errors.As(err, &ve) {
		t.Fatalf("future major version: %v", err)
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestShortInputs(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("x"), []byte("hello, world")} {
		if _, err := Open(&memImage{b: b}); !errors.Is(err, ErrNotImage) {
			t.Errorf("%q: %v, want ErrNotImage", b, err)
		}
	}
	if _, err := Open(&memImage{b: []byte("KJUMPIMG\x01")}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated header: %v, want ErrCorrupt", err)
	}
}

// Restore after VerifyStored (WithVerifiedStored) skips the record sums,
// yet no byte of a chunk record changed after the check makes it restore
// wrong memory unnoticed: it fails, or, for a change that decodes to the
// same pages at the same addresses, restores the right memory.
func TestVerifiedStoredRestore(t *testing.T) {
	eachCompression(t, func(t *testing.T, img, mem []byte) {
		ctx := context.Background()
		r, err := Open(&memImage{b: img})
		if err != nil {
			t.Fatal(err)
		}
		st, err := r.VerifyStored(ctx, WithThreads(1))
		if err != nil {
			t.Fatal(err)
		}
		sink := &sparseMem{}
		rst, err := r.Restore(ctx, sink, WithThreads(2), WithVerifiedStored(st.Headers))
		if err != nil || rst.Headers != st.Headers || !restoredRight(sink.b, mem, r.Ranges()) {
			t.Fatalf("restore after VerifyStored: %v (headers %08x, checked %08x)", err, rst.Headers, st.Headers)
		}
		if _, err := r.Restore(ctx, &sparseMem{}, WithVerifiedStored(st.Headers^1)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "chunk headers read now") {
			t.Fatalf("restore against other headers: %v", err)
		}
		// VerifyStored itself never skips a record sum.
		bad := bytes.Clone(img)
		e := entriesOf(t, r)[0]
		bad[e.Offset+uint64(e.Length)-crcLen-1] ^= 0x40
		br, _ := Open(&memImage{b: bad})
		if _, err := br.VerifyStored(ctx, WithVerifiedStored(st.Headers)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("VerifyStored with WithVerifiedStored missed a changed payload: %v", err)
		}
		changed := 0
		for _, e := range entriesOf(t, r) {
			for off := e.Offset; off < e.Offset+uint64(e.Length)-crcLen; off++ {
				for _, x := range []byte{0x01, 0x10, 0x80} { // 0x10 in an address: one page off
					bad := bytes.Clone(img)
					bad[off] ^= x
					br, err := Open(&memImage{b: bad})
					if err != nil {
						t.Fatalf("byte %d: Open: %v", off, err)
					}
					sink := &sparseMem{}
					if _, err := br.Restore(ctx, sink, WithThreads(1), WithVerifiedStored(st.Headers)); err == nil {
						if !restoredRight(sink.b, mem, r.Ranges()) {
							t.Fatalf("byte %d ^ %#x: restored wrong memory without an error", off, x)
						}
						changed++
					}
				}
			}
		}
		t.Logf("%d of the changes restored the right memory anyway", changed)
	})
}

// restoredRight reports whether got holds mem's bytes in every range.
func restoredRight(got, mem []byte, ranges []Range) bool {
	for _, rg := range ranges {
		for a := rg.Start; a < rg.End; a++ {
			var g byte
			if a < uint64(len(got)) {
				g = got[a]
			}
			if g != mem[a] {
				return false
			}
		}
	}
	return true
}

// spanImage is a memImage read the way a block device with O_DIRECT is:
// records land inside a larger buffer, at the offset's alignment.
type spanImage struct{ *memImage }

func (s spanImage) SpanBuffer(n int) []byte { return make([]byte, n+8192) }

func (s spanImage) ReadSpan(buf []byte, off int64, n int) ([]byte, error) {
	if off+int64(n) > int64(len(s.b)) {
		return nil, io.EOF
	}
	lo := off &^ 4095
	k := copy(buf, s.b[lo:min(int64(len(s.b)), lo+int64(len(buf)))])
	if int64(k) < off-lo+int64(n) {
		return nil, io.EOF
	}
	return buf[off-lo : off-lo+int64(n)], nil
}

// Records read into the input's own buffers verify and restore the same,
// and damage in them is found the same.
func TestSpanInput(t *testing.T) {
	eachCompression(t, func(t *testing.T, img, mem []byte) {
		r, err := Open(spanImage{&memImage{b: img}})
		if err != nil {
			t.Fatal(err)
		}
		sink := &sparseMem{}
		if _, err := r.Restore(context.Background(), sink, WithThreads(2)); err != nil || !restoredRight(sink.b, mem, r.Ranges()) {
			t.Fatalf("restore through spans: %v", err)
		}
		e := entriesOf(t, r)[len(entriesOf(t, r))-1]
		bad := bytes.Clone(img)
		bad[e.Offset+uint64(e.Length)/2] ^= 0x08
		br, _ := Open(spanImage{&memImage{b: bad}})
		if _, err := br.VerifyStored(context.Background()); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("damage read through spans: %v", err)
		}
	})
}

// lendingMem is memory of a fixed size that lends itself (Lender).
type lendingMem struct {
	sparseMem
	lent atomic.Int64
}

func (l *lendingMem) Lend(off int64, n int) ([]byte, func(), bool) {
	if off+int64(n) > int64(len(l.b)) {
		return nil, nil, false
	}
	l.lent.Add(1)
	return l.b[off : off+int64(n)], func() {}, true
}

// With a lending sink, restore after VerifyStored decodes chunks in place:
// same memory, and a changed byte fails the restore or changes nothing.
func TestVerifiedStoredRestoreInPlace(t *testing.T) {
	eachCompression(t, func(t *testing.T, img, mem []byte) {
		ctx := context.Background()
		r, err := Open(&memImage{b: img})
		if err != nil {
			t.Fatal(err)
		}
		st, err := r.VerifyStored(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sink := &lendingMem{sparseMem: sparseMem{b: make([]byte, len(mem))}}
		if _, err := r.Restore(ctx, sink, WithThreads(2), WithVerifiedStored(st.Headers)); err != nil || !restoredRight(sink.b, mem, r.Ranges()) {
			t.Fatalf("in-place restore: %v", err)
		}
		if sink.lent.Load() == 0 {
			t.Fatal("no chunk was decoded in place")
		}
		// Without it (the restore kernel), each record's CRC is checked
		// before its chunk decodes in place.
		plain := &lendingMem{sparseMem: sparseMem{b: make([]byte, len(mem))}}
		if _, err := r.Restore(ctx, plain); err != nil || plain.lent.Load() == 0 || !restoredRight(plain.b, mem, r.Ranges()) {
			t.Fatalf("restore without WithVerifiedStored lent no memory (%d) or failed: %v", plain.lent.Load(), err)
		}
		for _, e := range entriesOf(t, r) {
			for off := e.Offset; off < e.Offset+uint64(e.Length)-crcLen; off += 3 {
				bad := bytes.Clone(img)
				bad[off] ^= 0x10
				br, _ := Open(&memImage{b: bad})
				sink := &lendingMem{sparseMem: sparseMem{b: make([]byte, len(mem))}}
				if _, err := br.Restore(ctx, sink, WithThreads(1), WithVerifiedStored(st.Headers)); err == nil && !restoredRight(sink.b, mem, r.Ranges()) {
					t.Fatalf("byte %d: restored wrong memory without an error", off)
				}
				full := &lendingMem{sparseMem: sparseMem{b: make([]byte, len(mem))}}
				if _, err := br.Restore(ctx, full, WithThreads(1)); err == nil {
					t.Fatalf("byte %d: not detected by a restore with every check", off)
				}
				for i, b := range full.b {
					if b != 0 && b != mem[i] {
						t.Fatalf("byte %d: a restore with every check wrote a wrong byte at %#x before detecting it", off, i)
					}
				}
			}
		}
	})
}
