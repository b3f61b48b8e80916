package storage

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for mounts and loop devices")
	}
}

// writeAndCommit writes data as an image through the target protocol.
func writeAndCommit(t *testing.T, tg Target, data []byte) {
	t.Helper()
	w, err := tg.Create(uint64(len(data)))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.WriteAt(data, 0); err != nil {
		t.Fatalf("WriteAt: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func readImage(t *testing.T, tg Target) []byte {
	t.Helper()
	img, err := tg.Open(false)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer img.Close()
	b := make([]byte, img.Size())
	if _, err := img.ReadAt(b, 0); err != nil {
		t.Fatalf("ReadAt: %v", err)
	}
	return b
}

func TestFileTarget(t *testing.T) {
	dir := t.TempDir()
	tg, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Open(false); !errors.Is(err, ErrNoImage) {
		t.Fatalf("empty directory: %v, want ErrNoImage", err)
	}
	data := append([]byte("KJUMPIMG"), bytes.Repeat([]byte("image "), 1000)...)
	writeAndCommit(t, tg, data)
	path := filepath.Join(dir, DefaultName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("image mode %v, want 0600", fi.Mode().Perm())
	}
	if !bytes.Equal(readImage(t, tg), data) {
		t.Fatal("read back differs")
	}
	// A new Create removes the old image before writing: an interrupted
	// write leaves nothing resumable, only the temporary file.
	w, err := tg.Create(10)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteAt([]byte("partial"), 0)
	_, err = tg.Open(false)
	if !errors.Is(err, ErrNoImage) || !strings.Contains(err.Error(), "unfinished") {
		t.Fatalf("open during write: %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("Abort left the temporary file")
	}
	// A file path names the image file itself.
	ft, err := Open(filepath.Join(dir, "other.img"))
	if err != nil {
		t.Fatal(err)
	}
	writeAndCommit(t, ft, data[:100])
	if !bytes.Equal(readImage(t, ft), data[:100]) {
		t.Fatal("read back of file target differs")
	}
}

func TestFileTargetKeepsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(path, []byte("precious"), 0o644)
	tg, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Create(10); err == nil || !strings.Contains(err.Error(), "not a kjump image") {
		t.Fatalf("Create over a foreign file: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("foreign file was modified")
	}
}

func TestFileTargetMissingDirectory(t *testing.T) {
	_, err := Open("/nonexistent-kjump-dir/x.img")
	if err == nil || !strings.Contains(err.Error(), "/nonexistent-kjump-dir/x.img") || !strings.Contains(err.Error(), "check the path") {
		t.Fatalf("got %v", err)
	}
}

// tmpfs mounts a small tmpfs for the test.
func tmpfs(t *testing.T, size string, opts ...string) string {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	o := "size=" + size + ",mode=0700" // tmpfs roots are 1777 otherwise, which targets refuse
	for _, x := range opts {
		o += "," + x
	}
	run(t, "mount", "-t", "tmpfs", "-o", o, "kjump-test", dir)
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestNoSpace(t *testing.T) {
	dir := tmpfs(t, "1m")
	tg, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Up front: a worst case larger than the room is accepted; the
	// image usually fits. Filling up shows as ENOSPC naming the target.
	w, err := tg.Create(4 << 20)
	if err != nil {
		t.Fatalf("Create larger than the room: %v", err)
	}
	_, err = w.WriteAt(make([]byte, 2<<20), 0)
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "the target is full") {
		t.Fatalf("write past the room: %v", err)
	}
	w.Abort()
	// While writing: something else filled the filesystem.
	w, err = tg.Create(512 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "filler"), make([]byte, 2<<20), 0o600); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("filler: %v; tmpfs size not enforced", err)
	}
	_, err = w.WriteAt(make([]byte, 512<<10), 0)
	if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "free space on it") {
		t.Fatalf("write on full fs: %v", err)
	}
	w.Abort()
}

func TestReadOnly(t *testing.T) {
	dir := tmpfs(t, "1m", "ro")
	tg, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tg.Create(1)
	if !errors.Is(err, unix.EROFS) || !strings.Contains(err.Error(), "remount") || !strings.Contains(err.Error(), dir) {
		t.Fatalf("read-only target: %v", err)
	}
}

func TestErrorMessages(t *testing.T) {
	// EIO cannot be provoked here (no device-mapper in this kernel for
	// dm-error); check the message the real errno gets.
	err := wrap("/dev/sdz2", "write image to", unix.EIO)
	if !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), "/dev/sdz2") || !strings.Contains(err.Error(), "dmesg") {
		t.Fatalf("EIO message: %v", err)
	}
}
