// Package prepare builds the helper initramfs: kjump's static binary as
// /init, /etc/kjump.conf, and the kernel modules the helper kernel needs to
// reach the image target, which the helper loads before opening it. A stamp
// next to the initramfs records what it was built from, so an outdated one
// is rebuilt (hibernate prepare) or reported (hibernate check).
package prepare

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/kjump/kjump/internal/atomicfile"
	"github.com/kjump/kjump/internal/initramfs"
)

// ModuleList is where the helper finds the modules to load, one path per
// line in load order.
const ModuleList = "etc/kjump/modules"

// Inputs are what a helper initramfs is built from.
type Inputs struct {
	Binary      string   // the static hibernate binary (becomes /init)
	Config      string   // /etc/kjump.conf; skipped when it does not exist
	Kernel      string   // helper bzImage, whose release picks the modules
	ModulesRoot string   // directory holding lib/modules/RELEASE ("/" on a real system)
	Modules     []string // module names the helper needs (drivers of the target, nfs, ...)
	// RequireModules makes a missing lib/modules/RELEASE an error; without
	// it such a helper kernel counts as monolithic (everything built in).
	RequireModules bool
}

// Stamp records what an initramfs was built from.
type Stamp struct {
	Binary  string   `json:"binary"`
	Config  string   `json:"config"`
	Kernel  string   `json:"kernel"`
	Release string   `json:"release"`
	DepHash string   `json:"modules_dep"`
	Modules []string `json:"modules"` // resolved files, load order
	// Seen is each hashed file's size and modification time when hashed:
	// a file that still shows them keeps its hash. Every hibernate checks
	// the stamp, and hashing the binary and the kernel (20 MB) takes 10 ms
	// on a real CPU but most of a second on an emulated one.
	Seen map[string]Seen `json:"seen,omitempty"`
	// statOnly makes hash check that files exist without hashing them:
	// without a stamp to compare with, Stale needs no hashes.
	statOnly bool
}

// Seen identifies the version of a file that was hashed.
type Seen struct {
	Size    int64  `json:"size"`
	MTime   int64  `json:"mtime_ns"`
	Hash    string `json:"sha256"`
	Checked int64  `json:"checked_ns"` // when it was hashed
}

// StampPath is where the stamp of initrd lives.
func StampPath(initrd string) string { return initrd + ".stamp" }

func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hash returns path's SHA-256, taken from prev when the file's size and
// modification time are those prev saw (a package upgrade or a rebuild
// changes them), and records what it saw in s. As in git's index, a file
// modified shortly before it was hashed is hashed again: file times are
// coarse (a jiffy), so a change right after the hash could keep the time.
func (s *Stamp) hash(path string, prev *Stamp) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if s.statOnly {
		return "", nil
	}
	now := Seen{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	var old Seen
	if prev != nil {
		old = prev.Seen[path]
	}
	if old.Hash != "" && old.Size == now.Size && old.MTime == now.MTime && old.MTime < old.Checked-int64(time.Second) {
		now.Hash, now.Checked = old.Hash, old.Checked
	} else {
		now.Checked = time.Now().UnixNano()
		if now.Hash, err = hashFile(path); err != nil {
			return "", err
		}
	}
	if s.Seen == nil {
		s.Seen = map[string]Seen{}
	}
	s.Seen[path] = now
	return now.Hash, nil
}

// KernelRelease reads the release ("6.1.0-56-amd64") from a bzImage's
// setup header: kernel_version at 0x20e points to the version string.
func KernelRelease(bzImage string) (string, error) {
	f, err := os.Open(bzImage)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%s is not a bzImage (no HdrS setup header)", bzImage)
	}
	off := int64(hdr[0x20e]) | int64(hdr[0x20f])<<8
	buf := make([]byte, 256)
	n, _ := f.ReadAt(buf, off+0x200)
	rel, _, _ := strings.Cut(string(buf[:n]), " ")
	if off == 0 || rel == "" || strings.ContainsRune(rel, 0) {
		return "", fmt.Errorf("%s has no kernel version string", bzImage)
	}
	return rel, nil
}

// current computes the stamp of the inputs now, resolving the modules;
// prev (nil: none) lends the hashes of files that did not change. With
// statOnly the stamp has no hashes: the inputs are only checked.
func (in Inputs) current(prev *Stamp, statOnly bool) (Stamp, *ModuleDB, error) {
	s := Stamp{statOnly: statOnly}
	var err error
	if s.Binary, err = s.hash(in.Binary, prev); err != nil {
		return s, nil, fmt.Errorf("kjump binary: %w", err)
	}
	if in.Config != "" {
		if s.Config, err = s.hash(in.Config, prev); err != nil && !errors.Is(err, os.ErrNotExist) {
			return s, nil, err
		}
	}
	if s.Kernel, err = s.hash(in.Kernel, prev); err != nil {
		return s, nil, fmt.Errorf("helper kernel: %w (install a kernel with CONFIG_KEXEC_JUMP=y there, see docs/setup.md)", err)
	}
	if s.Release, err = KernelRelease(in.Kernel); err != nil {
		return s, nil, err
	}
	// The stamp holds what the helper's modules depend on: modules.dep's
	// content (whatever the targets need, so a stamp written in a chroot
	// that cannot see the target matches one written on the machine) and
	// the resolved module files.
	dir := filepath.Join(in.root(), "lib/modules", s.Release)
	db, err := LoadModuleDB(dir)
	if err != nil {
		if in.RequireModules {
			return s, nil, fmt.Errorf("helper kernel %s needs modules %s: %w", s.Release, strings.Join(in.Modules, ", "), err)
		}
		return s, nil, nil // no module tree: a monolithic helper kernel, drivers built in
	}
	s.DepHash, _ = hashFile(filepath.Join(dir, "modules.dep"))
	if len(db.deps) == 0 && !in.RequireModules {
		return s, nil, nil // depmod found no modules: everything is built in
	}
	if in.root() == "/" && s.Release == runningRelease() {
		db.runningBuiltin = builtinInRunningKernel
	}
	if s.Modules, err = db.Resolve(in.Modules); err != nil {
		return s, nil, err
	}
	return s, db, nil
}

