package hibernate

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kjump/kjump/internal/bootentry"
	"github.com/kjump/kjump/internal/bootonce"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/launch"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/setup"
	"github.com/kjump/kjump/internal/sysinfo"
)

// KernelOption is a kernel configuration option kjump needs.
type KernelOption struct {
	Name string // CONFIG_...
	Why  string
}

// RequiredKernelOptions are what the running kernel needs, all of them:
// 'hibernate check' (and 'hibernate setup') report every missing one at
// once. KALLSYMS_ALL matters only to kernels with the original jump
// convention (saved_context is a data symbol).
func RequiredKernelOptions(conv jump.Convention) []KernelOption {
	opts := []KernelOption{
		{"CONFIG_KEXEC", "load the helper kernel (kexec_load)"},
		{"CONFIG_KEXEC_JUMP", "jump to the helper and back"},
		{"CONFIG_KALLSYMS", "find the jump-back entry"},
	}
	if conv != jump.ConventionReworked {
		opts = append(opts, KernelOption{"CONFIG_KALLSYMS_ALL", "find saved_context, where the jump back resumes"})
	}
	return opts
}

// MissingKernelOptions lists the options of RequiredKernelOptions a kernel
// configuration lacks.
func MissingKernelOptions(cfg sysinfo.KernelConfig, conv jump.Convention) []KernelOption {
	var out []KernelOption
	for _, o := range RequiredKernelOptions(conv) {
		if !cfg.Enabled(o.Name) {
			out = append(out, o)
		}
	}
	return out
}

// checkKernelConfig reports every missing option in one line, when the
// kernel's configuration can be read (/proc/config.gz or /boot/config-R).
func checkKernelConfig(c *checkRun) *CheckResult {
	cfg, ok, err := sysinfo.ReadKernelConfig()
	if err != nil || !ok {
		return nil // kexec-jump probes the kernel instead
	}
	conv := jump.ConventionClassic
	if c.sys != nil {
		conv = c.sys.Symbols.JumpConvention()
	}
	missing := MissingKernelOptions(cfg, conv)
	if len(missing) == 0 {
		return result("kernel-config", Pass, "kernel "+c.rel+" has every option kjump needs ("+cfg.Source+")", "")
	}
	var names []string
	for _, m := range missing {
		names = append(names, m.Name+"=y ("+m.Why+")")
	}
	return result("kernel-config", Fail, fmt.Sprintf("kernel %s lacks %d option(s) (%s): %s", c.rel, len(missing), cfg.Source, strings.Join(names, ", ")),
		"boot a kernel built with all of them: the stock kernels of Fedora, RHEL/CentOS Stream, Ubuntu, Arch and NixOS have them; on Debian and openSUSE build one (docs/setup.md)")
}

// reservationFix is the fix for a missing reservation: a concrete range,
// the one 'hibernate setup' would make (sized for the helper kernel, its
// initramfs and this machine's workers), so both agree.
func reservationFix(sys *System, o CheckOptions) string {
	res, why, err := setup.Suggest(setup.Options{HelperKernel: o.HelperKernel, HelperInitrd: o.HelperInitrd, MinReserve: o.Reserve})
	if err != nil {
		res, err = layout.SuggestReservation(sys.IOMem, sys.Cmdline, o.Reserve)
		why = "the configured minimum"
	}
	if err != nil {
		return fmt.Sprintf("reserve at least %d MiB with memmap=SIZE$ADDR (docs/setup.md), or lower helper.reserve (%v)", o.Reserve>>20, err)
	}
	arg := layout.MemmapArg(res.Range)
	return fmt.Sprintf("run 'hibernate setup', or add %s to the kernel command line (%s; a free System RAM range in /proc/iomem; in /etc/default/grub write %s) and reboot",
		arg, why, layout.GrubEscape(arg))
}

// fileFilesystems are the filesystems an image file can live on: kjump
// writes the file's blocks directly, which others (btrfs checksums and
// moves data, tmpfs has no disk, network filesystems no blocks) forbid.
var fileFilesystems = map[string]bool{"ext4": true, "xfs": true}

