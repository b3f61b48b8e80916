package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The archive is checked with GNU cpio, an independent newc reader.
func TestArchiveUnpacksWithCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatal("cpio is needed to check the archive (apt-get install cpio): ", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	big := bytes.Repeat([]byte("0123456789abcdef"), 70001) // not a multiple of 4
	if err := os.WriteFile(src, big[:len(big)-3], 0o600); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "initrd.gz")
	w, err := Create(img)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.File("init", 0o755, []byte("#!/bin/sh\necho hi\n")))
	must(w.File("/etc/deep/nested/conf", 0o644, []byte("a=1")))
	must(w.CopyFile("bin/big", 0o700, src))
	must(w.Symlink("bin/sh", "big"))
	must(w.Dir("proc", 0o555))
	must(w.Dir("etc", 0o755)) // already added as a parent: no second entry
	must(w.CharDev("dev/console", 0o600, 5, 1))
	if err := w.File("init", 0o755, nil); err == nil {
		t.Error("duplicate file accepted")
	}
	must(w.Close())

	out := filepath.Join(dir, "out")
	must(os.Mkdir(out, 0o755))
	cmd := exec.Command("sh", "-c", "zcat "+img+" | cpio -i --quiet --make-directories --no-absolute-filenames")
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio: %v\n%s", err, b)
	}
	list, err := exec.Command("sh", "-c", "zcat "+img+" | cpio -t --quiet").Output()
	must(err)
	want := "etc\netc/deep\netc/deep/nested\netc/deep/nested/conf\nbin\nbin/big\nbin/sh\nproc\ndev\ndev/console\n"
	if got := strings.TrimPrefix(string(list), "init\n"); got != want {
		t.Errorf("archive order:\n%s\nwant (after init):\n%s", list, want)
	}

	check := func(name string, mode os.FileMode, data string) {
		t.Helper()
		st, err := os.Lstat(filepath.Join(out, name))
		if err != nil {
			t.Error(err)
			return
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", name, st.Mode(), mode)
		}
		if st.Mode().IsRegular() {
			b, _ := os.ReadFile(filepath.Join(out, name))
			if string(b) != data {
				t.Errorf("%s: %d bytes differ from the %d written", name, len(b), len(data))
			}
		}
	}
	check("init", 0o755, "#!/bin/sh\necho hi\n")
	check("etc/deep/nested/conf", 0o644, "a=1")
	check("bin/big", 0o700, string(big[:len(big)-3]))
	check("proc", os.ModeDir|0o555, "")
	if l, err := os.Readlink(filepath.Join(out, "bin/sh")); err != nil || l != "big" {
		t.Errorf("bin/sh -> %q, %v; want big", l, err)
	}
	if os.Geteuid() == 0 {
		var st unix.Stat_t
		must(unix.Lstat(filepath.Join(out, "dev/console"), &st))
		if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 5 || unix.Minor(st.Rdev) != 1 {
			t.Errorf("dev/console: mode %o rdev %d:%d, want char 5:1", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
	}
}

func TestSameInputSameBytes(t *testing.T) {
	build := func() []byte {
		var b bytes.Buffer
		w := NewGzipWriter(&b)
		w.File("a/b", 0o644, []byte("x"))
		w.Symlink("a/c", "b")
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	if !bytes.Equal(build(), build()) {
		t.Error("two builds of the same archive differ")
	}
}

func TestRejectsRootAndEmptyNames(t *testing.T) {
	w := NewWriter(&bytes.Buffer{})
	for _, n := range []string{"", "/", ".", "../.."} {
		if err := w.File(n, 0o644, nil); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}
