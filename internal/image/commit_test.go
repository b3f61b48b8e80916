package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/storage"
)

// tornImage is a memImage whose power goes out after budget more bytes:
// the write in flight is torn (its first bytes land, or with tail its last
// ones, as a disk may write a request's sectors in any order) and nothing
// after it reaches the disk.
type tornImage struct {
	memImage
	budget int
	tail   bool
	out    bool
}

var errPowerLost = errors.New("power lost")

func (m *tornImage) WriteAt(p []byte, off int64) (int, error) {
	if m.out {
		return 0, errPowerLost
	}
	if len(p) <= m.budget {
		m.budget -= len(p)
		return m.memImage.WriteAt(p, off)
	}
	m.out = true
	if m.tail {
		k := len(p) - m.budget
		m.memImage.WriteAt(p[k:], off+int64(k))
	} else {
		m.memImage.WriteAt(p[:m.budget], off)
	}
	return m.budget, errPowerLost
}

func (m *tornImage) Sync() error {
	if m.out {
		return errPowerLost
	}
	return nil
}

// A state change torn at any byte of either copy of the commit record
// leaves the image in its old or its new state, never corrupt, and its
// data verifies; a later change from there completes. For each change
// resume and the restore kernel make, plain and encrypted.
func TestTornCommitWriteAtEveryByte(t *testing.T) {
	plain, _, _ := smallImage(t)
	enc, _, _ := encryptedImage(t, KeyFileSecret(testKeyFile))
	key := WithSecret(KeyFileSecret(testKeyFile))
	type change struct {
		name     string
		from     func(ReadWriter, ...ReaderOption) error // nil: a committed image
		to       func(ReadWriter, ...ReaderOption) error
		old, new error
	}
	changes := []change{
		{"committed-to-restoring", nil, MarkRestoring, nil, ErrRestoreStarted},
		{"restoring-to-spent", MarkRestoring, Invalidate, ErrRestoreStarted, ErrInvalidated},
		{"committed-to-spent", nil, Invalidate, nil, ErrInvalidated},
	}
	for _, img := range []struct {
		name string
		b    []byte
		opts []ReaderOption
	}{{"plain", plain, nil}, {"encrypted", enc, []ReaderOption{key}}} {
		for _, ch := range changes {
			t.Run(img.name+"/"+ch.name, func(t *testing.T) {
				base := &memImage{b: bytes.Clone(img.b)}
				if ch.from != nil {
					if err := ch.from(base, img.opts...); err != nil {
						t.Fatal(err)
					}
				}
				// The change writes two copies of commitLen bytes.
				for _, tail := range []bool{false, true} {
					for budget := 0; budget <= 2*commitLen; budget++ {
						what := fmt.Sprintf("torn after %d bytes (tail %v)", budget, tail)
						m := &tornImage{memImage: memImage{b: bytes.Clone(base.b)}, budget: budget, tail: tail}
						err := ch.to(m, img.opts...)
						if budget < 2*commitLen && !errors.Is(err, errPowerLost) {
							t.Fatalf("%s: change returned %v", what, err)
						}
						r, err := Open(&m.memImage, img.opts...)
						if err != nil {
							t.Fatalf("%s: %v", what, err)
						}
						st := r.Status()
						if st != ch.old && st != ch.new {
							t.Fatalf("%s: status %v, want %v or %v", what, st, ch.old, ch.new)
						}
						if !tail && budget <= commitLen-1 && st != ch.old || budget == 2*commitLen && st != ch.new {
							t.Fatalf("%s: status %v", what, st)
						}
						if _, err := r.Verify(context.Background(), WithForce()); err != nil {
							t.Fatalf("%s: verify: %v", what, err)
						}
						// Power back: the change is made again and completes.
						if err := ch.to(&m.memImage, img.opts...); err != nil {
							t.Fatalf("%s: change after the tear: %v", what, err)
						}
						if r, _ := Open(&m.memImage, img.opts...); r.Status() != ch.new {
							t.Fatalf("%s: after the repeated change: %v", what, r.Status())
						}
					}
				}
			})
		}
	}
}

