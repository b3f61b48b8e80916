package image

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

var updateCorpus = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// withCRC returns b with its last four bytes replaced by the CRC32C of the
// rest, so the fuzzer also reaches the checks behind the checksum.
func withCRC(b []byte) []byte {
	if len(b) < crcLen {
		return b
	}
	c := bytes.Clone(b)
	le.PutUint32(c[len(c)-crcLen:], crc(c[:len(c)-crcLen]))
	return c
}

// FuzzHeader: parseHeader never panics, and what it accepts parses the same
// again from exactly its own length. Each input is tried as is and with its
// CRC fixed up.
func FuzzHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzHeader(t, b)
		if n, err := headerLen(b); err == nil && n <= len(b) {
			fuzzHeader(t, withCRC(b[:n]))
		}
	})
}

func fuzzHeader(t *testing.T, b []byte) {
	h, err := parseHeader(b)
	if err != nil {
		return
	}
	n, _ := headerLen(b)
	// Metadata JSON may be re-encoded differently; compare the rest.
	h2, err := parseHeader(b[:n])
	if err != nil || h2.ChunkCount != h.ChunkCount || len(h2.Ranges) != len(h.Ranges) {
		t.Fatalf("header parses inconsistently: %v", err)
	}
}

// fuzzGeometry is the image geometry chunk records are parsed against.
var fuzzGeometry = &header{PageSize: 4096, ChunkSize: 16 << 10, Compression: compressionZstd,
	Ranges: []Range{{0, 40 << 10}, {48 << 10, 64 << 10}, {72 << 10, 96 << 10}}}

// FuzzChunk: a chunk record is parsed, decompressed and CRC-checked without
// panics or unbounded allocation; accepted records decode to exactly the
// pages their extents describe, inside their slot.
func FuzzChunk(f *testing.F) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(16<<10), zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		f.Fatal(err)
	}
	r := &Reader{h: fuzzGeometry}
	f.Fuzz(func(t *testing.T, rec []byte) {
		fuzzChunk(t, r, dec, rec)
		fuzzChunk(t, r, dec, withCRC(rec))
	})
}

func fuzzChunk(t *testing.T, r *Reader, dec *zstd.Decoder, rec []byte) {
	if len(rec) < crcLen {
		return
	}
	e := indexEntry{Length: uint32(len(rec)), CRC: le.Uint32(rec[len(rec)-crcLen:])}
	c, err := r.checkChunk(rec, e, dec, make([]byte, 0, 16<<10), nil)
	if err != nil {
		return
	}
	pages := 0
	for _, x := range c.Extents {
		pages += int(x.Pages)
	}
	if len(c.Payload) != pages*4096 {
		t.Fatalf("accepted chunk decodes to %d bytes for %d pages", len(c.Payload), pages)
	}
}

// discard is a restore sink that keeps nothing, so fuzzed physical
// addresses cannot make the fuzzer allocate.
type discard struct{}

func (discard) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// FuzzImage: Open, Verify and Restore of arbitrary bytes never panic, and
// Verify and Restore agree on whether an image is valid.
func FuzzImage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Open(&memImage{b: b})
		if err != nil {
			return
		}
		r.Info()
		_, verr := r.Verify(context.Background(), WithThreads(1))
		_, rerr := r.Restore(context.Background(), discard{}, WithThreads(1))
		if (verr == nil) != (rerr == nil) {
			t.Fatalf("verify %v but restore %v", verr, rerr)
		}
	})
}

// TestFuzzCorpus keeps the committed seed corpus in step with the format:
// the valid seeds must still parse. Run with -update after a format change.
func TestFuzzCorpus(t *testing.T) {
	img, _, _ := smallImage(t)
	r, err := Open(&memImage{b: img})
	if err != nil {
		t.Fatal(err)
	}
	var chunks [][]byte
	for _, e := range r.entries {
		chunks = append(chunks, img[e.Offset:e.Offset+uint64(e.Length)])
	}
	uncommitted := img[:len(img)-commitLen]
	invalidated := &memImage{b: bytes.Clone(img)}
	if err := Invalidate(invalidated); err != nil {
		t.Fatal(err)
	}
	seeds := map[string]map[string][]byte{
		"FuzzHeader": {"valid": img[:r.hdrLen], "empty-metadata": mustHeader(t), "garbage": []byte("KJUMPIMG\x01\x00\x00\x00")},
		"FuzzChunk":  {"chunk0": chunks[0], "chunk1": chunks[1], "last": chunks[len(chunks)-1]},
		"FuzzImage":  {"valid": img, "uncommitted": uncommitted, "invalidated": invalidated.b},
	}
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		for name, data := range files {
			path := filepath.Join(dir, name)
			want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data))
			if *updateCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if _, err := os.Stat(path); err != nil {
				t.Errorf("seed %s missing: run go test -run TestFuzzCorpus -update ./internal/image", path)
			}
		}
	}
	// Seeds made by an older format version would no longer exercise the
	// accept paths: the committed valid image must still verify.
	b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzImage", "valid"))
	if err != nil {
		t.Fatal(err)
	}
	var data []byte
	if _, err := fmt.Sscanf(string(bytes.TrimPrefix(b, []byte("go test fuzz v1\n"))), "[]byte(%q)", &data); err != nil {
		t.Fatalf("parsing seed: %v", err)
	}
	sr, err := Open(&memImage{b: data})
	if err != nil {
		t.Fatalf("committed seed no longer opens (run -update): %v", err)
	}
	if _, err := sr.Verify(context.Background()); err != nil {
		t.Fatalf("committed seed no longer verifies (run -update): %v", err)
	}
}

func mustHeader(t *testing.T) []byte {
	h := &header{PageSize: 4096, ChunkSize: 4096, Compression: compressionZstd, Ranges: []Range{{0, 4096}}}
	b, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
