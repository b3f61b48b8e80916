package prepare

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// stockTree is Debian's stock kernel (kernel/stock.sh caches it with its
// modules and depmod's output): a real modular kernel to resolve against.
func stockTree(t *testing.T) (vmlinuz, root, release string) {
	t.Helper()
	cache := os.Getenv("KJUMP_CACHE")
	if cache == "" {
		cache = "/var/cache/kjump"
	}
	m, _ := filepath.Glob(filepath.Join(cache, "stock/*/lib/modules/*/modules.dep"))
	if len(m) == 0 {
		out, err := exec.Command("../../kernel/stock.sh").Output()
		if err != nil {
			t.Fatalf("kernel/stock.sh: %v", err)
		}
		_ = out
		m, _ = filepath.Glob(filepath.Join(cache, "stock/*/lib/modules/*/modules.dep"))
	}
	if len(m) == 0 {
		t.Fatal("no stock kernel modules tree after kernel/stock.sh")
	}
	dir := filepath.Dir(m[0])
	root = filepath.Dir(filepath.Dir(filepath.Dir(dir)))
	return filepath.Join(root, "vmlinuz"), root, filepath.Base(dir)
}

func TestKernelRelease(t *testing.T) {
	vmlinuz, _, rel := stockTree(t)
	got, err := KernelRelease(vmlinuz)
	if err != nil || got != rel {
		t.Fatalf("KernelRelease = %q, %v; want %q", got, err, rel)
	}
	if _, err := KernelRelease("prepare.go"); err == nil {
		t.Fatal("a Go file was taken for a bzImage")
	}
}

func TestResolveStock(t *testing.T) {
	_, root, rel := stockTree(t)
	db, err := LoadModuleDB(filepath.Join(root, "lib/modules", rel))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		names []string
		want  []string // all included; the last loads last
	}{
		{[]string{"virtio_blk"}, []string{"virtio", "virtio_ring", "virtio_blk"}},
		{[]string{"nvme"}, []string{"crc64", "nvme_core", "nvme"}},
		{[]string{"usb-storage"}, []string{"usb_common", "usbcore", "scsi_mod", "usb_storage"}},
		{[]string{"ext4"}, []string{"crc16", "mbcache", "jbd2", "ext4"}},
		{[]string{"virtio_net", "nfsv4"}, []string{"failover", "net_failover", "virtio_net", "sunrpc", "lockd", "nfs", "nfsv4"}},
	} {
		paths, err := db.Resolve(tc.names)
		if err != nil {
			t.Fatalf("%v: %v", tc.names, err)
		}
		var got []string
		for _, p := range paths {
			got = append(got, normName(p))
			if _, err := os.Stat(filepath.Join(db.Dir, p)); err != nil {
				t.Errorf("%v: %s does not exist", tc.names, p)
			}
		}
		// every dependency before its user
		pos := map[string]int{}
		for i, n := range got {
			pos[n] = i
		}
		for _, p := range paths {
			for _, d := range db.deps[p] {
				if pos[normName(d)] > pos[normName(p)] {
					t.Errorf("%v: %s loads after its user %s", tc.names, d, p)
				}
			}
		}
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%v: got %v, want all of %v", tc.names, got, tc.want)
			}
		}
		if got[len(got)-1] != tc.want[len(tc.want)-1] {
			t.Errorf("%v: got %v, want %s last", tc.names, got, tc.want[len(tc.want)-1])
		}
	}
	if _, err := db.Resolve([]string{"no_such_module"}); err == nil || !strings.Contains(err.Error(), `"no_such_module"`) {
		t.Errorf("unknown module: %v", err)
	}
	// Built-in modules need no file.
	if m, err := db.Resolve([]string{"unix"}); err != nil || len(m) != 0 || !db.Builtin("unix") {
		t.Errorf("built-in unix: %v %v", m, err)
	}
}

