package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// privateDir is a fresh directory only root can write, under /tmp (1777,
// sticky: fine above the image's own directory).
func privateDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	if err := os.Chmod(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestImageFileMode(t *testing.T) {
	old := unix.Umask(0) // the mode must not depend on the caller's umask
	defer unix.Umask(old)
	dir := privateDir(t)
	tg, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeAndCommit(t, tg, []byte("image"))
	fi, err := os.Stat(filepath.Join(dir, DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("image mode %04o, want 0600", fi.Mode().Perm())
	}
}

func TestRefuseSharedDirectory(t *testing.T) {
	for _, mode := range []os.FileMode{0o777, 0o770, 0o707, os.ModeSticky | 0o777, 0o720} {
		dir := privateDir(t)
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Open(filepath.Join(dir, "host.img"))
		if err == nil || !strings.Contains(err.Error(), "writable by other users") || !strings.Contains(err.Error(), "chmod 0700 "+dir) {
			t.Errorf("directory mode %04o: %v", mode, err)
		}
	}
	// Group- or world-readable is fine: the image itself is 0600.
	dir := privateDir(t)
	os.Chmod(dir, 0o755)
	if _, err := Open(dir); err != nil {
		t.Errorf("0755 directory: %v", err)
	}
}

func TestRefuseSharedParent(t *testing.T) {
	// A private directory inside one that others can write (not sticky):
	// they could rename it away and put their own in its place.
	parent := privateDir(t)
	os.Chmod(parent, 0o777)
	dir := filepath.Join(parent, "images")
	os.Mkdir(dir, 0o700)
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), parent+" is writable by other users") {
		t.Fatalf("shared parent: %v", err)
	}
	// With the sticky bit (like /tmp) others cannot rename it.
	os.Chmod(parent, os.ModeSticky|0o777)
	if _, err := Open(dir); err != nil {
		t.Fatalf("sticky parent: %v", err)
	}
}

func TestRefuseForeignOwner(t *testing.T) {
	needRoot(t)
	dir := privateDir(t)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "belongs to user 65534") || !strings.Contains(err.Error(), "chown root "+dir) {
		t.Fatalf("directory owned by nobody: %v", err)
	}
}

func TestRefuseSharedImageFile(t *testing.T) {
	dir := privateDir(t)
	tg, _ := Open(dir)
	writeAndCommit(t, tg, []byte("image"))
	img := filepath.Join(dir, DefaultName)
	os.Chmod(img, 0o666)
	_, err := Open(dir)
	if err == nil || !strings.Contains(err.Error(), "image file "+img+" is writable by other users") || !strings.Contains(err.Error(), "chmod go-w "+img) {
		t.Fatalf("world-writable image: %v", err)
	}
	os.Remove(img)
	os.Symlink("/etc/passwd", img)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("image path is a symlink: %v", err)
	}
}

func TestRefuseWorldWritableDevice(t *testing.T) {
	dev := loopDevice(t, 4<<20, "")
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	// A second node for the same device, as a careless udev rule would make it.
	node := filepath.Join(privateDir(t), "disk")
	if err := unix.Mknod(node, unix.S_IFBLK|0o666, int(st.Rdev)); err != nil {
		t.Fatal(err)
	}
	os.Chmod(node, 0o666)
	_, err := Open(node)
	if err == nil || !strings.Contains(err.Error(), "writable by every user") || !strings.Contains(err.Error(), "chmod o-w "+node) {
		t.Fatalf("world-writable device node: %v", err)
	}
	// root:disk 0660 is the norm and fine.
	os.Chmod(node, 0o660)
	if _, err := Open(node); err != nil {
		t.Fatalf("0660 device node: %v", err)
	}
}

