package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/storage"
)

// core writes an ELF64 core with one PT_LOAD of mem at physical address
// paddr, the shape of a QEMU dump-guest-memory file.
func core(t *testing.T, mem []byte, paddr uint64) string {
	le := binary.LittleEndian
	b := make([]byte, 64+56)
	copy(b, "\x7fELF\x02\x01\x01")
	le.PutUint16(b[16:], 4)  // ET_CORE
	le.PutUint16(b[18:], 62) // x86-64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[32:], 64)
	le.PutUint16(b[52:], 64)
	le.PutUint16(b[54:], 56)
	le.PutUint16(b[56:], 1)
	ph := b[64:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint64(ph[8:], uint64(len(b)))
	le.PutUint64(ph[24:], paddr)
	le.PutUint64(ph[32:], uint64(len(mem)))
	le.PutUint64(ph[40:], uint64(len(mem)))
	path := filepath.Join(t.TempDir(), "core.elf")
	if err := os.WriteFile(path, append(b, mem...), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImageCreate(t *testing.T) {
	mem := append(bytes.Repeat([]byte("hibernate image create "), 40000), make([]byte, 1<<20)...)
	mem = mem[:len(mem)/4096*4096]
	from := core(t, mem, 0x100000)
	dir := t.TempDir()
	if err := runImage([]string{"create", "--from", from, "--to", dir, "--level", "best", "--threads", "2", "--hostname", "box"}); err != nil {
		t.Fatal(err)
	}
	tg, _ := storage.Open(dir)
	r, err := image.OpenTarget(tg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r.Metadata().Hostname != "box" || r.Ranges()[0] != (image.Range{Start: 0x100000, End: 0x100000 + uint64(len(mem))}) {
		t.Fatalf("metadata %+v ranges %v", r.Metadata(), r.Ranges())
	}

	var ee *cli.ExitError
	for _, args := range [][]string{
		{"create", "--from", from},
		{"create", "--from", from, "--to", dir, "--level", "ultra"},
		{"frobnicate"},
	} {
		if err := runImage(args); !errors.As(err, &ee) || ee.Code != 2 {
			t.Errorf("%v: %v, want usage error", args, err)
		}
	}
	if err := runImage([]string{"create", "--from", dir, "--to", dir}); err == nil {
		t.Error("a directory as core file was accepted")
	}
}

func TestImageCreateEncrypted(t *testing.T) {
	mem := bytes.Repeat([]byte("secret page contents "), 20000)
	mem = mem[:len(mem)/4096*4096]
	from := core(t, mem, 0x100000)
	dir := t.TempDir()
	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("a passphrase\n"), 0o600)
	if err := runImage([]string{"create", "--from", from, "--to", dir, "--passphrase-file", pass}); err != nil {
		t.Fatal(err)
	}
	img, _ := os.ReadFile(filepath.Join(dir, storage.DefaultName))
	if bytes.Contains(img, []byte("secret page contents")) {
		t.Fatal("plaintext in the encrypted image")
	}
	tg, _ := storage.Open(dir)
	r, err := image.OpenTarget(tg, image.WithSecret(image.PassphraseSecret([]byte("a passphrase"))))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.Verify(context.Background()); err != nil {
		t.Fatal(err)
	}
}
