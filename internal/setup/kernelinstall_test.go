package setup

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The machine ID the boot loader entries are named after.
const machineID = "0123456789abcdef0123456789abcdef"

// kernelInstall runs this machine's real kernel-install (systemd's) for
// the system below root, through the knobs it has for that: BOOT_ROOT
// (the ESP or /boot holding loader/entries), KERNEL_INSTALL_CONF_ROOT
// (its /etc/kernel: cmdline, install.conf, entry-token) and MACHINE_ID.
// Its plugins are limited to the ones that write boot loader entries
// (KERNEL_INSTALL_PLUGINS): depmod and an initramfs generator would work
// on this host's /lib/modules and /boot, not the tree's. Absolute paths
// in its arguments are the tree's.
func kernelInstall(t *testing.T, root, confRoot string, args ...string) error {
	t.Helper()
	ki, err := exec.LookPath("kernel-install")
	if err != nil {
		t.Fatalf("kernel-install (systemd's; Debian: package systemd) is needed to test setup with it: %v", err)
	}
	var plugins []string
	for _, p := range []string{"85-initrd.install", "90-loaderentry.install"} {
		for _, d := range []string{"/usr/lib/kernel/install.d", "/lib/kernel/install.d"} {
			if _, err := os.Stat(filepath.Join(d, p)); err == nil {
				plugins = append(plugins, filepath.Join(d, p))
				break
			}
		}
	}
	if len(plugins) == 0 || !strings.HasSuffix(plugins[len(plugins)-1], "90-loaderentry.install") {
		t.Fatalf("kernel-install's 90-loaderentry.install plugin not found (found %q)", plugins)
	}
	a := append([]string(nil), args...)
	for i := range a {
		if strings.HasPrefix(a[i], "/") {
			a[i] = filepath.Join(root, a[i])
		}
	}
	cmd := exec.Command(ki, a...)
	cmd.Env = append(os.Environ(), "BOOT_ROOT="+filepath.Join(root, "boot"), "KERNEL_INSTALL_CONF_ROOT="+confRoot,
		"MACHINE_ID="+machineID, "KERNEL_INSTALL_PLUGINS="+strings.Join(plugins, " "))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("kernel-install %s: %v\n%s", strings.Join(a, " "), err, out)
	}
	return nil
}

// entryOptions is the options line of the running kernel's boot loader
// entry below root.
func entryOptions(t *testing.T, root string) string {
	t.Helper()
	b := read(t, root, "boot/loader/entries/"+machineID+"-"+release+".conf")
	m := regexp.MustCompile(`(?m)^options\s+(.*)$`).FindStringSubmatch(b)
	if m == nil {
		t.Fatalf("entry without options:\n%s", b)
	}
	return m[1]
}

