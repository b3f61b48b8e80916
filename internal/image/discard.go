package image

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
)

// PageRanges is a sorted list of disjoint page-aligned ranges, stored in
// the metadata compactly: base64 of unsigned varints, for each range the
// 512-byte units since the previous range's end and its length in units
// (about 6 bytes a range where JSON objects take 40).
type PageRanges []Range

const rangeUnit = 512 // the smallest page size an image may have

// maxDiscardBytes bounds the encoded list in the header's metadata (1 MiB
// in all): a machine whose free memory is in more pieces records its
// largest ones.
const maxDiscardBytes = 256 << 10

func (p PageRanges) MarshalJSON() ([]byte, error) {
	var b []byte
	var prev uint64
	for _, r := range p {
		b = binary.AppendUvarint(b, (r.Start-prev)/rangeUnit)
		b = binary.AppendUvarint(b, (r.End-r.Start)/rangeUnit)
		prev = r.End
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

func (p *PageRanges) UnmarshalJSON(j []byte) error {
	var s string
	if err := json.Unmarshal(j, &s); err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	var out PageRanges
	var prev uint64
	for len(b) > 0 {
		gap, n := binary.Uvarint(b)
		if n <= 0 {
			return fmt.Errorf("page ranges: bad varint")
		}
		b = b[n:]
		pages, n := binary.Uvarint(b)
		if n <= 0 || pages == 0 || gap > 1<<40 || pages > 1<<40 {
			return fmt.Errorf("page ranges: bad varint or empty range")
		}
		b = b[n:]
		start := prev + gap*rangeUnit
		out = append(out, Range{Start: start, End: start + pages*rangeUnit})
		prev = start + pages*rangeUnit
	}
	*p = out
	return nil
}

// discardList keeps as many of rs (sorted) as fit in maxDiscardBytes,
// preferring the largest: the rest are restored as zeros like other
// excluded pages.
func discardList(rs []Range) PageRanges {
	if len(rs) == 0 {
		return nil
	}
	// Worst case 2 × 10 bytes per range; most take 4-6.
	if enc, _ := PageRanges(rs).MarshalJSON(); len(enc) <= maxDiscardBytes {
		return append(PageRanges(nil), rs...)
	}
	by := append([]Range(nil), rs...)
	sort.Slice(by, func(i, j int) bool { return by[i].Size() > by[j].Size() })
	keep := by[:maxDiscardBytes*3/4/20] // base64 of at most 20 bytes a range
	sort.Slice(keep, func(i, j int) bool { return keep[i].Start < keep[j].Start })
	return PageRanges(keep)
}

// subtractRanges calls fn for each part of [start, end) outside skip
// (sorted, disjoint).
func subtractRanges(start, end uint64, skip []Range, fn func(s, e uint64) error) error {
	i := sort.Search(len(skip), func(i int) bool { return skip[i].End > start })
	for a := start; a < end; {
		if i >= len(skip) || skip[i].Start >= end {
			return fn(a, end)
		}
		if skip[i].Start > a {
			if err := fn(a, skip[i].Start); err != nil {
				return err
			}
		}
		a = max(a, skip[i].End)
		i++
	}
	return nil
}
