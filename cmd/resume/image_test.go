package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
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
	if err := runImage([]string{"restore", dir, "--format", "raw", "--to-file", out}); err != nil {
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
	if err := runImage([]string{"restore", dir, "--key-file", keyFile, "--format=raw", "--to-file", out}); err != nil {
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
	if err := runImage([]string{"restore", dir, "--to-file", out, "--format", "raw"}); err != nil {
		t.Fatalf("restore to a new file: %v", err)
	}
	if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored file has mode %v, want 0600", fi.Mode())
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, mem) {
		t.Fatal("restored memory differs")
	}
}

// captureStdout runs f with os.Stdout going to a pipe and returns what it wrote.
func captureStdout(t *testing.T, f func()) string {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() { b, _ := io.ReadAll(r); done <- b }()
	f()
	os.Stdout = old
	w.Close()
	return string(<-done)
}

// A target that does not exist says so, with its own exit status (5),
// not "not committed" (3); --json failures are JSON on stdout; an image
// in a directory everyone can write (as /tmp) is inspected as it is,
// without a demand to chmod that directory.
func TestImageInfoTargets(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such.img")
	err := runImage([]string{"info", missing})
	if exitCode(err) != 5 || !strings.Contains(err.Error(), missing+" does not exist") {
		t.Fatalf("missing: exit %d: %v", exitCode(err), err)
	}
	if c := exitCode(runImage([]string{"info", "/dev/no-such-kjump-disk"})); c != 5 {
		t.Fatalf("missing device: exit %d", c)
	}
	if c := exitCode(runImage([]string{"info", t.TempDir()})); c != 3 {
		t.Fatalf("empty directory: exit %d", c)
	}
	var jerr error
	out := captureStdout(t, func() { jerr = runImage([]string{"info", "--json", missing}) })
	var j struct {
		Error      string `json:"error"`
		ExitStatus int    `json:"exit_status"`
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.ExitStatus != 5 || exitCode(jerr) != 5 || !strings.Contains(j.Error, "does not exist") {
		t.Fatalf("--json on a missing target: %q (%v), exit %d", out, err, exitCode(jerr))
	}

	shared := filepath.Join(t.TempDir(), "tmp")
	os.Mkdir(shared, 0o777)
	os.Chmod(shared, 0o1777)
	mem := bytes.Repeat([]byte("shared dir "), 40000)
	mem = mem[:len(mem)/4096*4096]
	src := image.RangeSource(bytes.NewReader(mem), []image.Range{{Start: 0, End: uint64(len(mem))}})
	img := filepath.Join(shared, "x.img")
	w, err := os.MkdirTemp("", "kjump-img") // written where storage allows it, then moved
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(w)
	tg, _ := storage.Open(w)
	if _, err := image.WriteTarget(context.Background(), tg, src, image.Metadata{}); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(w, storage.DefaultName), img); err != nil {
		t.Fatal(err)
	}
	out = captureStdout(t, func() { err = runImage([]string{"info", img}) })
	if err != nil || !strings.Contains(out, "status:") || strings.Contains(out, "chmod") {
		t.Fatalf("image in a shared directory: %v\n%s", err, out)
	}
	if err := runImage([]string{"verify", img}); err != nil {
		t.Fatalf("verify in a shared directory: %v", err)
	}
}

// restore --to-file writes what resume(8) promises: an ELF core file with
// one PT_LOAD per RAM range at its physical address. file(1) calls it a
// core file, readelf lists the segments, kjump's own ELF reader (what
// 'hibernate image create --from' uses) reads every byte back, and gdb
// reads memory from it by address.
func TestImageRestoreELF(t *testing.T) {
	dir := t.TempDir()
	low := bytes.Repeat([]byte("low RAM page "), 8192)[:16<<12]
	high := append(bytes.Repeat([]byte("kjump-elf-marker\x00"), 2048)[:8<<12], make([]byte, 8<<12)...) // zero tail
	ranges := []image.Range{{Start: 0x1000, End: 0x1000 + uint64(len(low))}, {Start: 0x100000, End: 0x100000 + uint64(len(high))}}
	mem := make([]byte, ranges[1].End)
	copy(mem[ranges[0].Start:], low)
	copy(mem[ranges[1].Start:], high)
	src := image.RangeSource(bytes.NewReader(mem), ranges)
	tg, _ := storage.Open(dir)
	if _, err := image.WriteTarget(context.Background(), tg, src, image.Metadata{KernelRelease: "6.1.0-test"}); err != nil {
		t.Fatal(err)
	}
	core := filepath.Join(t.TempDir(), "core")
	if err := runImage([]string{"restore", dir, "--to-file", core}); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("file", core).CombinedOutput(); err != nil || !strings.Contains(string(out), "ELF 64-bit LSB core file") {
		t.Fatalf("file: %s %v", out, err)
	}
	out, err := exec.Command("readelf", "-l", "-n", core).CombinedOutput()
	if err != nil || strings.Count(string(out), "LOAD") != 2 || !strings.Contains(string(out), "0x0000000000100000") || !strings.Contains(string(out), "KJUMP") {
		t.Fatalf("readelf: %v\n%s", err, out)
	}
	f, err := os.Open(core)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	es, err := image.OpenELF(f)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(mem))
	for _, r := range ranges {
		if _, err := es.ReadAt(got[r.Start:r.End], int64(r.Start)); err != nil {
			t.Fatalf("reading %v back: %v", r, err)
		}
	}
	if !bytes.Equal(got, mem) {
		t.Fatal("the ELF core's RAM differs from the image's")
	}
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Fatalf("gdb is needed to check that it opens the core file (apt-get install gdb; .ci/deps.sh does): %v", err)
	}
	out, err = exec.Command(gdb, "-nx", "-batch", "-c", core, "-ex", "x/s 0x100000").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"kjump-elf-marker"`) {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
}
