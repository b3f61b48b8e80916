package image

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var updateCorpus = flag.Bool("update", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// withCRC returns b with its last four bytes replaced by the CRC32C of the
// rest, so the fuzzer also reaches the checks behind the checksum.
func withCRC(b []byte) []byte { return withChecksum(b, crc) }

// withSum is withCRC for a chunk record, whose checksum is sum.
func withSum(b []byte) []byte { return withChecksum(b, sum) }

func withChecksum(b []byte, f func([]byte) uint32) []byte {
	if len(b) < crcLen {
		return b
	}
	c := bytes.Clone(b)
	le.PutUint32(c[len(c)-crcLen:], f(c[:len(c)-crcLen]))
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
var fuzzGeometry = &header{PageSize: 4096, ChunkSize: 16 << 10, Compression: Zstd,
	Ranges: []Range{{Start: 0, End: 40 << 10}, {Start: 48 << 10, End: 64 << 10}, {Start: 72 << 10, End: 96 << 10}}}

// FuzzChunk: a chunk record is parsed, decompressed and CRC-checked without
// panics or unbounded allocation; accepted records decode to exactly the
// pages their extents describe, inside their slot.
func FuzzChunk(f *testing.F) { fuzzChunks(f, &Reader{h: fuzzGeometry}) }

// FuzzS2Chunk: FuzzChunk for chunks of S2 images.
func FuzzS2Chunk(f *testing.F) {
	h := *fuzzGeometry
	h.Compression = S2
	fuzzChunks(f, &Reader{h: &h})
}

// FuzzAutoChunk: FuzzChunk for chunks of Auto images, which name their
// codec.
func FuzzAutoChunk(f *testing.F) {
	h := *fuzzGeometry
	h.Compression = Auto
	fuzzChunks(f, &Reader{h: &h})
}

func fuzzChunks(f *testing.F, r *Reader) {
	dec := &decoders{chunkSize: int(r.h.ChunkSize)}
	f.Fuzz(func(t *testing.T, rec []byte) {
		for _, recordCRC := range []bool{true, false} {
			fuzzChunk(t, r, dec, rec, recordCRC)
			fuzzChunk(t, r, dec, withSum(rec), recordCRC)
		}
	})
}

func fuzzChunk(t *testing.T, r *Reader, dec *decoders, rec []byte, recordCRC bool) {
	if len(rec) < crcLen {
		return
	}
	e := indexEntry{Length: uint32(len(rec)), CRC: le.Uint32(rec[len(rec)-crcLen:])}
	c, _, err := r.checkChunk(rec, e, dec, make([]byte, 0, 16<<10), nil, recordCRC, nil)
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

// FuzzImage: Open, Verify and Restore of arbitrary bytes never panic,
// never allocate more than fuzzAllocLimit, and Verify and Restore agree on
// whether an image is valid. Its seeds are tiny images: every input that
// finds new code is minimized (up to -fuzzminimizetime, 60 s by default,
// one execution per byte tried), and with the 20-80 KB images the seeds
// once were, minimizing took whole runs (18 executions counted in 60 s).
// Random bytes rarely get past the CRCs; FuzzImageFields edits fields
// behind them. Each input is
// opened without a key and with the test key file (HKDF only: a fuzzed
// passphrase header is refused as the wrong kind of key before Argon2id
// could run), so the encrypted paths are reached too.
func FuzzImage(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, opts := range [][]ReaderOption{nil, {WithSecret(KeyFileSecret(testKeyFile))}} {
			allocGuard(t, func() {
				r, err := Open(&memImage{b: b}, opts...)
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
	})
}

// fuzzKeyed is the encrypted geometry FuzzEncryptedChunk parses against:
// fuzzGeometry with keys from a fixed master key and image id.
func fuzzKeyed(f *testing.F) *Reader {
	keys, err := newImageKeys(bytes.Repeat([]byte{7}, keyLen), [16]byte{1, 2, 3})
	if err != nil {
		f.Fatal(err)
	}
	h := *fuzzGeometry
	h.Enc = &encParams{Source: KeySourceFile}
	return &Reader{h: &h, keys: keys}
}

// FuzzEncryptedChunk: sealed chunk records are parsed, authenticated and
// decompressed without panics; whatever is accepted decodes to exactly
// its extents' pages.
func FuzzEncryptedChunk(f *testing.F) { fuzzChunks(f, fuzzKeyed(f)) }

// encryptedSeedChunks writes the small image's memory sealed with
// fuzzKeyed's keys and returns its chunk records.
func encryptedSeedChunks(t *testing.T) [][]byte {
	keys, err := newImageKeys(bytes.Repeat([]byte{7}, keyLen), [16]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	_, src, _ := smallImage(t)
	o, err := newWriterOptions([]WriterOption{WithChunkSize(16 << 10), WithThreads(1), WithCompression(Zstd)})
	if err != nil {
		t.Fatal(err)
	}
	p := &pipeline{o: o, src: src, ps: 4096, ranges: src.Ranges(), keys: keys}
	out := &memImage{}
	entries, _, err := p.run(context.Background(), out, 0)
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for _, e := range entries {
		recs = append(recs, out.b[e.Offset:e.Offset+uint64(e.Length)])
	}
	return recs
}

// chunkRecords opens img and returns its reader and chunk records.
func chunkRecords(t *testing.T, img []byte) (*Reader, [][]byte) {
	r, err := Open(&memImage{b: img})
	if err != nil {
		t.Fatal(err)
	}
	var recs [][]byte
	for _, e := range entriesOf(t, r) {
		recs = append(recs, img[e.Offset:e.Offset+uint64(e.Length)])
	}
	return r, recs
}

// TestFuzzCorpus keeps the committed seed corpus in step with the format:
// the valid seeds must still parse. Run with -update after a format change.
func TestFuzzCorpus(t *testing.T) {
	img, _, _ := smallImage(t, WithCompression(Zstd))
	r, chunks := chunkRecords(t, img)
	enc, _, _ := encryptedImage(t, KeyFileSecret(testKeyFile))
	encPass, _, _ := encryptedImage(t, PassphraseSecret([]byte("fuzz")))
	er, _ := Open(&memImage{b: enc})
	sealed := encryptedSeedChunks(t)
	s2img, _, _ := smallImage(t, WithCompression(S2))
	_, s2chunks := chunkRecords(t, s2img)
	autoImg, _, _ := smallImage(t, WithCompression(Auto), withAlternatingCodecs)
	_, autoChunks := chunkRecords(t, autoImg)
	// FuzzImage's seeds are tiny, so minimizing what grows from them is quick.
	tiny := tinyImage(t)
	tinyInvalidated := &memImage{b: bytes.Clone(tiny)}
	if err := Invalidate(tinyInvalidated); err != nil {
		t.Fatal(err)
	}
	tk, err := NewKey(KeyFileSecret(testKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	tinyEnc := tinyImage(t, WithKey(tk))
	tinyEncInvalidated := &memImage{b: bytes.Clone(tinyEnc)}
	if err := Invalidate(tinyEncInvalidated, WithSecret(KeyFileSecret(testKeyFile))); err != nil {
		t.Fatal(err)
	}
	seeds := map[string]map[string][]byte{
		"FuzzHeader": {"valid": img[:r.hdrLen], "empty-metadata": mustHeader(t), "garbage": []byte("KJUMPIMG\x01\x00\x00\x00"),
			"encrypted-keyfile": enc[:er.hdrLen], "encrypted-passphrase": encPass[:mustHeaderLen(t, encPass)]},
		"FuzzChunk":          {"chunk0": chunks[0], "chunk1": chunks[1], "last": chunks[len(chunks)-1]},
		"FuzzS2Chunk":        {"chunk0": s2chunks[0], "chunk1": s2chunks[1], "last": s2chunks[len(s2chunks)-1]},
		"FuzzAutoChunk":      {"chunk0": autoChunks[0], "chunk1": autoChunks[1], "last": autoChunks[len(autoChunks)-1]},
		"FuzzEncryptedChunk": {"chunk0": sealed[0], "chunk1": sealed[1], "last": sealed[len(sealed)-1]},
		"FuzzImage": {"valid": tiny, "valid-s2": tinyImage(t, WithCompression(S2)), "valid-auto": tinyImage(t, WithCompression(Auto), withAlternatingCodecs),
			"uncommitted": tiny[:len(tiny)-commitArea], "invalidated": tinyInvalidated.b,
			"encrypted": tinyEnc, "encrypted-invalidated": tinyEncInvalidated.b, "encrypted-uncommitted": tinyEnc[:len(tinyEnc)-commitArea]},
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
	b, err = os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzImage", "encrypted"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(string(bytes.TrimPrefix(b, []byte("go test fuzz v1\n"))), "[]byte(%q)", &data); err != nil {
		t.Fatalf("parsing seed: %v", err)
	}
	sr, err = Open(&memImage{b: data}, WithSecret(KeyFileSecret(testKeyFile)))
	if err != nil {
		t.Fatalf("encrypted seed no longer opens (run -update): %v", err)
	}
	if _, err := sr.Verify(context.Background()); err != nil {
		t.Fatalf("encrypted seed no longer verifies (run -update): %v", err)
	}
	// The sealed chunk seeds must still authenticate under fuzzKeyed's keys.
	dec := &decoders{chunkSize: 16 << 10}
	kr := fuzzKeyed(&testing.F{})
	for _, name := range []string{"chunk0", "chunk1", "last"} {
		b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzEncryptedChunk", name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fmt.Sscanf(string(bytes.TrimPrefix(b, []byte("go test fuzz v1\n"))), "[]byte(%q)", &data); err != nil {
			t.Fatal(err)
		}
		e := indexEntry{Length: uint32(len(data)), CRC: le.Uint32(data[len(data)-crcLen:])}
		if _, _, err := kr.checkChunk(data, e, dec, make([]byte, 0, 16<<10), nil, true, nil); err != nil {
			t.Fatalf("sealed seed %s no longer authenticates (run -update): %v", name, err)
		}
	}
}

func mustHeaderLen(t *testing.T, img []byte) int {
	n, err := headerLen(img)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustHeader(t *testing.T) []byte {
	h := &header{PageSize: 4096, ChunkSize: 4096, Compression: Zstd, Ranges: []Range{{Start: 0, End: 4096}}}
	b, err := h.encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}