// fileTargetFS refuses an image file on a filesystem that cannot hold
// one, naming it, before anything is written.
func fileTargetFS(spec, dir, fstype string) error {
	if fileFilesystems[fstype] {
		return nil
	}
	return fmt.Errorf("image file %s would be on %s (%s): kjump writes image files only on ext4 or xfs; put it there, or use a raw partition or an NFS export", spec, fstype, dir)
}

// checkResumeHook looks for kjump's resume hook in the initramfs this
// kernel boots with: without it the next boot cannot resume the image.
func checkResumeHook(c *checkRun) *CheckResult {
	if !c.o.ResumeSide {
		return nil
	}
	initrd := bootInitramfs(c.rel)
	if initrd == "" {
		return result("resume-hook", Warn, "no initramfs found for kernel "+c.rel+" in /boot: cannot check that it resumes kjump images", "")
	}
	list, err := initramfsListing(initrd)
	if err != nil {
		return result("resume-hook", Warn, "cannot list "+initrd+": "+err.Error(), "")
	}
	for _, f := range list {
		if strings.HasSuffix(f, "sbin/resume") || strings.Contains(f, "kjump") {
			return result("resume-hook", Pass, initrd+" has kjump's resume hook", "")
		}
	}
	return result("resume-hook", Fail, initrd+" has no kjump resume hook: the next boot would not resume the image",
		"rebuild it: update-initramfs -u (Debian, Ubuntu), dracut -f (Fedora), mkinitcpio -P with kjump in HOOKS (Arch)")
}

// bootInitramfs is the initramfs of kernel release rel, by the names the
// distributions give it.
func bootInitramfs(rel string) string {
	for _, p := range []string{"/boot/initrd.img-" + rel, "/boot/initramfs-" + rel + ".img", "/boot/initrd-" + rel, "/boot/initramfs-linux.img"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// initramfsListing lists an initramfs with the distribution's own tool
// (they know every compression and the early microcode archive), else a
// plain gzip-compressed newc archive read here.
func initramfsListing(path string) ([]string, error) {
	for _, tool := range [][]string{{"lsinitramfs"}, {"lsinitrd", "--list"}, {"lsinitcpio"}} {
		if _, err := exec.LookPath(tool[0]); err != nil {
			continue
		}
		out, err := exec.Command(tool[0], append(tool[1:], path)...).Output()
		if err != nil {
			return nil, fmt.Errorf("%s: %v", tool[0], err)
		}
		return strings.Split(string(out), "\n"), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(zr); err == nil {
			b = buf.Bytes()
		}
	}
	// newc headers are followed by the name: enough to find ours.
	var names []string
	for _, part := range bytes.Split(b, []byte("070701"))[1:] {
		if len(part) > 104 {
			name, _, _ := bytes.Cut(part[104:], []byte{0})
			names = append(names, string(name))
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("not a gzip-compressed newc archive, and no lsinitramfs, lsinitrd or lsinitcpio to list it")
	}
	return names, nil
}

// checkNextBoot looks at the command line the boot loader will give this
// kernel next time: the reservation must be on it.
func checkNextBoot(c *checkRun) *CheckResult {
	if c.sys == nil || !c.o.ResumeSide {
		return nil
	}
	cur, err := layout.FindReservation(c.sys.Cmdline, c.sys.IOMem, 0)
	if err != nil || cur.Source == "crashkernel" {
		return nil // reserved-region reports it; crashkernel= has other owners
	}
	lines, where := nextBootCmdline("/", c.rel)
	if where == "" {
		return result("next-boot", Warn, "cannot tell what command line the boot loader gives kernel "+c.rel+" next (no GRUB configuration, boot loader entry or /etc/kernel/cmdline found)",
			"make sure "+cur.Source+" stays on the kernel command line")
	}
	if missing := lacksReservation(lines, cur); missing >= 0 {
		if strings.Contains(where, ", ") {
			where = strings.Split(where, ", ")[missing]
		}
		return result("next-boot", Fail, where+" does not have "+cur.Source+" for kernel "+c.rel+": after the next reboot nothing would be reserved and an image could not be resumed",
			"add "+cur.Source+" there (GRUB: "+layout.GrubEscape(cur.Source)+" in GRUB_CMDLINE_LINUX, then update-grub or grub2-mkconfig; systemd-boot: in /etc/kernel/cmdline, then kernel-install add "+c.rel+" IMAGE), or run 'hibernate setup'")
	}
	return result("next-boot", Pass, where+" keeps "+cur.Source, "")
}

// lacksReservation is the index of the first command line without the
// reservation cur, or -1 when every one has it.
func lacksReservation(lines []string, cur layout.Reservation) int {
	for i, line := range lines {
		next, _ := layout.ParseMemmapReservations(line)
		found := false
		for _, r := range next {
			if r.PageAligned() == cur.PageAligned() {
				found = true
			}
		}
		if !found {
			return i
		}
	}
	return -1
}

// nextBootCmdline finds the command line the boot loader gives kernel rel
// next, below root: GRUB's generated configuration; else the boot loader
// spec entries for rel (systemd-boot, and GRUB with blscfg on Fedora and
// RHEL), which kernel-install writes from /etc/kernel/cmdline, so an
// entry not regenerated since that file changed is what boots; else
// /etc/kernel/cmdline itself. Several entries for rel (boot counting,
// a copy) must all keep the reservation: where names the first that
// does not, or all of them.
func nextBootCmdline(root, rel string) (lines []string, where string) {
	for _, cfg := range []string{"/boot/grub/grub.cfg", "/boot/grub2/grub.cfg"} {
		b, err := os.ReadFile(filepath.Join(root, cfg))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) > 1 && (f[0] == "linux" || f[0] == "linuxefi" || f[0] == "linux16") && strings.HasSuffix(f[1], "-"+rel) {
				// GRUB unescapes "\$" when it runs the line.
				return []string{strings.ReplaceAll(strings.Join(f[2:], " "), `\$`, "$")}, cfg
			}
		}
	}
	var entries []string
	for _, dir := range bootentry.Dirs {
		names, _ := filepath.Glob(filepath.Join(root, dir, "*.conf"))
		sort.Strings(names)
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				continue
			}
			version, options := bootentry.Parse(b)
			if version == rel {
				lines = append(lines, options)
				entries = append(entries, filepath.Join(dir, filepath.Base(n)))
			}
		}
	}
	if len(entries) > 0 {
		return lines, strings.Join(entries, ", ")
	}
	if b, err := os.ReadFile(filepath.Join(root, "/etc/kernel/cmdline")); err == nil {
		return []string{string(b)}, "/etc/kernel/cmdline"
	}
	return nil, ""
}

