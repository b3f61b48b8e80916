package handoff

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kjump/kjump/internal/phys"
)

func TestHandoffRoundTrip(t *testing.T) {
	in := Instructions{Mode: "checkpoint", SavedContext: 0x3d731ba0, Backup: 0x37e00000, JumpStub: 0x37ff7000,
		Release: "6.1.0", Issued: time.Unix(1700000000, 0).UTC(), Extra: map[string]string{"k": "v"}}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint64(b[entryField:], 0x3fa630fb) // as the purgatory does
	h, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Entry != 0x3fa630fb || h.Result != nil || h.Instructions.Mode != "checkpoint" || h.Instructions.Extra["k"] != "v" || !h.Instructions.Issued.Equal(in.Issued) {
		t.Errorf("decoded %+v", h)
	}
	if err := SetResult(b, Result{OK: true, Mode: "checkpoint", RAMBytes: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	h, err = Decode(b)
	if err != nil || h.Result == nil || !h.Result.OK || h.Result.RAMBytes != 1<<30 {
		t.Errorf("result: %+v, %v", h.Result, err)
	}
}

func TestHandoffRejects(t *testing.T) {
	good, _ := Encode(Instructions{Mode: "probe"})
	cases := map[string]func([]byte){
		"no magic":      func(b []byte) { b[0] = 'X' },
		"version":       func(b []byte) { binary.LittleEndian.PutUint32(b[8:], 99) },
		"instr length":  func(b []byte) { binary.LittleEndian.PutUint32(b[instrLenField:], 1<<20) },
		"result length": func(b []byte) { binary.LittleEndian.PutUint32(b[resultLenField:], 1<<20) },
		"broken json":   func(b []byte) { b[instrOff] = '[' },
		"broken results": func(b []byte) {
			binary.LittleEndian.PutUint32(b[resultLenField:], 3)
			copy(b[resultOff:], "{{{")
		},
	}
	for name, mut := range cases {
		b := append([]byte(nil), good...)
		mut(b)
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Encode(Instructions{Mode: Mode(strings.Repeat("x", Size))}); err == nil {
		t.Error("oversized instructions accepted")
	}
	if _, err := Decode(good[:100]); err == nil {
		t.Error("short area accepted")
	}
}

// A restore's instructions carry what the restore kernel checks before it
// writes a page: the image digest and the original's RAM.
func TestRestoreInstructionsRoundTrip(t *testing.T) {
	in := Instructions{Mode: Restore, ImageID: "ab12", ImageDigest: strings.Repeat("5e", 32),
		RAM: phys.Ranges{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x30000000}, {Start: 0x38000000, End: 0x3ffe0000}}}
	b, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Decode(b)
	if err != nil || h.Instructions.ImageDigest != in.ImageDigest || !slices.Equal(h.Instructions.RAM, in.RAM) {
		t.Fatalf("decoded %+v, %v", h.Instructions, err)
	}
	// A helper initramfs from before these fields speaks version 2.
	binary.LittleEndian.PutUint32(b[8:], 2)
	if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), "hibernate prepare") {
		t.Fatalf("version 2 area: %v", err)
	}
}
