package jump

import "testing"

func TestImageValidate(t *testing.T) {
	page := make([]byte, PageSize)
	ok := Image{Entry: 0x1000, Segments: []Segment{NewSegment(page, 0x1000)}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, im := range map[string]Image{
		"no segments":    {Entry: 0x1000},
		"unaligned":      {Entry: 0x1001, Segments: []Segment{{Buf: page, Mem: 0x1001, MemSize: PageSize}}},
		"overlap":        {Entry: 0x1000, Segments: []Segment{NewSegment(page, 0x1000), {Buf: page, Mem: 0, MemSize: 2 * PageSize}}},
		"entry outside":  {Entry: 0x9000, Segments: []Segment{NewSegment(page, 0x1000)}},
		"buf > mem size": {Entry: 0x1000, Segments: []Segment{{Buf: make([]byte, 2*PageSize), Mem: 0x1000, MemSize: PageSize}}},
	} {
		if err := im.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
