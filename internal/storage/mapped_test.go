package storage

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// ext4Loop makes an ext4 filesystem on a loop device, mounted at the
// returned directory. Loop devices stand in for a disk partition here.
func ext4Loop(t *testing.T, size int64) (dev, mnt string) {
	t.Helper()
	dev = loopDevice(t, size, "")
	run(t, "mkfs.ext4", "-q", "-F", dev)
	mnt = t.TempDir()
	run(t, "mount", "-o", "noatime", dev, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	old := stackedDevices
	stackedDevices = []string{"dm-", "md", "nbd", "zram"}
	t.Cleanup(func() { stackedDevices = old })
	return dev, mnt
}

// TestMappedFile plays every kernel's part on a real ext4 filesystem: the
// original prepares and maps the file, the helper writes an image straight
// to the device, the original reads it through the filesystem, early boot
// invalidates it through a read-only mount, and fsck finds nothing wrong.
func TestMappedFile(t *testing.T) {
	dev, mnt := ext4Loop(t, 128<<20)
	path := filepath.Join(mnt, "kjump", "kjump.img")
	if err := Preallocate(path, 40<<20); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 40<<20 {
		t.Fatalf("prepared file: mode %v size %d", fi.Mode(), fi.Size())
	}
	if di, _ := os.Stat(filepath.Dir(path)); di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", di.Mode().Perm())
	}
	if tg, err := Open(path); err != nil {
		t.Fatal(err)
	} else if _, err := tg.Open(false); !errors.Is(err, ErrNoImage) {
		t.Fatalf("prepared file: %v, want ErrNoImage", err)
	}

	m, err := MapFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Device != dev || m.FSUUID == "" || m.Token == "" || len(m.Extents) == 0 {
		t.Fatalf("map: %+v", m)
	}

	// A stale token (the file was re-mapped since) must stop the helper.
	stale := *m
	stale.Token = strings.Repeat("00", tokenLen)
	if _, err := OpenMapped(stale); err == nil || !strings.Contains(err.Error(), "marker") {
		t.Fatalf("stale token: %v", err)
	}

	// The helper: no filesystem, only the device and the extents.
	helper, err := OpenMapped(*m)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 7<<20+123)
	rand.New(rand.NewSource(1)).Read(data)
	writeAndCommit(t, helper, data)

	// The original, back: it must not see its cached copy of the marker.
	if err := DropCache(path); err != nil {
		t.Fatal(err)
	}
	readBack(t, path, data)

	// Early boot: the filesystem mounted read-only without journal replay;
	// the write (invalidation) goes to the device.
	run(t, "umount", mnt)
	run(t, "mount", "-o", "ro,noload", dev, mnt)
	tg, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tg.Open(true)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := img.(*blockImage).f.(*extentVolume); !ok {
		t.Fatalf("read-only mount: writes go through %T, want the device", img.(*blockImage).f)
	}
	if _, err := img.WriteAt([]byte("INVALID!"), 100); err != nil {
		t.Fatal(err)
	}
	img.Sync()
	img.Close()
	run(t, "umount", mnt)
	copy(data[100:], "INVALID!")
	if out, err := exec.Command("e2fsck", "-fn", dev).CombinedOutput(); err != nil {
		t.Fatalf("fsck after direct writes: %v\n%s", err, out)
	}
	run(t, "mount", dev, mnt)
	readBack(t, path, data)
	if m2, err := MapFile(path); err != nil || m2.Extents[0] != m.Extents[0] {
		t.Fatalf("remap: %v %+v", err, m2)
	}
}

func readBack(t *testing.T, path string, want []byte) {
	t.Helper()
	tg, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tg.Open(false)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	got := make([]byte, img.Size())
	if _, err := img.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("image read back through the filesystem differs (%d vs %d bytes)", len(got), len(want))
	}
}

func TestMapFileRefusals(t *testing.T) {
	_, mnt := ext4Loop(t, 64<<20)
	plain := filepath.Join(mnt, "plain")
	os.WriteFile(plain, []byte("hello"), 0o600)
	if _, err := MapFile(plain); err == nil || !strings.Contains(err.Error(), "remove it") {
		t.Fatalf("ordinary file: %v", err)
	}
	// A marker on an unwritten (fallocated only) file.
	un := filepath.Join(mnt, "unwritten")
	f, _ := os.OpenFile(un, os.O_RDWR|os.O_CREATE, 0o600)
	unix.Fallocate(int(f.Fd()), 0, 0, 32<<20)
	f.WriteAt(encodeMarker(32<<20, nil), 0)
	f.Close()
	if _, err := MapFile(un); err == nil || !strings.Contains(err.Error(), "never written") {
		t.Fatalf("unwritten extents: %v", err)
	}
	// A sparse file.
	sp := filepath.Join(mnt, "sparse")
	f, _ = os.OpenFile(sp, os.O_RDWR|os.O_CREATE, 0o600)
	f.WriteAt(encodeMarker(32<<20, nil), 0)
	f.Truncate(32 << 20)
	f.Close()
	if _, err := MapFile(sp); err == nil || !strings.Contains(err.Error(), "bytes have disk blocks") && !strings.Contains(err.Error(), "hole") {
		t.Fatalf("sparse file: %v", err)
	}
	// tmpfs has no block device.
	tmp := t.TempDir()
	run(t, "mount", "-t", "tmpfs", "none", tmp)
	defer exec.Command("umount", tmp).Run()
	tp := filepath.Join(tmp, "img")
	os.WriteFile(tp, encodeMarker(4096, nil), 0o600)
	if _, err := MapFile(tp); err == nil || !strings.Contains(err.Error(), "ext4 or xfs") {
		t.Fatalf("tmpfs: %v", err)
	}
}

// A mapped file is opened without following a link and checked on the
// descriptor: a link in its place (swapped in after it was prepared) or a
// file others can write is refused before a block is mapped or written.
func TestMappedFileSwapRefused(t *testing.T) {
	_, mnt := ext4Loop(t, 64<<20)
	path := filepath.Join(mnt, "kjump", "kjump.img")
	if err := Preallocate(path, 16<<20); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(mnt, "kjump", "other.img")
	if err := Preallocate(other, 16<<20); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(other)
	os.Remove(path)
	os.Symlink(other, path)
	for name, f := range map[string]func(string) (*FileMap, error){"MapFile": MapFile, "LocateFile": LocateFile} {
		if _, err := f(path); err == nil || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s through a link: %v", name, err)
		}
	}
	if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
		t.Fatal("MapFile wrote a new token through the link")
	}
	os.Chmod(other, 0o666)
	if _, err := MapFile(other); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("world-writable image file: %v", err)
	}
}
