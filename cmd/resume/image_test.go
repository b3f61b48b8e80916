package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/storage"
)

func exitCode(err error) int {
	var ee *cli.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	}
	return 1
}

func TestImageCommands(t *testing.T) {
	dir := t.TempDir()
	mem := bytes.Repeat([]byte("resume image restore "), 50000)
	mem = append(mem, make([]byte, 3<<20)...) // zero tail
	mem = mem[:len(mem)/4096*4096]
	src := image.RangeSource(bytes.NewReader(mem), []image.Range{{Start: 0, End: uint64(len(mem))}})
	tg, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.WriteTarget(context.Background(), tg, src, image.Metadata{KernelRelease: "6.1.0"}); err != nil {
		t.Fatal(err)
	}
	if err := runImage([]string{"verify", dir}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := runImage([]string{"info", dir, "--json"}); err != nil {
		t.Fatalf("info --json: %v", err)
	}
	out := filepath.Join(t.TempDir(), "mem")
	if err := runImage([]string{"restore", dir, "--to-file", out}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	got, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(got, mem) {
		t.Fatalf("restored file differs from memory (%d vs %d bytes, %v)", len(got), len(mem), err)
	}
	if c := exitCode(runImage([]string{"verify"})); c != 2 {
		t.Fatalf("verify without target: exit %d", c)
	}

	// Invalidated: exit 4, accepted with --force.
	if err := image.InvalidateTarget(tg); err != nil {
		t.Fatal(err)
	}
	if c := exitCode(runImage([]string{"verify", dir})); c != 4 {
		t.Fatalf("verify invalidated: exit %d", c)
	}
	if err := runImage([]string{"verify", "--force", dir}); err != nil {
		t.Fatalf("verify --force: %v", err)
	}

	// Corrupt: exit 1, and restore leaves no output behind for a damaged index.
	path := filepath.Join(dir, storage.DefaultName)
	b, _ := os.ReadFile(path)
	b[(len(b)-8192)/2] ^= 1 // before the commit area, whose two copies stand in for each other
	os.WriteFile(path, b, 0o600)
	if c := exitCode(runImage([]string{"verify", "--force", dir})); c != 1 {
		t.Fatalf("verify corrupt: exit %d", c)
	}

	// Uncommitted (no image published): exit 3.
	if c := exitCode(runImage([]string{"verify", t.TempDir()})); c != 3 {
		t.Fatalf("verify empty dir: exit %d", c)
	}
	b = b[:len(b)-1]
	os.WriteFile(path, b, 0o600)
	out2 := filepath.Join(t.TempDir(), "mem2")
	if c := exitCode(runImage([]string{"restore", dir, "--to-file", out2})); c != 3 && c != 1 {
		t.Fatalf("restore truncated: exit %d", c)
	}
	if _, err := os.Stat(out2); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("restore of a bad image created its output file")
	}
}

func TestImageCommandsEncrypted(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, bytes.Repeat([]byte{0x5a}, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	mem := bytes.Repeat([]byte("encrypted image "), 65536)
	src := image.RangeSource(bytes.NewReader(mem), []image.Range{{Start: 0, End: uint64(len(mem))}})
	tg, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	k, err := image.NewKey(image.KeyFileSecret(bytes.Repeat([]byte{0x5a}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.WriteTarget(context.Background(), tg, src, image.Metadata{}, image.WithKey(k)); err != nil {
		t.Fatal(err)
	}
	if err := runImage([]string{"info", dir}); err != nil {
		t.Fatalf("info without a key: %v", err)
	}
	err = runImage([]string{"verify", dir})
	if exitCode(err) != 1 || !strings.Contains(err.Error(), "--key-file") {
		t.Fatalf("verify without a key: %v", err)
	}
	if err := runImage([]string{"verify", dir, "--key-file", keyFile}); err != nil {
		t.Fatalf("verify with the key: %v", err)
	}
	out := filepath.Join(t.TempDir(), "mem")
	if err := runImage([]string{"restore", dir, "--key-file", keyFile, "--to-file", out}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, mem) {
		t.Fatal("restored memory differs")
	}
	os.Chmod(keyFile, 0o644)
	if err := runImage([]string{"verify", dir, "--key-file", keyFile}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
}

// restore --to-file writes decrypted RAM only into a new file of its own,
// mode 0600: an existing file (someone else's, or world-readable, which
// would keep its owner and mode) and a symbolic link (dangling or not) are
// refused untouched, naming the fix.
func TestImageRestoreCreatesPrivateFile(t *testing.T) {
	dir := t.TempDir()
	mem := bytes.Repeat([]byte("private pages "), 4096)
	src := image.RangeSource(bytes.NewReader(mem), []image.Range{{Start: 0, End: uint64(len(mem))}})
	tg, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := image.WriteTarget(context.Background(), tg, src, image.Metadata{}); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	syscall.Umask(0o022)

	existing := filepath.Join(outDir, "world-readable")
	os.WriteFile(existing, []byte("someone else's"), 0o644)
	err = runImage([]string{"restore", dir, "--to-file", existing})
	if err == nil || !strings.Contains(err.Error(), "exists") || !strings.Contains(err.Error(), "remove it or give a new name") {
		t.Fatalf("existing world-readable file: %v", err)
	}
	if b, _ := os.ReadFile(existing); string(b) != "someone else's" {
		t.Fatalf("existing file was written: %q", b)
	}
	if fi, _ := os.Stat(existing); fi.Mode().Perm() != 0o644 {
		t.Fatalf("existing file's mode changed: %v", fi.Mode())
	}

	victim := filepath.Join(outDir, "victim")
	os.WriteFile(victim, []byte("victim"), 0o600)
	for _, link := range []struct{ name, to string }{{"link", victim}, {"dangling", filepath.Join(outDir, "nowhere")}} {
		p := filepath.Join(outDir, link.name)
		os.Symlink(link.to, p)
		if err := runImage([]string{"restore", dir, "--to-file", p}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: %v", link.name, err)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "victim" {
		t.Fatalf("restore wrote through a symbolic link: %q", b)
	}
	if _, err := os.Lstat(filepath.Join(outDir, "nowhere")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("restore created the dangling link's target")
	}

	out := filepath.Join(outDir, "new")
	if err := runImage([]string{"restore", dir, "--to-file", out}); err != nil {
		t.Fatalf("restore to a new file: %v", err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored file has mode %v, want 0600", fi.Mode())
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, mem) {
		t.Fatal("restored memory differs")
	}
}
