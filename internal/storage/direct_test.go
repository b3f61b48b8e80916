package storage

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
)

// The direct writer leaves on the device exactly what plain writes would:
// random appends (across stage boundaries, unaligned), flushes and
// rewrites behind the append point, against a model in memory.
func TestDirectWriterMatchesModel(t *testing.T) {
	dev := loopDevice(t, 48<<20, "")
	for seed := range uint64(4) {
		rng := rand.New(rand.NewPCG(seed, 1))
		d, err := openDirect(dev, 48<<20)
		if err != nil {
			t.Fatalf("O_DIRECT open of %s: %v", dev, err)
		}
		start := int64(SignatureSize) + int64(rng.IntN(3))*1000 // aligned or not
		model := []byte{}
		for len(model) < 30<<20 {
			switch k := rng.IntN(10); {
			case k < 7:
				n := rng.IntN(3 << 20)
				if k == 0 {
					n = rng.IntN(100)
				}
				p := make([]byte, n)
				for i := range p {
					p[i] = byte(rng.Uint32())
				}
				if _, err := d.WriteAt(p, start+int64(len(model))); err != nil {
					t.Fatal(err)
				}
				model = append(model, p...)
			case k < 9:
				if len(model) == 0 {
					continue
				}
				off := rng.IntN(len(model))
				if rng.IntN(2) == 0 { // near the end: the block a flush keeps staged
					off = max(len(model)-1-rng.IntN(6000), 0)
				}
				n := min(rng.IntN(5000), len(model)-off)
				p := bytes.Repeat([]byte{byte(rng.Uint32())}, n)
				if _, err := d.WriteAt(p, start+int64(off)); err != nil {
					t.Fatal(err)
				}
				copy(model[off:], p)
			default:
				if err := d.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := d.WriteAt([]byte{1}, start+int64(len(model))+1); err == nil {
			t.Fatal("a write past the append point was accepted")
		}
		if err := d.Sync(); err != nil {
			t.Fatal(err)
		}
		d.Close()
		f, err := os.Open(dev)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(model))
		if _, err := f.ReadAt(got, start); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if !bytes.Equal(got, model) {
			i := 0
			for got[i] == model[i] {
				i++
			}
			t.Fatalf("seed %d: device differs from the model at image byte %d of %d", seed, i, len(model))
		}
	}
}

// An image written to a whole device goes past the page cache.
func TestBlockWriterUsesDirectIO(t *testing.T) {
	dev := loopDevice(t, 4<<20, "")
	tg, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	w, err := tg.Create(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	if bw := w.(*blockWriter); bw.direct == nil {
		t.Fatal("block writer on a loop device is not using O_DIRECT")
	}
}

// directReader returns exactly what plain reads do, at any offset and
// length, up to the device's end.
func TestDirectReaderMatchesBuffered(t *testing.T) {
	dev := loopDevice(t, 8<<20, "")
	want := make([]byte, 8<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(dev, want, 0); err != nil {
		t.Fatal(err)
	}
	d, err := openDirectReader(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for range 300 {
		off := rng.Int64N(8 << 20)
		p := make([]byte, rng.IntN(3<<20))
		n, err := d.ReadAt(p, off)
		end := min(off+int64(len(p)), 8<<20)
		if n != int(end-off) || (end-off < int64(len(p))) != (err != nil) {
			t.Fatalf("read of %d at %d: %d bytes, %v", len(p), off, n, err)
		}
		if !bytes.Equal(p[:n], want[off:end]) {
			t.Fatalf("read of %d at %d differs", len(p), off)
		}
	}
}

// ReadSpan returns what ReadAt does, without or with O_DIRECT.
func TestReadSpanMatchesReadAt(t *testing.T) {
	dev := loopDevice(t, 8<<20, "")
	tg, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 6<<20)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	writeAndCommit(t, tg, data)
	img, err := tg.Open(false)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	bi := img.(*blockImage)
	if bi.direct == nil {
		t.Fatal("image on a loop device is not read with O_DIRECT")
	}
	buf := bi.SpanBuffer(3 << 20)
	for range 200 {
		n := rng.IntN(3 << 20)
		off := rng.Int64N(int64(len(data) - n))
		got, err := bi.ReadSpan(buf, off, n)
		if err != nil || !bytes.Equal(got, data[off:off+int64(n)]) {
			t.Fatalf("span of %d at %d: %v", n, off, err)
		}
	}
	if _, err := bi.ReadSpan(buf, int64(len(data))-10, 11); err == nil {
		t.Fatal("span past the image's end accepted")
	}
}
