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
