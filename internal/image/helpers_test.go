package image

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/kjump/kjump/internal/image/forgery"
)

// memImage is an in-memory image store: the same WriterAt/ReaderAt
// contract as a file, so exhaustive corruption tests run fast.
type memImage struct{ b []byte }

func (m *memImage) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(m.b) {
		m.b = append(m.b, make([]byte, end-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memImage) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memImage) Size() int64 { return int64(len(m.b)) }
func (m *memImage) Sync() error { return nil }

// sparseMem is a restore sink: physical address -> byte.
type sparseMem struct {
	mu sync.Mutex
	b  []byte
}

func (s *sparseMem) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if end := int(off) + len(p); end > len(s.b) {
		s.b = append(s.b, make([]byte, end-len(s.b))...)
	}
	return copy(s.b[off:], p), nil
}

// zeroingMem is a sparseMem that clears memory itself (image.Zeroer).
type zeroingMem struct {
	*sparseMem
	calls   int
	largest int64
}

func (z *zeroingMem) ZeroAt(off, n int64) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.calls++
	z.largest = max(z.largest, n)
	clear(z.b[off : off+n])
	return nil
}

// testMemory builds flat physical memory of size bytes with a realistic
// mix: zero pages, repetitive text, random pages, and partly zero pages.
func testMemory(seed uint64, size int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	mem := make([]byte, size)
	for off := 0; off+4096 <= size; off += 4096 {
		page := mem[off : off+4096]
		switch rng.IntN(6) {
		case 0, 1: // zero
		case 2: // text-like
			for i := range page {
				page[i] = "kjump hibernates linux "[(i+off/4096)%23]
			}
		case 3: // random
			for i := range page {
				page[i] = byte(rng.Uint32())
			}
		case 4: // one non-zero byte somewhere
			page[rng.IntN(4096)] = byte(1 + rng.IntN(255))
		case 5: // small integers, like page tables
			for i := 0; i < 4096; i += 8 {
				page[i] = byte(rng.IntN(4))
			}
		}
	}
	return mem
}

func writeImage(t testing.TB, src Source, opts ...WriterOption) (*memImage, Stats) {
	t.Helper()
	img := &memImage{}
	st, err := Write(context.Background(), img, src, Metadata{KernelRelease: "6.1.0-test", Hostname: "h"}, opts...)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	return img, st
}

func restore(t testing.TB, img Input, opts ...ReaderOption) []byte {
	t.Helper()
	r, err := Open(img)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	sink := &sparseMem{}
	if _, err := r.Restore(context.Background(), sink, opts...); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return sink.b
}

// expectRestored checks that every byte of every range of src equals the
// restored memory (which is zero where nothing was written).
func expectRestored(t testing.TB, src Source, got []byte) {
	t.Helper()
	for _, r := range src.Ranges() {
		want := make([]byte, r.Size())
		if _, err := src.ReadAt(want, int64(r.Start)); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		have := make([]byte, r.Size())
		if r.Start < uint64(len(got)) {
			copy(have, got[r.Start:])
		}
		if !bytes.Equal(want, have) {
			t.Fatalf("range %v differs after restore", r)
		}
	}
}

// entriesOf is r's index, read and checked as Verify reads it.
func entriesOf(t testing.TB, r *Reader) []indexEntry {
	t.Helper()
	var entries []indexEntry
	_, cb, err := readCommit(r.in, r.in.Size(), r.hdrLen)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.readIndex(r.commit, cb, func(_ uint32, e indexEntry) error { entries = append(entries, e); return nil }); err != nil {
		t.Fatalf("reading the index: %v", err)
	}
	return entries
}

// forgeChunk flips a payload byte of the first chunk record, from entry
// from on, that leaves room for forgery.FlipKeepingSum, keeping the
// record's sum and so its index entry and all that binds it. It returns
// the chunk's index and the forged image.
func forgeChunk(t *testing.T, img []byte, es []indexEntry, from int) (int, []byte) {
	t.Helper()
	for i := from; i < len(es); i++ {
		e := es[i]
		bad := bytes.Clone(img)
		body := bad[e.Offset : e.Offset+uint64(e.Length)-crcLen]
		at := len(body) - len(body)%32 - 1 // the last byte before the bytes the forgery fixes
		if at < chunkOverhead(int(le.Uint32(body[8:])))-crcLen {
			continue // not in the payload
		}
		if _, err := forgery.FlipKeepingSum(body, at, 0x20); err == nil {
			return i, bad
		}
	}
	t.Fatal("no chunk record leaves room for a forgery that keeps its sum")
	return 0, nil
}