// A spent image stays spent: neither MarkRestoring (a --force resume of
// it) nor a second Invalidate revives or changes it, and a restoring image
// is retryable only as such.
func TestStatesOnlyMoveForward(t *testing.T) {
	img, _, _ := smallImage(t)
	m := &memImage{b: bytes.Clone(img)}
	if err := MarkRestoring(m); err != nil {
		t.Fatal(err)
	}
	r, _ := Open(m)
	if !errors.Is(r.Status(), ErrRestoreStarted) || !errors.Is(r.Status(), ErrInvalidated) || Usable(r.Status(), false) == nil || Usable(r.Status(), true) != nil {
		t.Fatalf("restoring: %v", r.Status())
	}
	if !strings.Contains(r.Info().Status, "restore interrupted") {
		t.Fatalf("info status %q", r.Info().Status)
	}
	if err := MarkRestoring(m); err != nil {
		t.Fatal(err)
	}
	if err := Invalidate(m); err != nil {
		t.Fatal(err)
	}
	spent := bytes.Clone(m.b)
	if err := MarkRestoring(m); err != nil || !bytes.Equal(spent, m.b) {
		t.Fatalf("MarkRestoring of a spent image: %v, changed %v", err, !bytes.Equal(spent, m.b))
	}
	if r, _ := Open(m); r.Status() != ErrInvalidated || errors.Is(r.Status(), ErrRestoreStarted) {
		t.Fatalf("spent: %v", r.Status())
	}
}

// Images of the formats before the two-copy commit record (1.0 plain,
// 2.0 encrypted) and before XXH64 chunk sums (3.0, 4.0) are refused by
// name, with what to do.
func TestOldFormatRefused(t *testing.T) {
	img, _, _ := smallImage(t)
	r, _ := Open(&memImage{b: img})
	for _, major := range []uint16{oldMajorPlain, oldMajorEnc, crc32MajorPlain, crc32MajorEnc} {
		old := bytes.Clone(img)
		le.PutUint16(old[8:], major)
		n := int(r.hdrLen)
		le.PutUint32(old[n-crcLen:], crc(old[:n-crcLen]))
		_, err := Open(&memImage{b: old})
		var ve *VersionError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), fmt.Sprintf("format version %d.0 was written by an older kjump", major)) ||
			!strings.Contains(err.Error(), "hibernate again") {
			t.Fatalf("major %d: %v", major, err)
		}
	}
}

// sameIDOtherImage is img with its metadata changed and every checksum and
// the digest made good again: another valid image with the same ID.
func sameIDOtherImage(t *testing.T, img []byte) []byte {
	t.Helper()
	r, err := Open(&memImage{b: img})
	if err != nil || r.Status() != nil {
		t.Fatal(err, r.Status())
	}
	b := bytes.Clone(img)
	hdr := b[:r.hdrLen]
	i := bytes.Index(hdr, []byte("6.1.0-test"))
	if i < 0 {
		t.Fatal("no kernel release in the header")
	}
	hdr[i] = '7'
	le.PutUint32(hdr[len(hdr)-crcLen:], crc(hdr[:len(hdr)-crcLen]))
	c := *r.commit
	cb := sealCommit(&c, nil, hdr, b[c.IndexOffset:c.IndexOffset+indexLen(c.ChunkCount)])
	copy(b[len(b)-commitArea:], cb)
	copy(b[len(b)-commitBlock:], cb)
	if r, err := Open(&memImage{b: b}); err != nil || r.Status() != nil || r.Info().ID != fmt.Sprintf("%x", c.ID) {
		t.Fatalf("the swapped image does not open as a valid one: %v %v", err, r.Status())
	}
	return b
}

// An image swapped after resume checked it (same ID, other header or
// index) is refused by the restore kernel's read before any page is
// written; the one resume checked is restored.
func TestSwappedImageRefusedBeforeAnyWrite(t *testing.T) {
	img, src, _ := smallImage(t)
	r, _ := Open(&memImage{b: img})
	d := r.Digest()
	if len(d) != 64 {
		t.Fatalf("digest %q", d)
	}
	swapped := sameIDOtherImage(t, img)
	rs, err := Open(&memImage{b: swapped}, WithDigest(d))
	if err != nil {
		t.Fatal(err)
	}
	var se *SwappedError
	if !errors.As(rs.Status(), &se) || !strings.Contains(rs.Status().Error(), "changed after resume checked it") {
		t.Fatalf("swapped image status: %v", rs.Status())
	}
	sink := &sparseMem{}
	if _, err := rs.Restore(context.Background(), sink, WithForce(), WithZeroFill()); !errors.As(err, &se) || len(sink.b) != 0 {
		t.Fatalf("swapped image restore: %v, %d bytes written", err, len(sink.b))
	}
	if err := Invalidate(&memImage{b: swapped}, WithDigest(d)); !errors.As(err, &se) {
		t.Fatalf("invalidating a swapped image: %v", err)
	}
	ok, err := Open(&memImage{b: img}, WithDigest(d))
	if err != nil || ok.Status() != nil {
		t.Fatalf("the checked image: %v %v", err, ok.Status())
	}
	expectRestored(t, src, restore(t, &memImage{b: img}, WithDigest(d)))
	if _, err := Open(&memImage{b: img}, WithDigest("12")); err == nil {
		t.Fatal("a malformed digest was accepted")
	}
}