func (in Inputs) root() string {
	if in.ModulesRoot == "" {
		return "/"
	}
	return in.ModulesRoot
}

// Stale returns why initrd does not match the inputs (nil: it is current).
func Stale(initrd string, in Inputs) ([]string, error) {
	why, _, _, err := stale(initrd, in, false)
	return why, err
}

// stale is Stale, also returning the stamp of the inputs now; without
// build, only when there is a stamp to compare it with.
func stale(initrd string, in Inputs, build bool) ([]string, Stamp, *ModuleDB, error) {
	var have *Stamp
	var missing string
	if _, err := os.Stat(initrd); err != nil {
		missing = initrd + " does not exist"
	} else if b, err := os.ReadFile(StampPath(initrd)); err != nil {
		missing = "it was not built by 'hibernate prepare' (no " + StampPath(initrd) + ")"
	} else if err := json.Unmarshal(b, &have); err != nil {
		have, missing = nil, StampPath(initrd)+" is unreadable"
	}
	want, db, err := in.current(have, have == nil && !build)
	if err != nil {
		return nil, want, db, err
	}
	if missing != "" {
		return []string{missing}, want, db, nil
	}
	var why []string
	if have.Binary != want.Binary {
		why = append(why, "the kjump binary changed")
	}
	if have.Config != want.Config {
		why = append(why, "the configuration changed")
	}
	if have.Kernel != want.Kernel || have.Release != want.Release {
		why = append(why, "the helper kernel changed")
	}
	if have.DepHash != want.DepHash || !slices.Equal(have.Modules, want.Modules) {
		why = append(why, "the helper's kernel modules changed")
	}
	return why, want, db, nil
}

// Result says what Build did.
type Result struct {
	Rebuilt bool
	Why     []string // reasons for the rebuild
	Release string
	Modules []string // module files included, load order
	Size    int64
}

// Build writes initrd (atomically: a temporary file renamed over it)
// unless it is current; force rebuilds regardless.
func Build(initrd string, in Inputs, force bool) (Result, error) {
	why, st, db, err := stale(initrd, in, true)
	if err != nil {
		return Result{}, err
	}
	res := Result{Why: why, Release: st.Release, Modules: st.Modules}
	if len(why) == 0 && !force {
		if fi, err := os.Stat(initrd); err == nil {
			res.Size = fi.Size()
		}
		return res, nil
	}
	if err := os.MkdirAll(filepath.Dir(initrd), 0o755); err != nil {
		return res, err
	}
	tmp := initrd + ".tmp"
	w, err := initramfs.Create(tmp)
	if err != nil {
		return res, err
	}
	err = write(w, in, st, db)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncFile(tmp)
	}
	if err != nil {
		os.Remove(tmp)
		return res, fmt.Errorf("building %s: %w", initrd, err)
	}
	// Initramfs first, stamp second: a crash in between leaves a stamp
	// that does not match, so the next prepare rebuilds.
	if err := os.Rename(tmp, initrd); err != nil {
		os.Remove(tmp)
		return res, err
	}
	stamp, _ := json.MarshalIndent(st, "", "  ")
	if err := atomicfile.Write(StampPath(initrd), append(stamp, '\n'), 0o644); err != nil {
		return res, err
	}
	syncDir(filepath.Dir(initrd))
	fi, _ := os.Stat(initrd)
	res.Rebuilt, res.Size = true, fi.Size()
	return res, nil
}

func write(w *initramfs.Writer, in Inputs, st Stamp, db *ModuleDB) error {
	var errs []error
	for _, d := range []string{"dev", "proc", "sys", "tmp", "mnt", "etc/kjump"} {
		errs = append(errs, w.Dir(d, 0o755))
	}
	errs = append(errs, w.CharDev("dev/console", 0o600, 5, 1), w.CopyFile("init", 0o755, in.Binary))
	if st.Config != "" {
		errs = append(errs, w.CopyFile("etc/kjump.conf", 0o644, in.Config))
	}
	var list []string
	for _, m := range st.Modules {
		data, err := readModule(filepath.Join(db.Dir, m))
		if err != nil {
			return err
		}
		// Stored uncompressed where kjump can unpack it, so the helper kernel
		// need not; .ko.xz (Debian 13) stays compressed and the helper asks
		// the kernel to decompress it (finit_module's COMPRESSED_FILE flag).
		name := "lib/modules/" + st.Release + "/" + strings.TrimSuffix(strings.TrimSuffix(m, ".zst"), ".gz")
		errs = append(errs, w.File(name, 0o644, data))
		list = append(list, "/"+name)
	}
	if len(list) > 0 {
		errs = append(errs, w.File(ModuleList, 0o644, []byte(strings.Join(list, "\n")+"\n")))
	}
	return errors.Join(errs...)
}

// readModule returns a module file's ELF contents, decompressing .ko.zst and
// .ko.gz; a .ko.xz is returned as it is (the helper kernel decompresses it,
// which needs CONFIG_MODULE_DECOMPRESS, as distribution kernels that ship
// xz modules have).
func readModule(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.HasSuffix(path, ".zst"):
		d, err := zstd.NewReader(nil)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		return d.DecodeAll(b, nil)
	case strings.HasSuffix(path, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return io.ReadAll(zr)
	}
	return b, nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