// cpioNames lists a gzip'd newc archive's entry names and file contents.
func cpioFiles(t *testing.T, path string) map[string][]byte {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(zr)
	out := map[string][]byte{}
	for len(b) >= 110 && string(b[:6]) == "070701" {
		var size, nsize int
		hex := func(s []byte) int {
			n := 0
			for _, c := range s {
				n = n*16 + strings.IndexByte("0123456789abcdef", c|0x20)
			}
			return n
		}
		size, nsize = hex(b[54:62]), hex(b[94:102])
		name := string(b[110 : 110+nsize-1])
		off := (110 + nsize + 3) &^ 3
		out[name] = b[off : off+size]
		b = b[(off+size+3)&^3:]
		if name == "TRAILER!!!" {
			break
		}
	}
	return out
}

func TestBuild(t *testing.T) {
	vmlinuz, root, rel := stockTree(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "hibernate")
	conf := filepath.Join(dir, "kjump.conf")
	os.WriteFile(bin, []byte("\x7fELF static binary"), 0o755)
	os.WriteFile(conf, []byte("targets = [\"/dev/vda\"]\n"), 0o644)
	in := Inputs{Binary: bin, Config: conf, Kernel: vmlinuz, ModulesRoot: root, Modules: []string{"virtio_blk", "ext4"}}
	initrd := filepath.Join(dir, "boot/kjump/helper.cpio.gz")

	res, err := Build(initrd, in, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Rebuilt || res.Release != rel || len(res.Modules) != 7 {
		t.Fatalf("%+v", res)
	}
	files := cpioFiles(t, initrd)
	if !bytes.Equal(files["init"], []byte("\x7fELF static binary")) || string(files["etc/kjump.conf"]) != "targets = [\"/dev/vda\"]\n" {
		t.Fatalf("init or config missing: %v", keys(files))
	}
	list := strings.Fields(string(files[ModuleList]))
	if len(list) != 7 || !strings.HasSuffix(list[6], "/ext4.ko") {
		t.Fatalf("module list %v", list)
	}
	for _, p := range list {
		if data := files[strings.TrimPrefix(p, "/")]; !bytes.HasPrefix(data, []byte("\x7fELF")) {
			t.Errorf("%s is not an ELF module in the archive", p)
		}
	}

	// Current: nothing to do. Each input change is noticed.
	if res, err := Build(initrd, in, false); err != nil || res.Rebuilt {
		t.Fatalf("rebuilt a current initramfs: %+v %v", res, err)
	}
	os.WriteFile(conf, []byte("targets = [\"/dev/vdb\"]\n"), 0o644)
	if why, _ := Stale(initrd, in); !slices.Equal(why, []string{"the configuration changed"}) {
		t.Fatalf("stale after config change: %v", why)
	}
	os.WriteFile(bin, []byte("\x7fELF new binary"), 0o755)
	in.Modules = []string{"virtio_blk"}
	why, _ := Stale(initrd, in)
	if len(why) != 3 {
		t.Fatalf("stale after binary, config and module change: %v", why)
	}
	if res, err := Build(initrd, in, false); err != nil || !res.Rebuilt || len(res.Modules) != 3 {
		t.Fatalf("%+v %v", res, err)
	}
	if why, _ := Stale(initrd, in); len(why) != 0 {
		t.Fatalf("stale right after a build: %v", why)
	}
	if _, err := os.Stat(initrd + ".tmp"); err == nil {
		t.Fatal("temporary file left behind")
	}

	// A monolithic kernel (no modules directory) is fine without modules.
	in.ModulesRoot = t.TempDir()
	if res, err := Build(initrd, in, true); err != nil || len(res.Modules) != 0 {
		t.Fatalf("monolithic: %+v %v", res, err)
	}
	in.RequireModules = true
	if _, err := Build(initrd, in, true); err == nil || !strings.Contains(err.Error(), "depmod") {
		t.Fatalf("missing modules tree: %v", err)
	}
}

// A monolithic helper kernel needs no module tree whatever drivers the
// target needs, and the stamp does not depend on which drivers those are:
// 'hibernate prepare' in a chroot, which cannot see the target, and on the
// machine, which can, agree that the initramfs is current.
func TestStampIndependentOfTargetDrivers(t *testing.T) {
	vmlinuz, stockRoot, rel := stockTree(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "hibernate")
	os.WriteFile(bin, []byte("\x7fELF static binary"), 0o755)
	initrd := filepath.Join(dir, "helper.cpio.gz")
	chroot := Inputs{Binary: bin, Kernel: vmlinuz, ModulesRoot: t.TempDir()} // no lib/modules at all
	machine := chroot
	machine.Modules = []string{"virtio_blk", "virtio_pci", "ext4"}
	if res, err := Build(initrd, chroot, false); err != nil || !res.Rebuilt || len(res.Modules) != 0 {
		t.Fatalf("no module tree: %+v %v", res, err)
	}
	if why, err := Stale(initrd, machine); err != nil || len(why) != 0 {
		t.Fatalf("no module tree, drivers of the target: stale %v %v", why, err)
	}

	// The tree update-initramfs needs and depmod fills with nothing.
	mods := filepath.Join(chroot.ModulesRoot, "lib/modules", rel)
	os.MkdirAll(mods, 0o755)
	os.WriteFile(filepath.Join(mods, "modules.dep"), nil, 0o644)
	if why, _ := Stale(initrd, machine); !slices.Equal(why, []string{"the helper's kernel modules changed"}) {
		t.Fatalf("modules.dep appeared: %v", why)
	}
	if res, err := Build(initrd, chroot, false); err != nil || !res.Rebuilt || len(res.Modules) != 0 {
		t.Fatalf("empty modules.dep: %+v %v", res, err)
	}
	machine.ModulesRoot = chroot.ModulesRoot
	if why, err := Stale(initrd, machine); err != nil || len(why) != 0 {
		t.Fatalf("empty modules.dep, drivers of the target: stale %v %v", why, err)
	}
	os.WriteFile(filepath.Join(mods, "modules.dep"), []byte("kernel/fs/foo.ko:\n"), 0o644)
	if why, _ := Stale(initrd, chroot); !slices.Equal(why, []string{"the helper's kernel modules changed"}) {
		t.Fatalf("modules.dep changed: %v", why)
	}

	// A modular kernel: built-in drivers resolve to no files either way.
	chroot.ModulesRoot, machine.ModulesRoot = stockRoot, stockRoot
	machine.Modules = []string{"unix"}
	if _, err := Build(initrd, chroot, false); err != nil {
		t.Fatal(err)
	}
	if why, err := Stale(initrd, machine); err != nil || len(why) != 0 {
		t.Fatalf("modular kernel, built-in driver: stale %v %v", why, err)
	}
	// ... but a driver that is a module must go in: rebuild.
	machine.Modules = []string{"virtio_blk"}
	if why, _ := Stale(initrd, machine); !slices.Equal(why, []string{"the helper's kernel modules changed"}) {
		t.Fatalf("modular driver needed: %v", why)
	}
}

// Without modules.builtin, a driver the running kernel (same release) has
// built in shows as /sys/module/NAME without initstate.
func TestBuiltinInRunningKernel(t *testing.T) {
	defer func(d string) { SysModule = d }(SysModule)
	SysModule = t.TempDir()
	os.MkdirAll(filepath.Join(SysModule, "virtio_blk/parameters"), 0o755)
	os.MkdirAll(filepath.Join(SysModule, "ext4"), 0o755)
	os.WriteFile(filepath.Join(SysModule, "ext4/initstate"), []byte("live\n"), 0o444)
	for name, want := range map[string]bool{"virtio_blk": true, "virtio-blk": true, "ext4": false, "nvme": false} {
		if got := builtinInRunningKernel(name); got != want {
			t.Errorf("%s: built in %v, want %v", name, got, want)
		}
	}
	db := &ModuleDB{Dir: "/x", deps: map[string][]string{"a.ko": nil}, byName: map[string]string{"a": "a.ko"},
		builtin: map[string]bool{}, softPre: map[string][]string{}, runningBuiltin: builtinInRunningKernel}
	if m, err := db.Resolve([]string{"virtio_blk", "a"}); err != nil || !slices.Equal(m, []string{"a.ko"}) {
		t.Errorf("resolve: %v %v", m, err)
	}
	if _, err := db.Resolve([]string{"ext4"}); err == nil {
		t.Error("a loadable module missing from modules.dep was taken as built in")
	}
}

func keys(m map[string][]byte) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// DeviceModules follows the sysfs device path up to the bus, collecting
// each level's driver module: the layout of a partition on virtio-blk.
func TestDeviceModules(t *testing.T) {
	sys := t.TempDir()
	mod := func(name string) string { return filepath.Join(sys, "module", name) }
	dev := filepath.Join(sys, "devices/pci0000:00/0000:00:04.0/virtio1/block/vda/vda2")
	for _, d := range []string{dev, mod("virtio_blk"), mod("virtio_pci"), filepath.Join(sys, "bus/virtio/drivers/virtio_blk"), filepath.Join(sys, "bus/pci/drivers/virtio-pci")} {
		os.MkdirAll(d, 0o755)
	}
	os.Symlink(mod("virtio_blk"), filepath.Join(sys, "bus/virtio/drivers/virtio_blk/module"))
	os.Symlink(mod("virtio_pci"), filepath.Join(sys, "bus/pci/drivers/virtio-pci/module"))
	os.Symlink(filepath.Join(sys, "bus/virtio/drivers/virtio_blk"), filepath.Join(sys, "devices/pci0000:00/0000:00:04.0/virtio1/driver"))
	os.Symlink(filepath.Join(sys, "bus/pci/drivers/virtio-pci"), filepath.Join(sys, "devices/pci0000:00/0000:00:04.0/driver"))
	os.Symlink(dev, filepath.Join(sys, "254:2"))
	if got := DeviceModules(filepath.Join(sys, "254:2")); !slices.Equal(got, []string{"virtio_blk", "virtio_pci"}) {
		t.Fatalf("got %v", got)
	}
}

// The stamp check hashes a file again only when its size or modification
// time changed, or when it was modified just before it was last hashed.
func TestStaleReusesHashes(t *testing.T) {
	vmlinuz, root, _ := stockTree(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "hibernate")
	os.WriteFile(bin, []byte("\x7fELF static binary"), 0o755)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(bin, old, old)
	in := Inputs{Binary: bin, Kernel: vmlinuz, ModulesRoot: root, Modules: []string{"virtio_blk"}}
	initrd := filepath.Join(dir, "helper.cpio.gz")
	if _, err := Build(initrd, in, false); err != nil {
		t.Fatal(err)
	}
	// Same size, same time: taken as unchanged without reading it.
	os.WriteFile(bin, []byte("\x7fELF static BINARY"), 0o755)
	os.Chtimes(bin, old, old)
	if why, err := Stale(initrd, in); err != nil || len(why) != 0 {
		t.Fatalf("unchanged size and time: %v %v", why, err)
	}
	// A new time is a change, whatever the size.
	later := old.Add(time.Minute)
	os.Chtimes(bin, later, later)
	if why, _ := Stale(initrd, in); !slices.Equal(why, []string{"the kjump binary changed"}) {
		t.Fatalf("after a change: %v", why)
	}
	// Modified just before being hashed: hashed again every time.
	if _, err := Build(initrd, in, false); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bin, []byte("\x7fELF racy binary!!"), 0o755)
	if _, err := Build(initrd, in, false); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(bin)
	os.WriteFile(bin, []byte("\x7fELF racy BINARY!!"), 0o755)
	os.Chtimes(bin, st.ModTime(), st.ModTime())
	if why, _ := Stale(initrd, in); !slices.Equal(why, []string{"the kjump binary changed"}) {
		t.Fatalf("a change within the time's resolution of the last hash went unseen: %v", why)
	}
}
