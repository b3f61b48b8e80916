package image

import (
	"bytes"
	"testing"
)

func TestParseLevel(t *testing.T) {
	for _, name := range []string{"fastest", "fast", "default", "best"} {
		l, err := ParseLevel(name)
		if err != nil || l.String() != name {
			t.Errorf("ParseLevel(%q) = %v, %v", name, l, err)
		}
	}
	if _, err := ParseLevel("ultra"); err == nil || err.Error() != `unknown compression level "ultra": use fastest, fast, default or best` {
		t.Errorf("ParseLevel(ultra) error = %v", err)
	}
}

// LevelFastest trades size for speed: its output must differ from "fast"
// (no Huffman literals) and still round trip (TestRoundTrip).
func TestLevelFastestSkipsHuffman(t *testing.T) {
	mem := testMemory(7, 1<<20)
	size := func(l Level) int {
		img, _ := writeImage(t, RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 1 << 20}}), WithLevel(l), WithCompression(Zstd))
		return len(img.b)
	}
	if fast, fastest := size(LevelFast), size(LevelFastest); fastest <= fast {
		t.Errorf("fastest image %d bytes, fast %d: fastest should skip entropy coding of literals", fastest, fast)
	}
}

func TestThreadsFor(t *testing.T) {
	for _, tc := range []struct {
		want  int
		avail uint64
		got   int
	}{
		{8, 1 << 30, MaxThreads},         // plenty: the cap
		{2, 1 << 30, 2},                  // as asked
		{4, processReserve + 2*9<<20, 2}, // two workers' worth
		{4, 10 << 20, 1},                 // never none
		{4, processReserve + 1<<20, 1},   // less than one worker: still one
	} {
		if got := ThreadsFor(tc.want, tc.avail); got != tc.got {
			t.Errorf("ThreadsFor(%d, %d MiB) = %d, want %d", tc.want, tc.avail>>20, got, tc.got)
		}
	}
}
