package helper

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/phys"
)

// memImage is an image held in memory.
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

// countingSink counts the bytes a restore writes.
type countingSink struct{ n int }

func (s *countingSink) WriteAt(p []byte, off int64) (int, error) { s.n += len(p); return len(p), nil }

// testImage writes an image of 1 MiB of RAM at [1 MiB, 2 MiB) and returns
// it with its digest.
func testImage(t *testing.T, host string) (*memImage, string) {
	t.Helper()
	mem := make([]byte, 2<<20)
	rand.New(rand.NewSource(1)).Read(mem[1<<20:])
	src := image.RangeSource(bytes.NewReader(mem), []image.Range{{Start: 1 << 20, End: 2 << 20}})
	img := &memImage{}
	if _, err := image.Write(context.Background(), img, src, image.Metadata{KernelRelease: "6.1.0", Hostname: host}, image.WithChunkSize(64<<10)); err != nil {
		t.Fatal(err)
	}
	r, err := image.Open(img)
	if err != nil || r.Status() != nil {
		t.Fatal(err, r.Status())
	}
	return img, r.Digest()
}

// The restore kernel opens only the image resume checked, and writes only
// the original's RAM less the reserved region: an image swapped since
// (another digest), an image over the reserved region or a hole of the RAM
// map are refused before a byte is written.
func TestRestoreOptionsRefuseBeforeWriting(t *testing.T) {
	img, digest := testImage(t, "a")
	other, _ := testImage(t, "b") // another image on the same target
	ram := phys.Ranges{{Start: 0, End: 0x9f000}, {Start: 1 << 20, End: 64 << 20}}
	good := handoff.Instructions{Mode: handoff.Restore, ImageDigest: digest, RAM: ram, Region: phys.Range{Start: 32 << 20, End: 48 << 20}}
	cases := []struct {
		name string
		img  *memImage
		in   func(handoff.Instructions) handoff.Instructions
		want string
	}{
		{"swapped image", other, func(in handoff.Instructions) handoff.Instructions { return in }, "changed after resume checked it"},
		{"reserved region over the image's RAM", img, func(in handoff.Instructions) handoff.Instructions {
			in.Region = phys.Range{Start: 1536 << 10, End: 1600 << 10}
			return in
		}, "not RAM on this machine"},
		{"hole under the image's RAM", img, func(in handoff.Instructions) handoff.Instructions {
			in.RAM = phys.Ranges{{Start: 0, End: 0x9f000}, {Start: 1 << 20, End: 1792 << 10}}
			return in
		}, "not RAM on this machine"},
	}
	for _, tc := range cases {
		opts, err := restoreOptions(tc.in(good))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		r, err := image.Open(tc.img, opts...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		sink := &countingSink{}
		_, err = r.Restore(context.Background(), sink, image.WithForce(), image.WithZeroFill())
		if err == nil || !strings.Contains(err.Error(), tc.want) || sink.n != 0 {
			t.Fatalf("%s: %v, %d bytes written; want %q and nothing written", tc.name, err, sink.n, tc.want)
		}
		if err := image.Usable(r.Status(), true); err == nil {
			t.Fatalf("%s: status %v is usable", tc.name, r.Status())
		}
	}
	// The image resume checked, in the RAM: restored.
	opts, err := restoreOptions(good)
	if err != nil {
		t.Fatal(err)
	}
	r, err := image.Open(img, opts...)
	if err != nil || r.Status() != nil {
		t.Fatal(err, r.Status())
	}
	sink := &countingSink{}
	if _, err := r.Restore(context.Background(), sink, image.WithForce(), image.WithZeroFill()); err != nil || sink.n == 0 {
		t.Fatalf("restore: %v, %d bytes", err, sink.n)
	}
	// Marking it spent afterwards also checks it is the same image.
	if err := image.Invalidate(other, opts...); err == nil {
		t.Fatal("a swapped image was marked spent")
	}
	if err := image.Invalidate(img, opts...); err != nil {
		t.Fatal(err)
	}
	if r, _ := image.Open(img); !errors.Is(r.Status(), image.ErrInvalidated) || errors.Is(r.Status(), image.ErrRestoreStarted) {
		t.Fatalf("after the restore: %v", r.Status())
	}
	// An older resume that sends no digest or RAM map is refused.
	for _, in := range []handoff.Instructions{{Mode: handoff.Restore, RAM: ram}, {Mode: handoff.Restore, ImageDigest: digest}} {
		if _, err := restoreOptions(in); err == nil || !strings.Contains(err.Error(), "hibernate prepare") {
			t.Fatalf("%+v: %v", in, err)
		}
	}
}
