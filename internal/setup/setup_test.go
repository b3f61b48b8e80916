package setup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/kjump/kjump/internal/bootonce"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/layout"
)

const release = "6.1.192"

// fakeBzImage is a bzImage header as kjump reads it (setup header fields
// at their boot.rst offsets) with its version string, and a payload.
func fakeBzImage(version string, initSize uint32) []byte {
	b := make([]byte, 5*512+4096)
	le := binary.LittleEndian
	b[0x1f1] = 4
	le.PutUint16(b[0x1fe:], 0xaa55)
	b[0x200], b[0x201] = 0xeb, 0x6a
	copy(b[0x202:], "HdrS")
	le.PutUint16(b[0x206:], 0x020f)
	le.PutUint16(b[0x20e:], 0x300) // kernel_version, relative to 0x200
	b[0x211] = 1
	le.PutUint32(b[0x230:], 0x200000)
	b[0x234] = 1
	le.PutUint16(b[0x236:], 1|2)
	le.PutUint32(b[0x238:], 2047)
	le.PutUint32(b[0x260:], initSize)
	copy(b[0x500:], version+" (builder@host) #1 SMP\x00")
	return b
}

const kernelConfig = `CONFIG_KEXEC=y
CONFIG_KEXEC_JUMP=y
CONFIG_CRASH_DUMP=y
CONFIG_PROC_VMCORE=y
CONFIG_DEVMEM=y
CONFIG_RELOCATABLE=y
CONFIG_KALLSYMS_ALL=y
`

// Debian's grub-mkconfig reads /etc/default/grub.d; upstream's does not.
const debianMkconfig = "#!/bin/sh\n. /etc/default/grub\nfor x in ${sysconfdir}/default/grub.d/*.cfg ; do . \"$x\"; done\n"

