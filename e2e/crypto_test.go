//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/image/forgery"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "encrypted-hibernate-resume", CPUs: 2, Timeout: 30 * time.Minute, Run: func(s *S) error { return encryptedHibernateResume(s, "") }})
	register(Scenario{Name: "encrypted-hibernate-resume-linux7.3", Timeout: 45 * time.Minute, Run: func(s *S) error { return encryptedHibernateResume(s, "7.3") }})
	register(Scenario{Name: "forged-image-refused", CPUs: 2, Timeout: 30 * time.Minute, Run: forgedImageRefused})
	register(Scenario{Name: "encrypted-checkpoint", CPUs: 2, Timeout: 25 * time.Minute, Run: encryptedCheckpoint})
}

// encryptedCheckpointBody checkpoints twice with a key file: the original
// wipes the reserved region after each return and keeps running, and the
// second helper (loaded into the wiped region) works as well.
const encryptedCheckpointBody = `
` + workloadStart + `
for i in 1 2; do
  hibernate checkpoint --to /dev/vda --key-file /etc/kjump.key
  echo "ECK checkpoint $i rc=$?"
  kjump-workload verify
done
/bin/resume image verify /dev/vda
echo "ECK verify without key rc=$?"
/bin/resume image verify /dev/vda --key-file /etc/kjump.key
echo "ECK verify with key rc=$?"
`

func encryptedCheckpoint(s *S) error {
	kernel, initrd, err := s.jumpingBoot("", encryptedCheckpointBody, map[string]vm.File{keyPath[1:]: {Data: randomKey(), Mode: 0o600}})
	if err != nil {
		return err
	}
	disk := filepath.Join(s.Dir, "image.raw")
	if err := vm.CreateDisk(disk, 2048); err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Name: "checkpoint", Kernel: kernel, Initrd: initrd, SMP: 2, Append: region, Disks: []string{disk}})
	if err != nil {
		return err
	}
	for i := 1; i <= 2; i++ {
		if _, err := m.ExpectString("hibernate: wiped the reserved region", 10*time.Minute); err != nil {
			return err
		}
		if err := expectAll(m, 2*time.Minute, "hibernate: checkpoint committed to /dev/vda", fmt.Sprintf("ECK checkpoint %d rc=0", i), "WORKLOAD VERIFY ok"); err != nil {
			return err
		}
	}
	if _, err := m.Expect(`image is encrypted \(key file\) and no key was given: give the key with --key-file FILE`, 2*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m, 2*time.Minute, "ECK verify without key rc=1", "ECK verify with key rc=0", "E2E exit rc=0"); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}

const keyPath = "/etc/kjump.key"

// withKeyFile gives the machine a root-only key file, hibernates with
// --key-file and resumes with kjump.key= on the kernel command line.
func withKeyFile(key []byte) hibOption {
	return func(o *hibSetup) {
		o.files = map[string]vm.File{keyPath[1:]: {Data: key, Mode: 0o600}}
		o.hibArgs = "--key-file " + keyPath
		o.resumeAppend = "kjump.key=" + keyPath
	}
}