// With the machine's RAM given (the restore kernel: the original's RAM
// less the reserved region), an image whose RAM overlaps the reserved
// region or a hole is refused before anything is written.
func TestRestoreConfinedToMachineRAM(t *testing.T) {
	img, src, _ := smallImage(t) // RAM [0,40K) [48K,64K) [72K,96K)
	for name, ram := range map[string][]Range{
		"reserved region in the first range": {{Start: 0, End: 16 << 10}, {Start: 20 << 10, End: 128 << 10}},
		"hole under the last range":          {{Start: 0, End: 64 << 10}, {Start: 80 << 10, End: 128 << 10}},
		"RAM ends early":                     {{Start: 0, End: 90 << 10}},
	} {
		r, err := Open(&memImage{b: img}, WithMachineRAM(ram))
		if err != nil {
			t.Fatal(err)
		}
		var fe *ForeignRAMError
		sink := &sparseMem{}
		if _, err := r.Restore(context.Background(), sink, WithForce(), WithZeroFill()); !errors.As(err, &fe) || len(sink.b) != 0 {
			t.Fatalf("%s: %v, %d bytes written", name, err, len(sink.b))
		}
	}
	// The image's ranges inside the RAM (holes elsewhere are fine).
	ram := []Range{{Start: 0, End: 44 << 10}, {Start: 48 << 10, End: 96 << 10}}
	expectRestored(t, src, restore(t, &memImage{b: img}, WithMachineRAM(ram)))
}

// The per-chunk check behind Open's: an extent outside the machine's RAM
// is refused before its pages are written, should a range check ever miss.
func TestExtentOutsideRAMRefused(t *testing.T) {
	img, _, _ := smallImage(t)
	r, _ := Open(&memImage{b: img})
	r.ram = []Range{{Start: 0, End: 40 << 10}, {Start: 48 << 10, End: 64 << 10}, {Start: 72 << 10, End: 76 << 10}}
	sink := &sparseMem{}
	_, err := r.Restore(context.Background(), sink, WithThreads(1))
	if err == nil || !strings.Contains(err.Error(), "is not RAM of this machine") {
		t.Fatalf("got %v", err)
	}
	for i := range sink.b {
		if i >= 76<<10 && sink.b[i] != 0 {
			t.Fatalf("wrote %#x outside the RAM", i)
		}
	}
}

// tornFile tears writes to a stored image the way tornImage does, on a
// real target's file.
type tornFile struct {
	storage.Image
	budget int
	out    bool
}

func (f *tornFile) WriteAt(p []byte, off int64) (int, error) {
	if f.out {
		return 0, errPowerLost
	}
	if len(p) <= f.budget {
		f.budget -= len(p)
		return f.Image.WriteAt(p, off)
	}
	f.out = true
	f.Image.WriteAt(p[:f.budget], off)
	return f.budget, errPowerLost
}

func (f *tornFile) Sync() error {
	if f.out {
		return errPowerLost
	}
	return f.Image.Sync()
}

// The same tear on a file target, through the storage layer resume and
// the restore kernel use: marking the image restoring is cut after every
// byte; reopened from the target it is committed or restoring, never
// corrupt, and verifies.
func TestTornCommitWriteOnFileTarget(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	tg, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mem := testMemory(9, 128<<10)
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 128 << 10}})
	if _, err := WriteTarget(context.Background(), tg, src, Metadata{KernelRelease: "6.1.0-test"}, WithChunkSize(16<<10)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, storage.DefaultName)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for budget := 0; budget <= 2*commitLen; budget++ {
		if err := os.WriteFile(path, orig, 0o600); err != nil {
			t.Fatal(err)
		}
		img, err := tg.Open(true)
		if err != nil {
			t.Fatal(err)
		}
		err = MarkRestoring(&tornFile{Image: img, budget: budget})
		img.Close()
		if budget < 2*commitLen && !errors.Is(err, errPowerLost) || budget == 2*commitLen && err != nil {
			t.Fatalf("budget %d: %v", budget, err)
		}
		r, err := OpenTarget(tg)
		if err != nil {
			t.Fatalf("budget %d: %v", budget, err)
		}
		st := r.Status()
		if st != nil && st != ErrRestoreStarted || budget < commitLen && st != nil || budget == 2*commitLen && st != ErrRestoreStarted {
			t.Fatalf("budget %d: status %v", budget, st)
		}
		if _, err := r.Verify(context.Background(), WithForce()); err != nil {
			t.Fatalf("budget %d: verify: %v", budget, err)
		}
		r.Close()
	}
}
