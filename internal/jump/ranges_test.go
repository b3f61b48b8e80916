package jump

import (
	"reflect"
	"testing"
)

func TestRanges(t *testing.T) {
	rs := Ranges{{Start: 0x3000, End: 0x5000}, {Start: 0x1000, End: 0x2000}, {Start: 0x2000, End: 0x3000}, {Start: 0x9000, End: 0x9000}}.Normalize()
	if want := (Ranges{{Start: 0x1000, End: 0x5000}}); !reflect.DeepEqual(rs, want) {
		t.Errorf("Normalize = %v", rs)
	}
	if got := rs.Subtract(Range{Start: 0x2000, End: 0x3000}); !reflect.DeepEqual(got, Ranges{{Start: 0x1000, End: 0x2000}, {Start: 0x3000, End: 0x5000}}) {
		t.Errorf("Subtract middle = %v", got)
	}
	if got := rs.Subtract(Range{Start: 0, End: 0x10000}); len(got) != 0 {
		t.Errorf("Subtract all = %v", got)
	}
	if got := (Range{Start: 0x1001, End: 0x3fff}).PageAligned(); got != (Range{Start: 0x2000, End: 0x3000}) {
		t.Errorf("PageAligned = %v", got)
	}
	if got := (Range{Start: 0x1001, End: 0x1fff}).PageAligned(); !got.Empty() {
		t.Errorf("PageAligned of a partial page = %v", got)
	}
}
