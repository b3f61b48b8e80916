package image

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// Discarded pages are left out like excluded ones, and a restore with zero
// fill leaves them as the sink had them; every other page is restored or
// zeroed as before.
func TestDiscard(t *testing.T) {
	mem := testMemory(22, 2<<20)
	ranges := []Range{{Start: 0, End: 900 << 10}, {Start: 1 << 20, End: 2 << 20}}
	discard := []Range{{Start: 0x3000, End: 0x5000}, {Start: 0x10000, End: 0x30000}, {Start: 0x80000, End: 0xe1000}, {Start: 1 << 20, End: (1 << 20) + 0x40000}, {Start: 0x1ff000, End: 0x200000}}
	src := RangeSource(bytes.NewReader(mem), ranges)
	for _, chunk := range []int{64 << 10, 2 << 20} {
		img, _ := writeImage(t, src, WithChunkSize(chunk), WithDiscard(discard), WithThreads(3))
		r, err := Open(img)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Metadata().Discarded; len(got) != len(discard) || got[2] != discard[2] {
			t.Fatalf("metadata lists %v, want %v", got, discard)
		}
		const garbage = 0xee
		sink := &sparseMem{b: bytes.Repeat([]byte{garbage}, 2<<20)}
		st, err := r.Restore(context.Background(), sink, WithZeroFill())
		if err != nil {
			t.Fatal(err)
		}
		if st.Discarded != totalSize(discard) {
			t.Errorf("stats: %d bytes discarded, want %d", st.Discarded, totalSize(discard))
		}
		want := bytes.Clone(mem)
		for _, d := range discard {
			for i := d.Start; i < d.End; i++ {
				want[i] = garbage
			}
		}
		for _, rg := range ranges {
			if !bytes.Equal(sink.b[rg.Start:rg.End], want[rg.Start:rg.End]) {
				t.Fatalf("chunk %d: range %v differs after restore", chunk, rg)
			}
		}
		// Verify and the offline restore are not affected.
		if _, err := r.Verify(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	// WithExclude after WithDiscard: zeroed again, nothing listed.
	img, _ := writeImage(t, src, WithDiscard(discard), WithExclude(discard))
	if r, _ := Open(img); len(r.Metadata().Discarded) != 0 {
		t.Fatal("WithExclude still listed the ranges as discarded")
	}
}

func TestPageRangesJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rs PageRanges
	at := uint64(0)
	for range 1000 {
		at += uint64(rng.IntN(50)) * 512
		n := uint64(1+rng.IntN(5000)) * 4096
		rs = append(rs, Range{Start: at, End: at + n})
		at += n
	}
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	var back PageRanges
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rs) {
		t.Fatalf("%d ranges back, want %d", len(back), len(rs))
	}
	for i := range rs {
		if back[i] != rs[i] {
			t.Fatalf("range %d: %v, want %v", i, back[i], rs[i])
		}
	}
	if len(b) > 8*len(rs) {
		t.Errorf("%d bytes for %d ranges: not compact", len(b), len(rs))
	}
	for _, bad := range []string{`"!!"`, `"gA=="`, `"AAA="`, `5`} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// A machine whose free memory is in too many pieces lists its largest
// ones, within the metadata budget.
func TestDiscardListBounded(t *testing.T) {
	var rs []Range
	for i := range uint64(200000) {
		size := uint64(1+i%7) * 4096
		rs = append(rs, Range{Start: i << 20, End: i<<20 + size})
	}
	got := discardList(rs)
	b, _ := got.MarshalJSON()
	if len(b) > maxDiscardBytes {
		t.Fatalf("%d bytes listed, over %d", len(b), maxDiscardBytes)
	}
	for i, r := range got {
		if r.Size() < 5*4096 {
			t.Fatalf("range %d of %d bytes kept while larger ones were dropped", i, r.Size())
		}
		if i > 0 && r.Start < got[i-1].End {
			t.Fatal("kept ranges are not sorted")
		}
	}
}

func TestSubtractRanges(t *testing.T) {
	rg := func(s, e uint64) Range { return Range{Start: s, End: e} }
	skip := []Range{{Start: 10, End: 20}, {Start: 30, End: 40}, {Start: 50, End: 60}}
	for _, tc := range []struct {
		start, end uint64
		want       []Range
	}{
		{0, 100, []Range{rg(0, 10), rg(20, 30), rg(40, 50), rg(60, 100)}},
		{15, 35, []Range{rg(20, 30)}},
		{12, 18, nil},
		{20, 30, []Range{rg(20, 30)}},
		{55, 70, []Range{rg(60, 70)}},
	} {
		var got []Range
		subtractRanges(tc.start, tc.end, skip, func(s, e uint64) error { got = append(got, rg(s, e)); return nil })
		if len(got) != len(tc.want) {
			t.Fatalf("[%d,%d): %v, want %v", tc.start, tc.end, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("[%d,%d): %v, want %v", tc.start, tc.end, got, tc.want)
			}
		}
	}
}
