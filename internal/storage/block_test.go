package storage

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// loopDevice attaches a sparse file of size bytes with partition scanning,
// optionally partitioned by an sfdisk script.
func loopDevice(t *testing.T, size int64, sfdisk string) string {
	t.Helper()
	needRoot(t)
	file := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	if sfdisk != "" {
		cmd := exec.Command("sfdisk", "-q", file)
		cmd.Stdin = strings.NewReader(sfdisk)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v\n%s", err, out)
		}
	}
	dev := run(t, "losetup", "-f", "--show", "-P", file)
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	if sfdisk != "" {
		// Partition devices appear asynchronously; partx adds any missing.
		exec.Command("partx", "-a", dev).Run()
		for i := 0; i < 50; i++ {
			if _, err := os.Stat(dev + "p1"); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return dev
}

func TestBlockTarget(t *testing.T) {
	dev := loopDevice(t, 16<<20, "")
	tg, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tg.(*blockTarget); !ok {
		t.Fatalf("%s opened as %T", dev, tg)
	}
	if _, err := tg.Open(false); !errors.Is(err, ErrNoImage) {
		t.Fatalf("blank device: %v, want ErrNoImage", err)
	}
	data := bytes.Repeat([]byte{1, 2, 3, 4, 5}, 100000)
	writeAndCommit(t, tg, data)
	if !bytes.Equal(readImage(t, tg), data) {
		t.Fatal("read back differs")
	}
	// Create clears the signature before writing anything else.
	w, err := tg.Create(1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Open(false); !errors.Is(err, ErrNoImage) {
		t.Fatalf("during rewrite: %v, want ErrNoImage", err)
	}
	w.Abort()
	// A worst case larger than the device is accepted (images are
	// usually far smaller); running out while writing says "target full".
	w, err = tg.Create(1 << 30)
	if err != nil {
		t.Fatalf("device smaller than the worst case: %v", err)
	}
	if _, err := w.WriteAt(make([]byte, 1<<20), 0); err != nil {
		t.Fatal(err)
	}
	_, err = w.WriteAt(make([]byte, 8192), 16<<20-8192)
	var fe *FullError
	if !errors.As(err, &fe) || !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "target full") || !strings.Contains(err.Error(), dev) ||
		fe.Room != 16<<20-SignatureSize || fe.Written != 1<<20 {
		t.Fatalf("write past the device end: %v (%+v)", err, fe)
	}
	w.Abort()
	if _, err := tg.Open(false); !errors.Is(err, ErrNoImage) {
		t.Fatalf("after a full target: %v, want ErrNoImage", err)
	}
	// Writes beyond the announced size are refused.
	w, err = tg.Create(100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(make([]byte, 101), 0); !errors.Is(err, unix.ENOSPC) {
		t.Fatalf("write past limit: %v", err)
	}
	w.Abort()
}

func TestBlockTooSmall(t *testing.T) {
	dev := loopDevice(t, 512<<10, "")
	tg, _ := Open(dev)
	var se *SpaceError
	if _, err := tg.Create(1 << 30); !errors.As(err, &se) || !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), dev) || !strings.Contains(err.Error(), "larger target") {
		t.Fatalf("512 KiB device: %v", err)
	}
}

func TestBlockSignatureCorrupt(t *testing.T) {
	dev := loopDevice(t, 4<<20, "")
	tg, _ := Open(dev)
	writeAndCommit(t, tg, []byte("hello"))
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xff}, 30) // inside the length field
	f.Close()
	if _, err := tg.Open(false); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("corrupt signature: %v", err)
	}
}

func TestBlockBusy(t *testing.T) {
	dev := loopDevice(t, 8<<20, "")
	run(t, "mkfs.ext4", "-q", dev)
	dir := t.TempDir()
	run(t, "mount", dev, dir)
	defer exec.Command("umount", dir).Run()
	tg, _ := Open(dev)
	_, err := tg.Create(100)
	if !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), "unmount") {
		t.Fatalf("mounted device: %v", err)
	}
}

func TestResolve(t *testing.T) {
	const (
		partUUID = "6c0b6a1e-2d4b-4e0f-9a57-1f2e3d4c5b6a"
		fsUUID   = "0f3a8d5c-8e1b-4c2a-b6d9-7a1e2f3c4d5e"
	)
	dev := loopDevice(t, 64<<20, "label: gpt\nsize=16M, name=kjump-test-part, uuid="+partUUID+"\nsize=16M, name=other\n")
	p1, p2 := dev+"p1", dev+"p2"
	run(t, "mkfs.ext4", "-q", "-L", "kjtestfs", "-U", fsUUID, p2)
	for spec, want := range map[string]string{
		"PARTUUID=" + partUUID:                  p1,
		"PARTUUID=" + strings.ToUpper(partUUID): p1,
		"PARTLABEL=kjump-test-part":             p1,
		"UUID=" + fsUUID:                        p2,
		"LABEL=kjtestfs":                        p2,
	} {
		got, err := Resolve(spec)
		if err != nil || got != want {
			t.Errorf("Resolve(%s) = %q, %v; want %s", spec, got, err, want)
		}
	}
	if !Carries(p1, "PARTLABEL=kjump-test-part") || Carries(p2, "PARTLABEL=kjump-test-part") || !Carries(p2, "LABEL=kjtestfs") || Carries(p1, p1) {
		t.Errorf("Carries: %s is the partition labelled kjump-test-part, %s the filesystem kjtestfs", p1, p2)
	}
	if got := PartUUID(p1); got != partUUID {
		t.Errorf("PartUUID(%s) = %q, want %s", p1, got, partUUID)
	}
	if got := PartUUID(dev); got != "" {
		t.Errorf("PartUUID of the whole disk %s = %q, want none", dev, got)
	}
	_, err := Resolve("PARTUUID=00000000-0000-0000-0000-000000000001")
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "blkid") {
		t.Errorf("missing PARTUUID: %v", err)
	}
	// A raw image on the partition found by PARTLABEL.
	tg, err := Open("PARTLABEL=kjump-test-part")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tg.String(), p1) || !strings.Contains(tg.String(), "PARTLABEL=") {
		t.Errorf("target name %q", tg)
	}
	writeAndCommit(t, tg, []byte("raw image"))
	if got := readImage(t, tg); string(got) != "raw image" {
		t.Fatalf("read back %q", got)
	}
	// Still found by PARTUUID after the image overwrote the partition start.
	if got, err := Resolve("PARTUUID=" + partUUID); got != p1 || err != nil {
		t.Errorf("after write: %q %v", got, err)
	}
}

func TestMissingDevice(t *testing.T) {
	_, err := Open("/dev/kjump-no-such-disk")
	if err == nil || !strings.Contains(err.Error(), "/dev/kjump-no-such-disk") || !strings.Contains(err.Error(), "check the path") {
		t.Fatalf("got %v", err)
	}
	if _, err := Open("LABEL="); err == nil {
		t.Fatal("empty LABEL accepted")
	}
}
