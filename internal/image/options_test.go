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
		img, _ := writeImage(t, RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 1 << 20}}), WithLevel(l))
		return len(img.b)
	}
	if fast, fastest := size(LevelFast), size(LevelFastest); fastest <= fast {
		t.Errorf("fastest image %d bytes, fast %d: fastest should skip entropy coding of literals", fastest, fast)
	}
}