// The image file is opened without following a symbolic link and checked
// again on the opened descriptor: a link or a shared file swapped in after
// Open's checks is refused, and nothing is read or written through it.
func TestSwappedImageFileRefused(t *testing.T) {
	dir := privateDir(t)
	tg, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	writeAndCommit(t, tg, []byte("image"))
	img := filepath.Join(dir, DefaultName)
	victim := filepath.Join(privateDir(t), "victim")
	os.WriteFile(victim, []byte("KJUMPIMG not ours"), 0o600)

	// Swapped for a symlink after the checks of Open.
	os.Remove(img)
	os.Symlink(victim, img)
	if _, err := tg.Open(true); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Open through a symlink swapped in: %v", err)
	}
	if _, err := tg.Create(1 << 20); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("Create over a symlink swapped in: %v", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "KJUMPIMG not ours" {
		t.Fatalf("victim changed: %q", b)
	}
	// Made writable by others after the checks: refused on the descriptor.
	os.Remove(img)
	writeAndCommit(t, tg, []byte("image"))
	os.Chmod(img, 0o646)
	if _, err := tg.Open(false); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Fatalf("Open of an image made world-writable: %v", err)
	}
	// Not a regular file any more.
	os.Remove(img)
	os.Mkdir(img, 0o700)
	if _, err := tg.Open(false); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("Open of a directory swapped in: %v", err)
	}
}

// A symbolic link on the way to the image, re-pointed after Open checked
// where it led (its owner can do that), does not redirect the image: every
// open goes through the directories that were checked.
func TestRepointedDirectoryLink(t *testing.T) {
	base := privateDir(t)
	checked, planted := filepath.Join(base, "checked"), filepath.Join(base, "planted")
	os.Mkdir(checked, 0o700)
	os.Mkdir(planted, 0o700)
	os.WriteFile(filepath.Join(planted, DefaultName), []byte("planted image"), 0o600)
	link := filepath.Join(base, "link")
	os.Symlink(checked, link)
	tg, err := Open(link)
	if err != nil {
		t.Fatal(err)
	}
	writeAndCommit(t, tg, []byte("KJUMPIMG real image"))
	os.Remove(link)
	os.Symlink(planted, link)
	if got := readImage(t, tg); string(got) != "KJUMPIMG real image" {
		t.Fatalf("read %q through the re-pointed link", got)
	}
	writeAndCommit(t, tg, []byte("KJUMPIMG second image"))
	if b, _ := os.ReadFile(filepath.Join(planted, DefaultName)); string(b) != "planted image" {
		t.Fatalf("the write followed the re-pointed link: %q", b)
	}
}

// A device node replaced after Open's checks (another device, or a
// world-writable node) is refused when the target is opened.
func TestSwappedDeviceNodeRefused(t *testing.T) {
	dev := loopDevice(t, 4<<20, "")
	other := loopDevice(t, 4<<20, "")
	var st, ost unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	unix.Stat(other, &ost)
	dir := privateDir(t)
	node := filepath.Join(dir, "disk")
	mknod := func(rdev uint64, mode uint32) {
		os.Remove(node)
		if err := unix.Mknod(node, unix.S_IFBLK|mode, int(rdev)); err != nil {
			t.Fatal(err)
		}
		os.Chmod(node, os.FileMode(mode))
	}
	mknod(st.Rdev, 0o660)
	tg, err := Open(node)
	if err != nil {
		t.Fatal(err)
	}
	bt := tg.(*blockTarget)
	v, err := bt.open(false, false)
	if err != nil {
		t.Fatalf("unchanged node: %v", err)
	}
	v.Close()
	mknod(ost.Rdev, 0o660)
	if _, err := bt.open(true, false); err == nil || !strings.Contains(err.Error(), "something replaced the node") {
		t.Fatalf("node swapped for another device: %v", err)
	}
	mknod(st.Rdev, 0o666)
	if _, err := bt.open(true, false); err == nil || !strings.Contains(err.Error(), "writable by every user") {
		t.Fatalf("node made world-writable: %v", err)
	}
	os.Remove(node)
	os.Symlink(other, node)
	if _, err := bt.open(true, false); err == nil {
		t.Fatal("node swapped for a symlink was opened")
	}
}