func randomKey() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// encryptedHibernateResume: hibernate with a key file, check on the host
// that the image holds none of the RAM in the clear, refuse to resume
// without the key, then resume with it.
func encryptedHibernateResume(s *S, version string) error {
	h, err := hibernateOnce(s, version, withKeyFile(randomKey()))
	if err != nil {
		return err
	}
	if !strings.Contains(h.consoleText, "kjump-helper: writing image") || !strings.Contains(h.consoleText, "encrypted with a key file") {
		return fmt.Errorf("the helper did not say it writes an encrypted image")
	}
	// hibernate-resume proves the same search finds the marker in a plain image.
	if found, err := markerWindows(h.imageDisk, 0, h.marker); err != nil {
		return err
	} else if found != 0 {
		return fmt.Errorf("%d pieces of the RAM marker are readable in the encrypted image", found)
	}
	m, err := h.bootResumeWith(s, "resume-nokey", "")
	if err != nil {
		return err
	}
	if _, err := m.Expect(`resume: image \w+ on /dev/vda is not resumable, booting normally: image is encrypted \(key file\) and no key was given: give the key with --key-file FILE \(at boot: kjump.key=PATH`, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m, time.Minute, "HIB resume rc=1", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	if err := m.Wait(time.Minute); err != nil {
		return err
	}
	m, err = h.bootResume(s, "resume")
	if err != nil {
		return err
	}
	if _, err := m.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("hibernate: wiped the reserved region", 5*time.Minute); err != nil {
		return err
	}
	return h.expectResumed(m)
}

// forgedImageRefused: an attacker with the disk but without the key
// changes the image three ways; resume, given the key, refuses each with a
// message saying why and boots normally with nothing restored.
func forgedImageRefused(s *S) error {
	h, err := hibernateOnce(s, "", withKeyFile(randomKey()))
	if err != nil {
		return err
	}
	refused := func(name, want string) error {
		m, err := h.bootResume(s, name)
		if err != nil {
			return err
		}
		line, err := m.Expect(`resume: (image .*)`, 5*time.Minute)
		if err != nil {
			return err
		}
		if !strings.Contains(line[1], want) {
			return fmt.Errorf("%s: refusal %q does not say %q", name, line[1], want)
		}
		if err := expectAll(m, time.Minute, "HIB resume rc=1", "HIB booted normally", "E2E exit rc=0"); err != nil {
			return err
		}
		if c := m.Console(); strings.Contains(c, "restore kernel") || strings.Contains(c, "RESUMED") {
			return fmt.Errorf("%s: a forged image was restored", name)
		}
		return m.Wait(time.Minute)
	}

	// 1. Change a chunk's ciphertext and keep its sum, so every checksum
	// in the image still matches: only the GCM tag can notice. resume
	// authenticates header, index and commit record only (the image is
	// read once); the restore kernel checks the chunk's tag before writing
	// its pages, refuses it and reboots, never jumping into the original.
	chunk, err := forgeChunkKeepingSum(h.imageDisk, false)
	if err != nil {
		return err
	}
	m, err := h.bootResume(s, "resume-forged-chunk")
	if err != nil {
		return err
	}
	if _, err := m.Expect(fmt.Sprintf(`RESTORE FAILED: image forged or corrupt: chunk %d failed authentication`, chunk), 10*time.Minute); err != nil {
		return err
	}
	if e, err := m.WaitExit(time.Minute); err != nil {
		return err
	} else if e.PowerDown || e.Panic != "" || e.Killed || strings.Contains(m.Console(), "RESUMED") {
		return fmt.Errorf("resume-forged-chunk: the restore kernel should refuse the chunk and reboot, got %+v", e)
	}
	// 2. Replace the image by a valid unencrypted one with the same RAM
	// ranges and metadata (all readable without the key): what the machine
	// would run after resume is the attacker's choice.
	if err := replaceImage(h.imageDisk, nil); err != nil {
		return err
	}
	if err := refused("resume-plain-substitute", "image is not encrypted but a key was given"); err != nil {
		return err
	}
	// 3. The same image encrypted with the attacker's own key file.
	if err := replaceImage(h.imageDisk, randomKey()); err != nil {
		return err
	}
	return refused("resume-other-key", "wrong key or passphrase")
}

// rawImage is the image on a raw kjump disk: the signature block at 0
// gives its length, the image starts at 4096.
const rawImageOffset = 4096

func rawImageLen(f io.ReaderAt) (int64, error) {
	sig := make([]byte, 40)
	if _, err := f.ReadAt(sig, 0); err != nil {
		return 0, err
	}
	if string(sig[:8]) != "KJUMPDEV" {
		return 0, fmt.Errorf("no kjump signature on the disk")
	}
	return int64(binary.LittleEndian.Uint64(sig[24:])), nil
}

// forgeChunkKeepingSum flips a bit in the second half of a chunk's
// payload and rewrites eight bytes after it (forgery.FlipKeepingSum), so
// the record's sum (and with it the index and the commit digest) are
// unchanged. It forges the first chunk whose record leaves room for that
// and returns its number. With changePages (a plain image) it makes sure
// the forged chunk decodes to different pages: an S2 copy of repeated
// bytes can still decode to the same ones from a changed offset (seen once
// in CI, on chunk 0's 15 pages of low memory), and that image is intact,
// not forged. It then tries later positions until image.Verify on the
// host refuses that chunk.
func forgeChunkKeepingSum(disk string, changePages bool) (int, error) {
	f, err := os.OpenFile(disk, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fixed := make([]byte, 16)
	if _, err := f.ReadAt(fixed, rawImageOffset); err != nil {
		return 0, err
	}
	hdrLen := int64(binary.LittleEndian.Uint32(fixed[12:]))
	at := rawImageOffset + hdrLen
	for chunk := 0; chunk < 64; chunk++ {
		rh := make([]byte, 32)
		if _, err := f.ReadAt(rh, at); err != nil {
			return 0, err
		}
		if string(rh[:4]) != "KJCK" {
			return 0, fmt.Errorf("no chunk record %d at %d", chunk, at)
		}
		ext, payload := int(binary.LittleEndian.Uint32(rh[8:])), int(binary.LittleEndian.Uint32(rh[12:]))
		orig := make([]byte, 32+12*ext+payload+4)
		if _, err := f.ReadAt(orig, at); err != nil {
			return 0, err
		}
		start, body := 32+12*ext, len(orig)-4
		fix := body - body%32 // where FlipKeepingSum writes
		for mid := start + payload/2; body%32 >= 8 && mid < fix; mid += 5 {
			rec := bytes.Clone(orig)
			if _, err := forgery.FlipKeepingSum(rec[:body], mid, 0x10); err != nil {
				return 0, err
			}
			if _, err := f.WriteAt(rec, at); err != nil {
				return 0, err
			}
			if !changePages {
				return chunk, nil
			}
			n, err := rawImageLen(f)
			if err != nil {
				return 0, err
			}
			r, err := image.Open(io.NewSectionReader(f, rawImageOffset, n))
			if err != nil {
				return 0, fmt.Errorf("the forged image no longer opens: %w", err)
			}
			var ce *image.CorruptError
			if _, err := r.Verify(context.Background()); errors.As(err, &ce) && ce.Chunk == chunk {
				return chunk, nil
			} else if err != nil {
				return 0, fmt.Errorf("verifying the forged image: %w", err)
			}
		}
		if _, err := f.WriteAt(orig, at); err != nil {
			return 0, err
		}
		at += int64(len(orig))
	}
	return 0, fmt.Errorf("no change in the second half of the first 64 chunks' payloads changes their pages")
}

// replaceImage writes, through a loop device and kjump's own storage and
// image code, a valid image with the original's ranges and metadata (a
// page of the attacker's choosing, the rest zero), encrypted with key if
// it is not nil.
func replaceImage(disk string, key []byte) error {
	f, err := os.Open(disk)
	if err != nil {
		return err
	}
	n, err := rawImageLen(f)
	if err != nil {
		f.Close()
		return err
	}
	r, err := image.Open(&sectionInput{io.NewSectionReader(f, rawImageOffset, n)})
	if err != nil {
		f.Close()
		return err
	}
	rs, md := r.Ranges(), r.Metadata()
	f.Close()
	out, err := exec.Command("losetup", "--find", "--show", disk).Output()
	if err != nil {
		return fmt.Errorf("losetup: %w", err)
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	t, err := storage.Open(loop)
	if err != nil {
		return err
	}
	var opts []image.WriterOption
	if key != nil {
		k, err := image.NewKey(image.KeyFileSecret(key))
		if err != nil {
			return err
		}
		opts = append(opts, image.WithKey(k))
	}
	_, err = image.WriteTarget(context.Background(), t, &attackerRAM{rs}, md, opts...)
	return err
}

// sectionInput makes a section of the disk file an image.Input.
type sectionInput struct{ *io.SectionReader }

// attackerRAM is memory with the saved ranges: zero but for one page of
// text at the start of the first range.
type attackerRAM struct{ ranges []image.Range }

func (a *attackerRAM) Ranges() []image.Range { return a.ranges }
func (a *attackerRAM) ReadAt(p []byte, off int64) (int, error) {
	clear(p)
	page := []byte("attacker's page")
	if start := int64(a.ranges[0].Start); off <= start && start < off+int64(len(p)) {
		copy(p[start-off:], page)
	}
	return len(p), nil
}

// markerWindows counts how many 64-byte pieces of marker (one from each
// of its pages, inside the page so it is contiguous in RAM) appear in the
// disk image, whose raw kjump target starts at byte offset off (a
// partition).
func markerWindows(disk string, off int64, marker []byte) (int, error) {
	var pieces [][]byte
	for off := 1000; off+64 <= len(marker); off += 4 * 4096 {
		pieces = append(pieces, marker[off:off+64])
	}
	file, err := os.Open(disk)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	f := io.NewSectionReader(file, off, 1<<62)
	end, err := rawImageLen(f)
	if err != nil {
		return 0, err
	}
	end += rawImageOffset
	seen := make([]bool, len(pieces))
	buf := make([]byte, 64<<20)
	var at int64
	for {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), end-at)], at)
		for i, p := range pieces {
			if !seen[i] && bytes.Contains(buf[:n], p) {
				seen[i] = true
			}
		}
		if err == io.EOF || at+int64(n) >= end {
			break
		}
		if err != nil {
			return 0, err
		}
		at += int64(n) - 64 // overlap: a piece across the boundary is found
	}
	found := 0
	for _, s := range seen {
		if s {
			found++
		}
	}
	return found, nil
}