// systemd-boot through the real kernel-install: the entry it had written
// at installation (options from the installer's command line) is
// regenerated from the /etc/kernel/cmdline setup writes, so it carries
// memmap= with its $ intact (kernel-install's shell must not expand it);
// --undo puts the entry and /etc/kernel back byte for byte.
func TestKernelInstallReal(t *testing.T) {
	// A systemd-boot installation: bootctl made /boot/MACHINE-ID and
	// loader/entries, the installer's kernel-install wrote the entry with
	// the options it was given.
	root, o, out := kernelInstallRoot(t)
	installerEntry(t, root)
	if got := entryOptions(t, root); !strings.HasPrefix(got, "root=UUID=1234 ro console=ttyS0") || strings.Contains(got, "memmap") {
		t.Fatalf("entry before setup: options %q", got)
	}
	before := tree(t, root)
	var ran []string
	run := o.Run
	o.Run = func(name string, args ...string) error {
		if name == "kernel-install" {
			ran = append(ran, strings.Join(append([]string{name}, args...), " "))
		}
		return run(name, args...)
	}
	if err := Setup(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if got := read(t, root, "etc/kernel/cmdline"); got != "root=UUID=1234 ro console=ttyS0 memmap=160M$0x15000000\n" {
		t.Errorf("/etc/kernel/cmdline: %q", got)
	}
	if len(ran) != 1 || ran[0] != "kernel-install add "+release+" /boot/vmlinuz-"+release {
		t.Errorf("ran %q", ran)
	}
	t.Logf("entry after setup:\n%s", read(t, root, "boot/loader/entries/"+machineID+"-"+release+".conf"))
	if got := entryOptions(t, root); !strings.HasPrefix(got, "root=UUID=1234 ro console=ttyS0 memmap=160M$0x15000000") {
		t.Errorf("entry after setup: options %q, want the reservation memmap=160M$0x15000000", got)
	}
	if !strings.Contains(out.String(), "changed       /boot/loader/entries/"+machineID+"-"+release+".conf (kernel-install)") {
		t.Errorf("setup did not report the entry it changed:\n%s", out.String())
	}

	out.Reset()
	if err := Undo(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("after undo: %v", d)
	}
	if got := entryOptions(t, root); strings.Contains(got, "memmap") {
		t.Errorf("entry after undo: options %q", got)
	}
}

// kernelInstallRoot is fakeRoot made a systemd-boot installation: no
// GRUB, bootctl's /boot/MACHINE-ID and loader/entries, and the real
// kernel-install where the system has it. setup runs it with this
// machine's kernel-install (kernelInstall).
func kernelInstallRoot(t *testing.T) (string, Options, *bytes.Buffer) {
	root := fakeRoot(t)
	for _, p := range []string{"etc/default/grub", "usr/sbin/grub-mkconfig", "usr/sbin/update-grub"} {
		os.Remove(filepath.Join(root, p))
	}
	for _, d := range []string{"boot/" + machineID, "boot/loader/entries", "etc/kernel"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ki, _ := exec.LookPath("kernel-install")
	b, err := os.ReadFile(ki)
	if err != nil {
		t.Fatalf("kernel-install (systemd's) is needed: %v", err)
	}
	os.WriteFile(filepath.Join(root, "usr/bin/kernel-install"), b, 0o755)
	f := &fakeSystem{root: root}
	var out bytes.Buffer
	o := options(root, f, &out)
	o.Run = func(name string, args ...string) error {
		if name != "kernel-install" {
			return f.run(name, args...)
		}
		return kernelInstall(t, root, filepath.Join(root, "etc/kernel"), args...)
	}
	return root, o, &out
}

// installerEntry writes the entry the distribution's installer had
// kernel-install write for the running kernel, with its options.
func installerEntry(t *testing.T, root string) {
	t.Helper()
	installer := t.TempDir()
	os.WriteFile(filepath.Join(installer, "cmdline"), []byte("root=UUID=1234 ro console=ttyS0\n"), 0o644)
	if err := kernelInstall(t, root, installer, "add", release, "/boot/vmlinuz-"+release); err != nil {
		t.Fatal(err)
	}
}

// Another entry for the running kernel (an admin's copy, another entry
// token) is not rewritten by kernel-install: setup says which entry would
// boot without the reservation, and --undo still restores everything.
func TestKernelInstallOtherEntryNamed(t *testing.T) {
	root, o, out := kernelInstallRoot(t)
	installerEntry(t, root)
	entry := read(t, root, "boot/loader/entries/"+machineID+"-"+release+".conf")
	os.WriteFile(filepath.Join(root, "boot/loader/entries/debug-"+release+".conf"), []byte(strings.Replace(entry, "title ", "title (debug) ", 1)), 0o644)
	before := tree(t, root)
	err := Setup(o)
	if err == nil || !strings.Contains(err.Error(), "/boot/loader/entries/debug-"+release+".conf") || strings.Contains(err.Error(), machineID+"-"+release) {
		t.Fatalf("setup: %v (want the debug entry named, and only it)\n%s", err, out.String())
	}
	if got := entryOptions(t, root); !strings.Contains(got, "memmap=160M$0x15000000") {
		t.Errorf("kernel-install's own entry: options %q", got)
	}
	out.Reset()
	if err := Undo(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("after undo: %v", d)
	}
}

// No entry for the running kernel yet (bootctl's empty /boot/MACHINE-ID,
// another kernel's entry): kernel-install creates the entry and its copy
// of the kernel; --undo removes both and the directory it made, and keeps
// bootctl's.
func TestKernelInstallNewEntryUndone(t *testing.T) {
	root, o, out := kernelInstallRoot(t)
	os.WriteFile(filepath.Join(root, "boot/loader/entries/"+machineID+"-6.1.100.conf"), []byte("title Debian\nversion 6.1.100\noptions root=UUID=1234 ro\nlinux /"+machineID+"/6.1.100/linux\n"), 0o644)
	before := tree(t, root)
	if err := Setup(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if got := entryOptions(t, root); !strings.HasPrefix(got, "root=UUID=1234 ro console=ttyS0 memmap=160M$0x15000000") {
		t.Errorf("new entry: options %q", got)
	}
	for _, want := range []string{"created       /boot/loader/entries/" + machineID + "-" + release + ".conf (kernel-install)",
		"created       /boot/" + machineID + "/" + release + "/linux (kernel-install)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("setup did not report %q", want)
		}
	}
	out.Reset()
	if err := Undo(o); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	if d := diffTrees(before, tree(t, root)); len(d) > 0 {
		t.Fatalf("after undo: %v", d)
	}
}