// checkDirectRestore says, on a GRUB machine whose grub.cfg runs
// kjump's direct restore block, whether the power-on after 'hibernate
// now' will restore directly, and if not why. Only a failure to build the
// entry for a raw target warns: the normal boot resumes either way.
func checkDirectRestore(c *checkRun) *CheckResult {
	g := bootonce.FindGRUB("/")
	if g == nil || !c.o.ResumeSide || c.sys == nil || !c.root {
		return nil
	}
	target := c.chosen.Spec
	switch {
	case !c.o.Direct:
		return result("direct-restore", Pass, "off (resume.direct or resume.policy in kjump.conf): the power-on after hibernating boots normally, then resumes", "")
	case c.o.KeyFile != "" || c.o.Encrypted:
		return result("direct-restore", Pass, "not used: "+bootonce.ErrEncrypted.Error(), "")
	case target == "":
		return nil
	}
	if err := bootonce.CheckTarget(target); err != nil {
		return result("direct-restore", Pass, "not used: "+err.Error(), "")
	}
	e, err := bootonce.NewEntry(c.sys, launch.Kernel{Path: c.o.HelperKernel, Initrd: c.o.HelperInitrd}, target)
	if err == nil {
		err = g.Check(e)
	}
	if err != nil {
		return result("direct-restore", Warn, "GRUB cannot be made to restore directly: "+err.Error(), "the normal boot resumes instead; fix it or set resume.direct = \"never\" in kjump.conf")
	}
	return result("direct-restore", Pass, "after 'hibernate now' GRUB boots the direct restore once ("+g.Dir+"/kjump-direct.cfg): one kernel boot, no normal boot first", "")
}
