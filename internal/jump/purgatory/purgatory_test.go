package purgatory

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/kjump/kjump/internal/jump/purgatory/asm"
)

// TestGeneratedBytesMatchSource re-assembles purgatory.S and compares with
// the committed purgatory_gen.go, so the bytes can never drift from the
// reviewed source.
func TestGeneratedBytesMatchSource(t *testing.T) {
	blobs, err := asm.Assemble("purgatory.S", []string{".purgatory", ".jumpback"})
	if err != nil {
		t.Fatalf("assembling purgatory.S: %v", err)
	}
	if !bytes.Equal(blobs[0].Code, purgatoryCode) || !bytes.Equal(blobs[1].Code, jumpBackCode) {
		t.Fatal("purgatory_gen.go is stale: run go generate ./internal/jump/purgatory")
	}
	want := map[string]int{"p_handoff": offPHandoff, "p_backup_src": offPBackupSrc, "p_backup_dst": offPBackupDst,
		"p_backup_len": offPBackupLen, "p_pml4": offPPml4, "p_pml5": offPPml5, "p_boot_params": offPBootParams,
		"p_kernel_entry": offPKernelEntry, "j_entry": offJEntry, "j_gdt_desc": offJGdtDesc}
	for _, b := range blobs {
		for _, s := range b.Symbols {
			if w, ok := want[s.Name]; ok && uint64(w) != s.Offset {
				t.Errorf("%s at %#x in source, %#x in generated constants", s.Name, s.Offset, w)
			}
		}
	}
	// The generator itself must reproduce the file byte for byte.
	out := filepath.Join(t.TempDir(), "purgatory_gen.out")
	if err := runGen(out); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(out)
	committed, _ := os.ReadFile("purgatory_gen.go")
	if !bytes.Equal(got, committed) {
		t.Fatal("go generate output differs from purgatory_gen.go: run go generate ./internal/jump/purgatory")
	}
}

func TestBuildPatchesEveryParameter(t *testing.T) {
	p := Params{Handoff: 0x37f00000, BackupSrc: 0, BackupDst: 0x37e00000, BackupLen: 0xa0000,
		PML4: 0x37d00000, PML5: 0x37d01000, BootParams: 0x37c00000, KernelEntry: 0x30000200}
	code, err := Build(p)
	if err != nil {
		t.Fatal(err)
	}
	get := func(off int) uint64 { return binary.LittleEndian.Uint64(code[off:]) }
	for name, c := range map[string]struct {
		off  int
		want uint64
	}{"handoff": {offPHandoff, p.Handoff}, "backup dst": {offPBackupDst, p.BackupDst}, "backup len": {offPBackupLen, p.BackupLen},
		"pml4": {offPPml4, p.PML4}, "pml5": {offPPml5, p.PML5}, "boot params": {offPBootParams, p.BootParams},
		"kernel entry": {offPKernelEntry, p.KernelEntry}} {
		if got := get(c.off); got != c.want {
			t.Errorf("%s: got %#x want %#x", name, got, c.want)
		}
	}
	if code[0] != 0xeb { // jmp rel8 over the parameter block
		t.Errorf("purgatory does not start with a short jmp: %#x", code[0])
	}
	if bytes.Equal(purgatoryCode[offPHandoff:offPHandoff+8], code[offPHandoff:offPHandoff+8]) {
		t.Error("Build modified the shared template instead of a copy")
	}
	if _, err := Build(Params{Handoff: 1, PML4: 1, PML5: 1, BootParams: 1, KernelEntry: 1, BackupLen: 7}); err == nil {
		t.Error("odd backup length accepted")
	}
	if _, err := Build(Params{}); err == nil {
		t.Error("zero addresses accepted")
	}
}

func TestJumpBackStub(t *testing.T) {
	stub := JumpBackStub(0x3fa630fb, GDTDesc{Limit: 0x7f, Base: 0xfffffe0000001000})
	if got := binary.LittleEndian.Uint64(stub[offJEntry:]); got != 0x3fa630fb {
		t.Errorf("entry %#x", got)
	}
	if got := binary.LittleEndian.Uint16(stub[offJGdtDesc:]); got != 0x7f {
		t.Errorf("limit %#x", got)
	}
	if got := binary.LittleEndian.Uint64(stub[offJGdtDesc+2:]); got != 0xfffffe0000001000 {
		t.Errorf("base %#x", got)
	}
	if len(stub) > 4096 {
		t.Errorf("stub is %d bytes, must fit its page", len(stub))
	}
}
