package handoff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/phys"
)

// ram is physical memory for the area tests: a byte slice at base.
type ram struct {
	base uint64
	b    []byte
}

func (m *ram) ReadAt(p []byte, off int64) (int, error) {
	if uint64(off) < m.base || uint64(off)-m.base+uint64(len(p)) > uint64(len(m.b)) {
		return 0, fmt.Errorf("read outside RAM at %#x", off)
	}
	return copy(p, m.b[uint64(off)-m.base:]), nil
}

func (m *ram) WriteAt(p []byte, off int64) (int, error) {
	if uint64(off) < m.base || uint64(off)-m.base+uint64(len(p)) > uint64(len(m.b)) {
		return 0, fmt.Errorf("write outside RAM at %#x", off)
	}
	return copy(m.b[uint64(off)-m.base:], p), nil
}

// The three actors' round trip: the original writes, the helper reads and
// reports, the original reads the report and wipes the area.
func TestAreaRoundTrip(t *testing.T) {
	mem := &ram{base: 0x37ff8000, b: make([]byte, Size)}
	a := Area{Mem: mem, Addr: 0x37ff8000}
	in := Instructions{Mode: Checkpoint, Convention: jump.ConventionReworked, Region: phys.Range{Start: 0x30000000, End: 0x38000000},
		Level: image.LevelBest, Compression: image.S2}
	if err := a.Write(in); err != nil {
		t.Fatal(err)
	}
	h, err := a.Read()
	if err != nil {
		t.Fatal(err)
	}
	got := h.Instructions
	if got.Mode != Checkpoint || got.Convention != jump.ConventionReworked || got.Region != in.Region || got.Level != image.LevelBest || got.Compression != image.S2 || h.Result != nil {
		t.Errorf("read back %+v", got)
	}
	if err := a.Report(Result{OK: true, Mode: Checkpoint, RAMBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	if h, err = a.Read(); err != nil || h.Result == nil || !h.Result.OK || h.Instructions.Mode != Checkpoint {
		t.Errorf("report: %+v, %v", h, err)
	}
	if err := a.Wipe(); err != nil || !bytes.Equal(mem.b, make([]byte, Size)) {
		t.Errorf("wipe left %v", err)
	}
	if _, err := a.Read(); err == nil {
		t.Error("a wiped area decoded")
	}
}

// Tokens on the wire are stable words, and an unknown one is refused, not
// replaced by a default.
func TestInstructionTokens(t *testing.T) {
	b, err := Encode(Instructions{Mode: Now, Convention: jump.ConventionClassic, Level: image.LevelFast, Compression: image.Auto})
	if err != nil {
		t.Fatal(err)
	}
	js := string(b[instrOff:])
	for _, want := range []string{`"mode":"now"`, `"convention":"classic"`, `"level":"fast"`, `"compression":"auto"`} {
		if !strings.Contains(js, want) {
			t.Errorf("%s lacks %s", strings.TrimRight(js, "\x00"), want)
		}
	}
	for _, bad := range []string{`{"convention":"classic (up to 6.13)"}`, `{"level":"fastish"}`, `{"compression":"lz4"}`} {
		var in Instructions
		if err := json.Unmarshal([]byte(bad), &in); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestRegionText(t *testing.T) {
	r := phys.Range{Start: 0x30000000, End: 0x38000000}
	if s := RegionText(r); s != "0x30000000-0x38000000" {
		t.Errorf("RegionText = %q", s)
	}
	if got, err := ParseRegion(RegionText(r)); err != nil || got != r {
		t.Errorf("ParseRegion = %v, %v", got, err)
	}
	for _, bad := range []string{"", "0x30000000", "x-y", "0x38000000-0x30000000"} {
		if _, err := ParseRegion(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// A version mismatch names the fix.
func TestVersionMismatchNamesFix(t *testing.T) {
	b, _ := Encode(Instructions{Mode: Probe})
	b[8] = version + 1
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "hibernate prepare") {
		t.Errorf("got %v", err)
	}
}
