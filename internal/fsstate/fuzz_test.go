package fsstate

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// FuzzReaders feeds forged disks to the ext4, xfs and btrfs readers: they
// must return a state or an error, in bounded memory, never panic. The
// seed is a real 4 MiB ext4 (its journal walk is reached by mutations of
// s_start) and a synthetic xfs whose log follows its superblock.
func FuzzReaders(f *testing.F) {
	dir := f.TempDir()
	img := filepath.Join(dir, "seed.img")
	if out, err := exec.Command("truncate", "-s", "4M", img).CombinedOutput(); err != nil {
		f.Fatalf("%v: %s", err, out)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-b", "1024", "-N", "16", "-J", "size=1", img).CombinedOutput(); err != nil {
		f.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	ext, err := os.ReadFile(img)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ext)
	xfs := make([]byte, 1<<20)
	copy(xfs, "XFSB")
	be.PutUint32(xfs[4:], 4096)     // block size
	be.PutUint32(xfs[84:], 64)      // AG blocks
	xfs[124] = 6                    // AG block log
	be.PutUint64(xfs[48:], 16)      // log start
	be.PutUint32(xfs[96:], 128)     // log blocks
	for bb := 0; bb < 128*8; bb++ { // cycle 2 then 1: head at 300
		c := uint32(2)
		if bb >= 300 {
			c = 1
		}
		be.PutUint32(xfs[16*4096+bb*512:], c)
	}
	f.Add(xfs)
	// tmpfs (O_DIRECT since Linux 6.6): no disk writes per input.
	shm, err := os.MkdirTemp("/dev/shm", "fsstate-fuzz-")
	if err != nil {
		shm = f.TempDir()
	} else {
		f.Cleanup(func() { os.RemoveAll(shm) })
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 8<<20 {
			return
		}
		p := filepath.Join(shm, "d")
		size := (int64(len(data)) + 4095) &^ 4095
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, max(size, 128<<10)); err != nil {
			t.Fatal(err)
		}
		for _, typ := range []string{"ext4", "xfs", "btrfs"} {
			start := time.Now()
			st, err := readState(p, typ, "")
			if err == nil && st.gen == "" && st.unproven == "" {
				t.Fatalf("%s: no state and no error", typ)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("%s: a forged %d-byte disk took %s (%v, %v)", typ, len(data), d, st, err)
			}
		}
	})
}
