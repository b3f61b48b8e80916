package image

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// withAlternatingCodecs makes an Auto image code even slots with zstd and
// odd ones with S2, so that both codecs appear in a known place.
var withAlternatingCodecs WriterOption = writerOption(func(o *writerOptions) error {
	o.pick = func(slot int) Compression {
		if slot%2 == 0 {
			return Zstd
		}
		return S2
	}
	return nil
})

// slowImage is storage that takes delay per write: a target the CPUs
// outrun, as a USB stick or a busy NFS server is for any of them.
type slowImage struct {
	memImage
	delay time.Duration
}

func (s *slowImage) WriteAt(p []byte, off int64) (int, error) {
	time.Sleep(s.delay)
	return s.memImage.WriteAt(p, off)
}

// Auto codes with S2 while the storage keeps up and turns to zstd once
// the workers spend their time waiting for the storage; either way the
// image restores the same memory.
func TestAutoFollowsTheBottleneck(t *testing.T) {
	mem := testMemory(7, 32<<20)
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 32 << 20}})
	opts := []WriterOption{WithCompression(Auto), WithThreads(2), WithChunkSize(256 << 10)}

	// How much of the in-memory write counts as waiting depends on how the
	// scheduler shares two cores between the workers and the in-order
	// writer (half the chunks zstd on one 2-core machine, a quarter on
	// another), so this half asserts only that S2 is used when nothing
	// waits on storage; the slow half below shows the turn to zstd.
	fast, st := writeImage(t, src, opts...)
	t.Logf("in-memory storage: %s", st.CodecMix())
	if st.S2Chunks < st.Chunks/4 {
		t.Errorf("storage that keeps up got %s, want at least a quarter s2", st.CodecMix())
	}
	expectRestored(t, src, restore(t, fast))

	slow := &slowImage{delay: 10 * time.Millisecond}
	st, err := Write(context.Background(), slow, src, Metadata{}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("storage taking 10 ms a write: %s", st.CodecMix())
	// The workers learn within the first few writes (idleHorizon).
	if z := st.Chunks - st.S2Chunks; z < st.Chunks*3/4 {
		t.Errorf("slow storage got %s, want mostly zstd", st.CodecMix())
	}
	expectRestored(t, src, restore(t, &slow.memImage))
}

// An Auto record must name zstd or S2; a fixed-codec record must name
// none, so its reserved bytes stay reserved.
func TestChunkCodecTag(t *testing.T) {
	auto, _, _ := smallImage(t, WithCompression(Auto), withAlternatingCodecs)
	plain, _, _ := smallImage(t, WithCompression(Zstd))
	for _, tc := range []struct {
		name string
		img  []byte
		tag  uint32
		want string
	}{
		{"auto, no codec", auto, 0, "chunk codec 0 is neither zstd (1) nor s2 (2)"},
		{"auto, codec 3", auto, 3, "chunk codec 3 is neither"},
		{"zstd image, tagged", plain, 1, "reserved field is not zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Open(&memImage{b: tc.img})
			if err != nil {
				t.Fatal(err)
			}
			e := entriesOf(t, r)[0]
			rec := bytes.Clone(tc.img[e.Offset : e.Offset+uint64(e.Length)])
			le.PutUint32(rec[24:], tc.tag)
			_, err = parseChunk(withSum(rec), r.h, nil, true)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("parseChunk = %v, want %q", err, tc.want)
			}
		})
	}
	// Swapping a tag between codecs is caught by decoding or the page sum
	// (a chunk stored as it is has no codec to swap).
	r, err := Open(&memImage{b: auto})
	if err != nil {
		t.Fatal(err)
	}
	swapped := 0
	for i, e := range entriesOf(t, r) {
		rec := bytes.Clone(auto[e.Offset : e.Offset+uint64(e.Length)])
		if c, err := parseChunk(rec, r.h, nil, true); err != nil || len(c.Payload) == int(c.RawLen) {
			continue
		}
		swapped++
		le.PutUint32(rec[24:], 3-le.Uint32(rec[24:]))
		rec = withSum(rec)
		e.CRC = le.Uint32(rec[len(rec)-crcLen:])
		if _, _, err := r.checkChunk(rec, e, &decoders{chunkSize: int(r.h.ChunkSize)}, make([]byte, 0, r.h.ChunkSize), nil, true, nil); err == nil {
			t.Fatalf("chunk %d decoded with the other codec", i)
		}
	}
	if swapped == 0 {
		t.Fatal("no coded chunk to swap")
	}
}

// codecFor is the rule itself: a worker that waited at least zstdIdle of
// its recent time codes with zstd, a busy one with S2; a fixed codec is
// never overridden.
func TestCodecForFollowsIdleShare(t *testing.T) {
	auto := &pipeline{o: writerOptions{compression: Auto}}
	for _, c := range []struct {
		idle float64
		want Compression
	}{{0, S2}, {zstdIdle - 0.01, S2}, {zstdIdle, Zstd}, {1, Zstd}} {
		if got := auto.codecFor(0, c.idle); got != c.want {
			t.Errorf("auto, idle %.2f: got %v, want %v", c.idle, got, c.want)
		}
	}
	for _, fixed := range []Compression{Zstd, S2} {
		p := &pipeline{o: writerOptions{compression: fixed}}
		for _, idle := range []float64{0, 1} {
			if got := p.codecFor(0, idle); got != fixed {
				t.Errorf("fixed %v, idle %.0f: got %v", fixed, idle, got)
			}
		}
	}
}

// idleMeter moves toward 1 while a worker waits and toward 0 while it
// works, weighted by how long each lasted.
func TestIdleMeterWeighsTime(t *testing.T) {
	m := idleMeter{mark: time.Now().Add(-10 * idleHorizon)}
	m.add(true)
	if m.share < 0.99 {
		t.Fatalf("after waiting 10 horizons: share %.3f, want about 1", m.share)
	}
	m.mark = time.Now().Add(-10 * idleHorizon)
	m.add(false)
	if m.share > 0.01 {
		t.Fatalf("after working 10 horizons: share %.3f, want about 0", m.share)
	}
}