// fakeRoot is a Debian-like system with GRUB, initramfs-tools, systemd
// and kjump's package installed, booted without a reservation.
func fakeRoot(t *testing.T) string {
	t.Helper()
	r := t.TempDir()
	iomem, err := os.ReadFile("../layout/testdata/qemu-1g.iomem")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"proc/sys/kernel/osrelease":             release + "\n",
		"proc/cmdline":                          "BOOT_IMAGE=/boot/vmlinuz-" + release + " root=UUID=1234 ro console=ttyS0\n",
		"proc/iomem":                            string(iomem),
		"sys/kernel/kexec_loaded":               "0\n",
		"etc/os-release":                        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
		"boot/config-" + release:                kernelConfig,
		"boot/vmlinuz-" + release:               string(fakeBzImage(release, 43<<20)),
		"boot/initrd.img-" + release:            "boot initramfs before setup",
		"boot/grub/grub.cfg":                    "grub.cfg before setup\n",
		"etc/default/grub":                      "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX=\"console=ttyS0\"\n",
		"etc/default/grub.d/other.cfg":          "GRUB_TIMEOUT=0\n",
		"usr/sbin/grub-mkconfig":                debianMkconfig,
		"usr/sbin/update-grub":                  "#!/bin/sh\n",
		"usr/sbin/update-initramfs":             "#!/bin/sh\n",
		"usr/bin/hibernate":                     strings.Repeat("k", 9<<20),
		"usr/share/initramfs-tools/hooks/kjump": "#!/bin/sh\n",
		"usr/lib/systemd/system/systemd-hibernate.service.d/kjump.conf": "[Service]\n",
		"var/lib/dpkg/status": "",
	}
	for _, u := range Units { // the package's own unit files
		b, err := os.ReadFile(filepath.Join("../../systemd", u))
		if err != nil {
			t.Fatal(err)
		}
		files["usr/lib/systemd/system/"+u] = string(b)
	}
	for p, c := range files {
		mode := fs.FileMode(0o644)
		if strings.Contains(p, "bin/") {
			mode = 0o755
		}
		if err := os.MkdirAll(filepath.Join(r, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r, p), []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// fakeSystem runs the commands setup runs against root: update-grub
// sources the GRUB settings with the real shell (as grub-mkconfig does)
// and writes the linux line, then runs the /etc/grub.d scripts;
// update-initramfs takes the helper along.
type fakeSystem struct {
	root string
	ran  []string
	fail string // command that fails
}

func (f *fakeSystem) run(name string, args ...string) error {
	f.ran = append(f.ran, strings.Join(append([]string{name}, args...), " "))
	if name == f.fail {
		return fmt.Errorf("%s: exit status 1", name)
	}
	switch name {
	case "update-grub":
		script := `. "$R/etc/default/grub"
for x in "$R"/etc/default/grub.d/*.cfg; do . "$x"; done
printf 'linux /boot/vmlinuz-` + release + ` root=UUID=1234 ro %s\n' "$GRUB_CMDLINE_LINUX" >"$R/boot/grub/grub.cfg"
export GRUB_DEFAULT
for x in "$R"/etc/grub.d/*; do if [ -x "$x" ]; then "$x" >>"$R/boot/grub/grub.cfg"; fi; done`
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = append(os.Environ(), "R="+f.root)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	case "update-initramfs":
		helper, _ := os.ReadFile(filepath.Join(f.root, "boot/kjump/helper.bzImage"))
		initrd, _ := os.ReadFile(filepath.Join(f.root, "boot/kjump/helper.cpio.gz"))
		return os.WriteFile(filepath.Join(f.root, "boot/initrd.img-"+release), []byte(fmt.Sprintf("boot initramfs with helper %x and %x", sha256.Sum256(helper), sha256.Sum256(initrd))), 0o644)
	case "kernel-install":
		cl, _ := os.ReadFile(filepath.Join(f.root, "etc/kernel/cmdline"))
		return os.WriteFile(filepath.Join(f.root, "boot/loader/entries/machine-"+release+".conf"), []byte("title Linux\nversion "+release+"\noptions "+string(cl)), 0o644)
	}
	return fmt.Errorf("unexpected command %s", name)
}

// options is setup as 'hibernate setup' runs it, below root; prepare
// writes the helper initramfs only when its kernel changed.
func options(root string, f *fakeSystem, out *bytes.Buffer) Options {
	initrd := "/boot/kjump/helper.cpio.gz"
	want := func() []byte {
		k, _ := os.ReadFile(filepath.Join(root, "boot/kjump/helper.bzImage"))
		return []byte(fmt.Sprintf("initramfs for %x", sha256.Sum256(k)))
	}
	return Options{
		Root: root, Out: out, Run: f.run, CPUs: 2,
		HelperKernel: "/boot/kjump/helper.bzImage", HelperInitrd: initrd, MinReserve: 128 << 20,
		Binary: "/usr/bin/hibernate", Targets: []string{"/dev/vdb"},
		Prepare: func() (string, error) {
			if _, err := os.Stat(filepath.Join(root, "boot/kjump/helper.bzImage")); err != nil {
				return "", err
			}
			old, _ := os.ReadFile(filepath.Join(root, initrd))
			if bytes.Equal(old, want()) {
				return initrd + " is current", nil
			}
			if err := os.WriteFile(filepath.Join(root, initrd), want(), 0o644); err != nil {
				return "", err
			}
			return "wrote " + initrd, os.WriteFile(filepath.Join(root, initrd+".stamp"), []byte("{}"), 0o644)
		},
		PrepareNeeded: func() bool {
			old, _ := os.ReadFile(filepath.Join(root, initrd))
			return !bytes.Equal(old, want())
		},
	}
}

// tree is every file, link and directory below root with its content.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			m[rel] = "link " + l
		case d.IsDir():
			m[rel] = fmt.Sprintf("dir %v", fi.Mode())
		default:
			b, _ := os.ReadFile(p)
			m[rel] = fmt.Sprintf("%v %x", fi.Mode(), sha256.Sum256(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func diffTrees(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if b[k] != v {
			d = append(d, fmt.Sprintf("%s: %q -> %q", k, v, b[k]))
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			d = append(d, fmt.Sprintf("%s: new %q", k, v))
		}
	}
	return d
}

func read(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDryRunChangesNothing(t *testing.T) {
	root := fakeRoot(t)
	before := tree(t, root)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	o := options(root, f, &out)
	o.DryRun = true
	if err := Setup(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("dry run changed files: %v", d)
	}
	if len(f.ran) > 0 {
		t.Fatalf("dry run ran %v", f.ran)
	}
	for _, want := range []string{
		"reservation: memmap=160M$0x15000000",
		"would create  /etc/default/grub.d/kjump.cfg",
		"would change  /boot/grub/grub.cfg (update-grub)",
		"would create  /boot/kjump/helper.bzImage",
		"would create  /boot/kjump/helper.cpio.gz (hibernate prepare)",
		"would create  /boot/kjump/helper.cpio.gz.stamp (hibernate prepare)",
		"would change  /boot/initrd.img-" + release + " (update-initramfs)",
		"would create  /etc/systemd/system/multi-user.target.wants/kjump-prepare.service",
		"would create  /etc/systemd/system/multi-user.target.wants/kjump-preload.service",
		"would create  /etc/systemd/system/multi-user.target.wants/kjump-canhibernate.service",
		"would create  /etc/systemd/system/timers.target.wants/kjump-canhibernate.timer",
		"would create  /etc/systemd/system/paths.target.wants/kjump-canhibernate.path",
		"dry run: 12 file(s) would change; nothing was changed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run output lacks %q", want)
		}
	}
}

func TestSetupIdempotentAndUndo(t *testing.T) {
	root := fakeRoot(t)
	before := tree(t, root)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	// GRUB: the drop-in escapes the dollar so that grub.cfg has \$ (the
	// shell turned \\\$ into \$) and the kernel gets memmap=160M$0x15000000.
	if got := read(t, root, "etc/default/grub.d/kjump.cfg"); !strings.Contains(got, `GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX} memmap=160M\\\$0x15000000"`) {
		t.Errorf("drop-in:\n%s", got)
	}
	if got := read(t, root, "boot/grub/grub.cfg"); !strings.HasPrefix(got, "linux /boot/vmlinuz-"+release+" root=UUID=1234 ro console=ttyS0 memmap=160M\\$0x15000000\n") {
		t.Errorf("grub.cfg: %q", got)
	}
	// The direct restore's block, with GRUB_DEFAULT as its fallback.
	if fi, err := os.Stat(filepath.Join(root, bootonce.GrubScript)); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("%s: %v %v, want an executable script", bootonce.GrubScript, fi, err)
	}
	if got := read(t, root, "boot/grub/grub.cfg"); !strings.Contains(got, `set fallback="0"`) || bootonce.FindGRUB(root) == nil {
		t.Errorf("grub.cfg lacks the direct restore block: %q", got)
	}
	if read(t, root, "boot/kjump/helper.bzImage") != read(t, root, "boot/vmlinuz-"+release) {
		t.Error("the helper kernel is not the running kernel")
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/kjump-preload.service")); err != nil || l != "/usr/lib/systemd/system/kjump-preload.service" {
		t.Errorf("preload link: %q %v", l, err)
	}
	if !strings.Contains(read(t, root, "boot/initrd.img-"+release), "with helper") {
		t.Error("the boot initramfs was not rebuilt")
	}
	if fi, err := os.Stat(filepath.Join(root, StateDir)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("state directory: %v %v", fi, err)
	}
	wantRan := []string{"update-grub", "update-initramfs -u -k " + release}
	if !reflect.DeepEqual(f.ran, wantRan) {
		t.Errorf("ran %q, want %q", f.ran, wantRan)
	}
	if l, err := os.Readlink(filepath.Join(root, "etc/systemd/system/paths.target.wants/kjump-canhibernate.path")); err != nil || l != "/usr/lib/systemd/system/kjump-canhibernate.path" {
		t.Errorf("canhibernate path link: %q %v", l, err)
	}
	if !strings.Contains(out.String(), "changed 12 file(s)") || !strings.Contains(out.String(), "next boot: GRUB passes memmap=160M$0x15000000") {
		t.Errorf("summary:\n%s", out.String())
	}

	// A second run changes nothing and runs nothing.
	after := tree(t, root)
	f.ran = nil
	out.Reset()
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d := diffTrees(after, tree(t, root)); len(d) > 0 || len(f.ran) > 0 {
		t.Fatalf("second setup changed %v, ran %v\n%s", d, f.ran, out.String())
	}
	if !strings.Contains(out.String(), "nothing to change") || !strings.Contains(out.String(), "memmap=160M$0x15000000 (/etc/default/grub.d/kjump.cfg), 160 MiB: kept") {
		t.Errorf("second run:\n%s", out.String())
	}

	// Undo, dry first: lists, changes nothing.
	out.Reset()
	o := options(root, f, &out)
	o.DryRun = true
	if err := Undo(o); err != nil {
		t.Fatal(err)
	}
	if d := diffTrees(after, tree(t, root)); len(d) > 0 || !strings.Contains(out.String(), "would restore /boot/grub/grub.cfg") {
		t.Fatalf("undo --dry-run changed %v\n%s", d, out.String())
	}
	out.Reset()
	if err := Undo(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("after undo the tree differs from before setup: %v", d)
	}
	out.Reset()
	if err := Undo(options(root, f, &out)); err != nil || !strings.Contains(out.String(), "nothing to undo") {
		t.Fatalf("second undo: %v %s", err, out.String())
	}
}

// A kernel update that rewrote grub.cfg after setup: undo regenerates it
// (without kjump's drop-in) instead of restoring bytes that lack the new
// kernel; kjump's own files go whatever they hold.
func TestUndoRegeneratesWhatChangedSince(t *testing.T) {
	root := fakeRoot(t)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	os.WriteFile(filepath.Join(root, "boot/grub/grub.cfg"), []byte("regenerated for a new kernel memmap=160M\\$0x15000000\n"), 0o644)
	os.WriteFile(filepath.Join(root, "boot/kjump/helper.cpio.gz"), []byte("rebuilt at boot by kjump-prepare"), 0o644)
	f.ran = nil
	out.Reset()
	if err := Undo(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !reflect.DeepEqual(f.ran, []string{"update-grub"}) || !strings.Contains(out.String(), "changed again since setup (rewritten): run update-grub instead of restoring it") {
		t.Fatalf("ran %v\n%s", f.ran, out.String())
	}
	if got := read(t, root, "boot/grub/grub.cfg"); strings.Contains(got, "memmap") {
		t.Errorf("grub.cfg still reserves: %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "boot/kjump")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("/boot/kjump left behind: %v", err)
	}
}

// A failed update-grub stops setup; what it did so far is undoable.
func TestFailedCommandIsUndoable(t *testing.T) {
	root := fakeRoot(t)
	before := tree(t, root)
	f := &fakeSystem{root: root, fail: "update-grub"}
	var out bytes.Buffer
	err := Setup(options(root, f, &out))
	if err == nil || !strings.Contains(err.Error(), "update-grub: exit status 1") || !strings.Contains(err.Error(), "'hibernate setup --undo' puts it back") {
		t.Fatalf("got %v", err)
	}
	if err := Undo(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("after undo: %v", d)
	}
}

// update-grub that does not carry the drop-in's line into grub.cfg (a
// GRUB_CMDLINE_LINUX set again after it) is caught, not trusted.
func TestGrubCfgVerified(t *testing.T) {
	root := fakeRoot(t)
	os.WriteFile(filepath.Join(root, "etc/default/grub.d/zz-override.cfg"), []byte("GRUB_CMDLINE_LINUX=\"console=ttyS0\"\n"), 0o644)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	err := Setup(options(root, f, &out))
	if err == nil || !strings.Contains(err.Error(), `update-grub did not put memmap=160M\$0x15000000 into /boot/grub/grub.cfg`) {
		t.Fatalf("got %v\n%s", err, out.String())
	}
}

func TestKernelProblemsAllAtOnce(t *testing.T) {
	for _, tc := range []struct {
		osRelease, advice string
	}{
		{"ID=debian\nVERSION_ID=\"13\"\n", "see docs/setup.md, 'Kernels without KEXEC_JUMP'"},
		{"ID=opensuse-tumbleweed\nID_LIKE=\"opensuse suse\"\n", "openSUSE and SLE are built without CONFIG_KEXEC_JUMP"},
		{"ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n", "boot Ubuntu's generic kernel"},
		{"ID=fedora\nVERSION_ID=41\n", "Fedora, RHEL and CentOS Stream sets CONFIG_KEXEC_JUMP=y"},
		{"ID=centos\nID_LIKE=\"rhel fedora\"\n", "Fedora, RHEL and CentOS Stream"},
		{"ID=arch\n", "boot Arch's stock kernel"},
		{"ID=nixos\n", "NixOS's default kernel"},
	} {
		root := fakeRoot(t)
		os.WriteFile(filepath.Join(root, "etc/os-release"), []byte(tc.osRelease), 0o644)
		os.WriteFile(filepath.Join(root, "boot/config-"+release), []byte("# CONFIG_KEXEC_JUMP is not set\nCONFIG_KEXEC=y\nCONFIG_RELOCATABLE=y\n"), 0o644)
		os.MkdirAll(filepath.Join(root, "sys/kernel/security"), 0o755)
		os.WriteFile(filepath.Join(root, "sys/kernel/security/lockdown"), []byte("none [integrity] confidentiality\n"), 0o644)
		before := tree(t, root)
		var out bytes.Buffer
		o := options(root, &fakeSystem{root: root}, &out)
		err := Setup(o)
		if !errors.Is(err, ErrKernel) || !strings.Contains(err.Error(), "nothing was changed") {
			t.Fatalf("got %v", err)
		}
		for _, want := range []string{"CONFIG_KEXEC_JUMP is not set", "CONFIG_CRASH_DUMP is not set", "CONFIG_PROC_VMCORE is not set",
			"CONFIG_DEVMEM is not set", "CONFIG_KALLSYMS_ALL is not set", `kernel lockdown is "integrity"`, "Secure Boot", tc.advice} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%s: no %q in\n%s", tc.osRelease, want, out.String())
			}
		}
		if strings.Contains(out.String(), "CONFIG_KEXEC is not set") || strings.Contains(out.String(), "CONFIG_RELOCATABLE is not set") {
			t.Errorf("options that are set reported missing:\n%s", out.String())
		}
		if d := diffTrees(before, tree(t, root)); len(d) > 0 {
			t.Fatalf("changed %v", d)
		}
	}
}

func TestKallsymsAllNotNeededFrom613(t *testing.T) {
	root := fakeRoot(t)
	rel := "6.13.2-arch1-1"
	os.WriteFile(filepath.Join(root, "proc/sys/kernel/osrelease"), []byte(rel+"\n"), 0o644)
	os.WriteFile(filepath.Join(root, "boot/config-"+rel), []byte(strings.Replace(kernelConfig, "CONFIG_KALLSYMS_ALL=y\n", "", 1)), 0o644)
	k, err := (&Options{Root: root}).readKernel()
	if err != nil || len(k.Missing) != 0 {
		t.Fatalf("%v %+v", err, k.Missing)
	}
}

// A reservation the user wrote into /etc/default/grub is kept when large
// enough and named when too small; setup never edits that file.
func TestUserReservation(t *testing.T) {
	root := fakeRoot(t)
	os.WriteFile(filepath.Join(root, "etc/default/grub"), []byte("GRUB_CMDLINE_LINUX=\"console=ttyS0 memmap=512M\\\\\\$0x20000000\"\n"), 0o644)
	var out bytes.Buffer
	f := &fakeSystem{root: root}
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "reservation: memmap=512M$0x20000000 in /etc/default/grub, 512 MiB (the helper needs 160 MiB): kept") {
		t.Errorf("output:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(root, GrubDropIn)); err == nil {
		t.Error("setup wrote its own reservation next to the user's")
	}
	// grub.cfg is regenerated only for the direct restore's block.
	if b, _ := os.ReadFile(filepath.Join(root, "boot/grub/grub.cfg")); !strings.Contains(string(b), "memmap=512M\\$0x20000000") || bootonce.FindGRUB(root) == nil {
		t.Errorf("grub.cfg lacks the user's reservation or the direct restore block:\n%s", b)
	}

	// A commented-out line reserves nothing.
	root = fakeRoot(t)
	os.WriteFile(filepath.Join(root, "etc/default/grub"), []byte("#GRUB_CMDLINE_LINUX=\"memmap=512M\\\\\\$0x20000000\"\nGRUB_CMDLINE_LINUX=\"\"\n"), 0o644)
	out.Reset()
	if err := Setup(options(root, &fakeSystem{root: root}, &out)); err != nil || !strings.Contains(read(t, root, "boot/grub/grub.cfg"), `memmap=160M\$0x15000000`) {
		t.Fatalf("%v\n%s", err, out.String())
	}

	root = fakeRoot(t)
	os.WriteFile(filepath.Join(root, "etc/default/grub"), []byte("GRUB_CMDLINE_LINUX=\"memmap=64M\\\\\\$0x20000000\"\n"), 0o644)
	out.Reset()
	err := Setup(options(root, &fakeSystem{root: root}, &out))
	if err == nil || !strings.Contains(err.Error(), "/etc/default/grub reserves 64 MiB with memmap=64M$0x20000000, but the helper needs 160 MiB") {
		t.Fatalf("got %v", err)
	}
}

// With a reservation on this boot's command line (typed at the GRUB
// prompt) setup makes that one permanent instead of choosing another.
func TestRunningReservationKept(t *testing.T) {
	root := fakeRoot(t)
	os.WriteFile(filepath.Join(root, "proc/cmdline"), []byte("root=UUID=1234 ro memmap=256M$0x30000000\n"), 0o644)
	iomem := strings.Replace(read(t, root, "proc/iomem"), "30000000-37ffffff : Reserved\n38000000-3ffdffff : System RAM", "30000000-3fffffff : Reserved\n40000000-7ffdffff : System RAM", 1)
	os.WriteFile(filepath.Join(root, "proc/iomem"), []byte(iomem), 0o644)
	var out bytes.Buffer
	if err := Setup(options(root, &fakeSystem{root: root}, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(read(t, root, "boot/grub/grub.cfg"), `memmap=256M\$0x30000000`) || !strings.Contains(out.String(), "is active on this boot") {
		t.Fatalf("grub.cfg %q\n%s", read(t, root, "boot/grub/grub.cfg"), out.String())
	}
}

// systemd-boot through kernel-install: /etc/kernel/cmdline from this
// boot's options plus the reservation, the entry re-generated; undo
// removes the file and restores the entry.
func TestKernelInstall(t *testing.T) {
	root := fakeRoot(t)
	for _, p := range []string{"etc/default/grub", "usr/sbin/grub-mkconfig", "usr/sbin/update-grub"} {
		os.Remove(filepath.Join(root, p))
	}
	os.MkdirAll(filepath.Join(root, "boot/loader/entries"), 0o755)
	os.WriteFile(filepath.Join(root, "boot/loader/entries/machine-"+release+".conf"), []byte("title Linux\noptions root=UUID=1234 ro console=ttyS0\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr/bin/kernel-install"), []byte("#!/bin/sh\n"), 0o755)
	before := tree(t, root)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := read(t, root, "etc/kernel/cmdline"); got != "root=UUID=1234 ro console=ttyS0 memmap=160M$0x15000000\n" {
		t.Errorf("/etc/kernel/cmdline: %q", got)
	}
	if !contains(f.ran, "kernel-install add "+release+" /boot/vmlinuz-"+release) {
		t.Errorf("ran %v", f.ran)
	}
	if err := Undo(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("after undo: %v", d)
	}
}

// An edit of /etc/kernel/cmdline after setup is not overwritten by undo.
func TestUndoLeavesLaterEdits(t *testing.T) {
	root := fakeRoot(t)
	for _, p := range []string{"etc/default/grub", "usr/sbin/grub-mkconfig", "usr/sbin/update-grub"} {
		os.Remove(filepath.Join(root, p))
	}
	os.MkdirAll(filepath.Join(root, "boot/loader/entries"), 0o755)
	os.MkdirAll(filepath.Join(root, "etc/kernel"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/kernel/cmdline"), []byte("root=UUID=1234 quiet\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr/bin/kernel-install"), []byte("#!/bin/sh\n"), 0o755)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if got := read(t, root, "etc/kernel/cmdline"); got != "root=UUID=1234 quiet memmap=160M$0x15000000\n" {
		t.Errorf("/etc/kernel/cmdline: %q", got)
	}
	os.WriteFile(filepath.Join(root, "etc/kernel/cmdline"), []byte("root=UUID=1234 quiet splash memmap=160M$0x15000000\n"), 0o644)
	out.Reset()
	err := Undo(options(root, f, &out))
	if err == nil || !strings.Contains(err.Error(), "/etc/kernel/cmdline") || !strings.Contains(out.String(), "its content before setup is in /var/lib/kjump/setup/files/") {
		t.Fatalf("got %v\n%s", err, out.String())
	}
	if got := read(t, root, "etc/kernel/cmdline"); !strings.Contains(got, "splash") {
		t.Errorf("the later edit was lost: %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, StateDir, "manifest.json")); err != nil {
		t.Errorf("manifest gone although a file was left: %v", err)
	}
}

// Without a boot loader setup knows, it prints the line (with GRUB's
// escaping) and still does the rest.
func TestUnknownBootLoader(t *testing.T) {
	root := fakeRoot(t)
	// Upstream GRUB's grub-mkconfig does not read /etc/default/grub.d.
	os.WriteFile(filepath.Join(root, "usr/sbin/grub-mkconfig"), []byte("#!/bin/sh\n. /etc/default/grub\n"), 0o755)
	var out bytes.Buffer
	f := &fakeSystem{root: root}
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"add this to the kernel command line yourself, then reboot:\n    memmap=160M$0x15000000\n", `GRUB_CMDLINE_LINUX="... memmap=160M\\\$0x15000000"`, "created       /boot/kjump/helper.bzImage"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(root, GrubDropIn)); err == nil {
		t.Error("drop-in written for a GRUB that does not read it")
	}
}

// A corrupt manifest is refused before anything is changed.
func TestCorruptManifest(t *testing.T) {
	root := fakeRoot(t)
	os.MkdirAll(filepath.Join(root, StateDir), 0o700)
	os.WriteFile(filepath.Join(root, StateDir, "manifest.json"), []byte("{\"version\": 1, \"entries\": [tru"), 0o600)
	before := tree(t, root)
	var out bytes.Buffer
	for _, fn := range []func(Options) error{Setup, Undo} {
		if err := fn(options(root, &fakeSystem{root: root}, &out)); err == nil || !strings.Contains(err.Error(), "is not a manifest of hibernate setup") {
			t.Fatalf("got %v", err)
		}
	}
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("changed %v", d)
	}
}

func TestKernelCmdline(t *testing.T) {
	r := layoutReservation(t, "memmap=160M$0x15000000")
	for _, tc := range []struct{ existing, proc, want string }{
		{"", "BOOT_IMAGE=/vmlinuz-6.1 root=UUID=1 ro initrd=\\initrd.img quiet\n", "root=UUID=1 ro quiet memmap=160M$0x15000000\n"},
		{"root=UUID=2 rw\n", "root=UUID=1 ro\n", "root=UUID=2 rw memmap=160M$0x15000000\n"},
		// Typed at the prompt this boot: made permanent once, not twice.
		{"", "root=UUID=1 memmap=160M$0x15000000\n", "root=UUID=1 memmap=160M$0x15000000\n"},
	} {
		if got := kernelCmdline(tc.existing, tc.proc, r); got != tc.want {
			t.Errorf("kernelCmdline(%q, %q) = %q, want %q", tc.existing, tc.proc, got, tc.want)
		}
	}
}

func layoutReservation(t *testing.T, arg string) layout.Reservation {
	t.Helper()
	rs := configuredReservations(arg)
	if len(rs) != 1 {
		t.Fatalf("%s: %v", arg, rs)
	}
	return rs[0]
}

// The manifest is on disk after every step: setup killed in the middle
// (power cut, kill -9) is still undoable up to that point.
func TestManifestSavedPerStep(t *testing.T) {
	root := fakeRoot(t)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	o := options(root, f, &out)
	prep := o.Prepare
	var seen string
	o.Prepare = func() (string, error) {
		b, _ := os.ReadFile(filepath.Join(root, StateDir, "manifest.json"))
		seen = string(b)
		return prep()
	}
	if err := Setup(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{`"/etc/default/grub.d/kjump.cfg"`, `"/boot/grub/grub.cfg"`, `"/boot/kjump/helper.bzImage"`} {
		if !strings.Contains(seen, want) {
			t.Errorf("manifest before prepare lacks %s:\n%s", want, seen)
		}
	}
}

// Suggest is the choice setup makes, for 'hibernate check' to print.
func TestSuggestMatchesSetup(t *testing.T) {
	root := fakeRoot(t)
	var out bytes.Buffer
	o := options(root, &fakeSystem{root: root}, &out)
	res, why, err := Suggest(o)
	if err != nil {
		t.Fatal(err)
	}
	if got := layout.MemmapArg(res.Range); got != "memmap=160M$0x15000000" || !strings.Contains(why, "2 compression workers") {
		t.Fatalf("Suggest: %s (%s)", got, why)
	}
	if err := Setup(o); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "reservation: memmap=160M$0x15000000 (") {
		t.Fatalf("setup chose otherwise:\n%s", out.String())
	}
}

// Without a helper kernel to install, setup refuses before it changes
// anything (not after writing the boot loader's configuration).
func TestNoHelperKernelChangesNothing(t *testing.T) {
	root := fakeRoot(t)
	os.Remove(filepath.Join(root, "boot/config-"+release)) // options unknown: the running kernel cannot be vouched for
	before := tree(t, root)
	var out bytes.Buffer
	err := Setup(options(root, &fakeSystem{root: root}, &out))
	if err == nil || !strings.Contains(err.Error(), "no helper kernel at /boot/kjump/helper.bzImage, and the running kernel's options cannot be read") {
		t.Fatalf("got %v\n%s", err, out.String())
	}
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("changed %v", d)
	}
}

// GRUB with boot loader spec entries (Fedora) goes through kernel-install:
// GRUB_CMDLINE_LINUX does not reach BLS entries.
func TestBLSGrubUsesKernelInstall(t *testing.T) {
	root := fakeRoot(t)
	os.WriteFile(filepath.Join(root, "etc/default/grub"), []byte("GRUB_CMDLINE_LINUX=\"rhgb quiet\"\nGRUB_ENABLE_BLSCFG=true\n"), 0o644)
	os.WriteFile(filepath.Join(root, "usr/sbin/grub2-mkconfig"), []byte(debianMkconfig), 0o755)
	os.MkdirAll(filepath.Join(root, "boot/loader/entries"), 0o755)
	os.WriteFile(filepath.Join(root, "usr/bin/kernel-install"), []byte("#!/bin/sh\n"), 0o755)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(root, GrubDropIn)); err == nil || !contains(f.ran, "kernel-install add "+release+" /boot/vmlinuz-"+release) {
		t.Fatalf("ran %v\n%s", f.ran, out.String())
	}
}

// A machine set up by hand: setup finds everything in place, changes
// nothing and leaves no state directory behind.
func TestNothingToDoLeavesNoTrace(t *testing.T) {
	root := fakeRoot(t)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	if err := Setup(options(root, f, &out)); err != nil {
		t.Fatal(err)
	}
	// Forget that setup did it: as if done by hand.
	os.RemoveAll(filepath.Join(root, "var/lib/kjump"))
	before := tree(t, root)
	out.Reset()
	if err := Setup(options(root, f, &out)); err != nil || !strings.Contains(out.String(), "nothing to change") {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("changed %v", d)
	}
}

// Ctrl-C while a step runs (here update-grub): that step finishes and is
// recorded, no further step starts, and --undo puts everything back.
func TestInterruptedBetweenSteps(t *testing.T) {
	root := fakeRoot(t)
	before := tree(t, root)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	o := options(root, f, &out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	o.Ctx = ctx
	o.Run = func(name string, args ...string) error {
		if name == "update-grub" {
			cancel() // the terminal's Ctrl-C reaches setup while update-grub runs
		}
		return f.run(name, args...)
	}
	err := Setup(o)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "before /boot/kjump/helper.bzImage") || !strings.Contains(err.Error(), "--undo") {
		t.Fatalf("got %v\n%s", err, out.String())
	}
	if !strings.Contains(read(t, root, "boot/grub/grub.cfg"), "memmap=160M") {
		t.Error("the step running at Ctrl-C did not finish")
	}
	if _, err := os.Stat(filepath.Join(root, "boot/kjump/helper.bzImage")); err == nil {
		t.Error("a step started after Ctrl-C")
	}
	o.Ctx = nil
	out.Reset()
	if err := Undo(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("after undo: %v", d)
	}
}
