package hibernate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/prepare"
	"github.com/kjump/kjump/internal/resolve"
	"github.com/kjump/kjump/internal/secret"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

// Status of one prerequisite.
type Status string

const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// CheckResult is one line of 'hibernate check'.
type CheckResult struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// Report is every check, and the target hibernation would use.
type Report struct {
	OK     bool          `json:"ok"` // no FAIL: hibernation can proceed
	Target string        `json:"target,omitempty"`
	Checks []CheckResult `json:"checks"`
	// System is what the checks read of this kernel (nil if they could
	// not): Options.System, so the jump does not read it again.
	System *System `json:"-"`
}

// CheckOptions are the settings the checks judge.
type CheckOptions struct {
	Targets        []string // in order; the first reachable is chosen
	TargetOptional bool     // checkpoint without a target (probe) is fine
	HelperKernel   string
	HelperInitrd   string
	Reserve        uint64 // smallest acceptable reserved region
	KeyFile        string // key_file from the configuration ("": no key line)
	Encrypted      bool   // a key was given another way (--key-file, --passphrase...)
	SysBlock       string // default /sys/block: where dm-crypt volumes are found
	Prepare        prepare.Inputs

	// ResumeSide also checks what the next boot needs to resume: kjump's
	// hook in the boot initramfs and the reservation on the boot loader's
	// command line ('hibernate check'; now and checkpoint skip it).
	ResumeSide bool
	// Direct is resume.direct = auto (with resume.policy = auto): the
	// direct-restore line says whether 'hibernate now' can arm GRUB's
	// one-shot entry.
	Direct bool
}

// Check runs every prerequisite of a hibernation and reports each; it
// never stops at the first failure, so one run shows everything to fix.
func Check(o CheckOptions) Report {
	c := newCheckRun(o)
	for _, chk := range checks {
		if res := chk(c); res != nil {
			c.report.Checks = append(c.report.Checks, *res)
		}
	}
	c.report.OK = true
	for _, res := range c.report.Checks {
		if res.Status == Fail {
			c.report.OK = false
		}
	}
	return c.report
}

// checks are the lines of 'hibernate check', in order. Each returns nil
// when it does not apply (no key file configured, no target chosen).
var checks = []func(*checkRun) *CheckResult{
	checkRootLine,
	checkKernelConfig,
	checkKexecJumpLine,
	func(*checkRun) *CheckResult { return result(checkLockdown("/sys/kernel/security/lockdown")) },
	checkJumpBack,
	checkReservedRegion,
	checkHelperKernel,
	checkHelperInitramfs,
	checkPreload,
	checkKeyFile,
	func(c *checkRun) *CheckResult {
		return result(checkEncryption(c.o.KeyFile != "" || c.o.Encrypted, c.o.SysBlock))
	},
	checkTarget,
	func(c *checkRun) *CheckResult {
		if c.chosen.Spec == "" || c.sys == nil {
			return nil
		}
		return result(checkSpace(c.chosen, c.sys))
	},
	checkResumeHook,
	checkNextBoot,
	checkDirectRestore,
}

// checkRun is what the checks share: facts read once, and the report the
// target check fills in.
type checkRun struct {
	o       CheckOptions
	root    bool   // running as root
	rel     string // this kernel's release
	kexecOK bool   // /sys/kernel/kexec_loaded exists
	sys     *System
	sysErr  error
	chosen  TargetSpecInfo
	report  Report
}

func newCheckRun(o CheckOptions) *checkRun {
	c := &checkRun{o: o, root: checkRoot() == nil, rel: sysinfo.KernelRelease(), kexecOK: checkKexec() == nil}
	c.sys, c.sysErr = ReadSystem() // nil on any error
	if c.kexecOK {
		c.report.System = c.sys
	}
	return c
}

func result(name string, st Status, detail, fix string) *CheckResult {
	return &CheckResult{name, st, detail, fix}
}

func checkRootLine(c *checkRun) *CheckResult {
	if c.root {
		return result("root", Pass, "running as root", "")
	}
	return result("root", Fail, fmt.Sprintf("running as uid %d", os.Geteuid()), "run as root (sudo hibernate ...)")
}

func checkKexecJumpLine(c *checkRun) *CheckResult {
	if !c.kexecOK {
		return result("kexec-jump", Fail, "kernel "+c.rel+" has no kexec support (no /sys/kernel/kexec_loaded)",
			"boot a kernel built with CONFIG_KEXEC=y and CONFIG_KEXEC_JUMP=y (docs/setup.md)")
	}
	src, err := kexecJumpSource()
	switch {
	case err == nil:
		return result("kexec-jump", Pass, "CONFIG_KEXEC_JUMP=y ("+src+")", "")
	case !c.root && errors.Is(err, unix.EPERM):
		return result("kexec-jump", Warn, "no kernel config to read and only root may probe kexec_load", "run the check as root")
	}
	return result("kexec-jump", Fail, err.Error(), "boot a kernel built with CONFIG_KEXEC_JUMP=y (docs/setup.md)")
}

func checkJumpBack(c *checkRun) *CheckResult {
	switch {
	case !c.kexecOK:
		return result("jump-back", Warn, "not checked: this kernel cannot kexec at all", "see kexec-jump")
	case c.sysErr != nil:
		return result("jump-back", Fail, c.sysErr.Error(), "run as root with kernel.kptr_restrict < 2")
	}
	conv := c.sys.Symbols.JumpConvention()
	if conv == jump.ConventionReworked {
		return result("jump-back", Pass, "kernel "+c.rel+": "+conv.String(), "")
	}
	if _, err := c.sys.Symbols.SavedContextAddr(c.sys.IOMem); err != nil {
		return result("jump-back", Fail, err.Error(), "rebuild the kernel with CONFIG_KALLSYMS=y and CONFIG_KALLSYMS_ALL=y")
	}
	return result("jump-back", Pass, "kernel "+c.rel+": "+conv.String()+"; saved_context found", "")
}

func checkReservedRegion(c *checkRun) *CheckResult {
	if c.sys == nil {
		return result("reserved-region", Fail, "cannot read the kernel's memory map: "+c.sysErr.Error(), "run as root with /proc and /sys mounted")
	}
	res, err := layout.FindReservation(c.sys.Cmdline, c.sys.IOMem, c.o.Reserve)
	if err != nil {
		return result("reserved-region", Fail, err.Error(), reservationFix(c.sys, c.o))
	}
	return result("reserved-region", Pass, fmt.Sprintf("%v (%s): %d MiB, need %d MiB", res.Range, res.Source, res.Size()>>20, c.o.Reserve>>20), "")
}

func checkHelperKernel(c *checkRun) *CheckResult {
	k := c.o.HelperKernel
	if _, err := jump.ReadBzImage(k); err != nil {
		return result("helper-kernel", Fail, fmt.Sprintf("%s: %v", k, err),
			"install a bzImage with CONFIG_KEXEC_JUMP=y and CONFIG_CRASH_DUMP=y there (helper.kernel in /etc/kjump.conf)")
	}
	d := k
	if rel, err := prepare.KernelRelease(k); err == nil {
		d += " (Linux " + rel + ")"
	}
	return result("helper-kernel", Pass, d, "")
}

func checkHelperInitramfs(c *checkRun) *CheckResult {
	initrd := c.o.HelperInitrd
	_, kerr := os.Stat(c.o.HelperKernel)
	why, err := prepare.Stale(initrd, c.o.Prepare)
	_, missing := os.Stat(initrd)
	switch {
	case kerr != nil:
		return result("helper-initramfs", Fail, "not checked: no helper kernel", "install the helper kernel, then run 'hibernate prepare'")
	case err != nil:
		return result("helper-initramfs", Fail, err.Error(), "fix the above, then run 'hibernate prepare'")
	case missing != nil && len(why) == 1: // Stale's one reason: the file is not there
		return result("helper-initramfs", Fail, why[0], "run 'hibernate prepare'")
	case len(why) > 0:
		return result("helper-initramfs", Warn, initrd+" is out of date: "+strings.Join(why, ", "), "run 'hibernate prepare'")
	}
	return result("helper-initramfs", Pass, initrd+" is current", "")
}

func checkPreload(c *checkRun) *CheckResult {
	state, detail, err := PreloadStatus()
	switch {
	case errors.Is(err, ErrNoLoadCounter):
		return result("preload", Pass, "not available on kernel "+c.rel+" (no /proc/sys/kernel/kexec_load_limit_reboot: Linux 6.6+ with kexec): the helper is loaded when you hibernate", "")
	case err != nil:
		return result("preload", Warn, err.Error(), "the helper is loaded when you hibernate")
	case state == PreloadReplaced:
		return result("preload", Warn, detail, "find what else loads kexec images (kexec-tools' kexec-load.service, LOAD_KEXEC in /etc/default/kexec)")
	}
	return result("preload", Pass, detail, "")
}

func checkKeyFile(c *checkRun) *CheckResult {
	if c.o.KeyFile == "" {
		return nil
	}
	sec, err := secret.KeyFile(c.o.KeyFile)
	if err != nil {
		return result("key-file", Fail, err.Error(), "fix key_file in /etc/kjump.conf (see docs/security.md)")
	}
	sec.Wipe()
	return result("key-file", Pass, c.o.KeyFile+": images will be encrypted", "")
}

// checkTarget chooses the first reachable target; the space check and the
// report's Target follow its choice.
func checkTarget(c *checkRun) *CheckResult {
	switch {
	case len(c.o.Targets) == 0 && c.o.TargetOptional:
		return result("target", Pass, "none (checkpoint samples memory without writing an image)", "")
	case len(c.o.Targets) == 0:
		return result("target", Fail, "no target configured", "set targets in /etc/kjump.conf or give --to")
	}
	chosen, errs := chooseTarget(c.o.Targets)
	if chosen.Spec == "" {
		return result("target", Fail, "no target is reachable: "+strings.Join(errs, "; "), "attach or mount a target, or fix targets in /etc/kjump.conf")
	}
	c.chosen, c.report.Target = chosen, chosen.Spec
	d := chosen.describe()
	if len(errs) > 0 {
		d += " (skipped: " + strings.Join(errs, "; ") + ")"
	}
	return result("target", Pass, d, "")
}

// chooseTarget returns the first reachable of targets, and why each one
// before it was skipped.
func chooseTarget(targets []string) (TargetSpecInfo, []string) {
	var errs []string
	for _, t := range targets {
		if _, err := os.Stat(t); err != nil && strings.HasPrefix(t, "/dev/") {
			errs = append(errs, "target "+t+" does not exist (not attached?)")
			continue
		}
		ts, err := ResolveTarget(t)
		if err == nil {
			return TargetSpecInfo{Spec: t, Target: ts}, errs
		}
		// A file on a local filesystem is preallocated by the first
		// hibernation: reachable when its filesystem is.
		if dir, fstype, ok := preallocatable(t); ok {
			if err := fileTargetFS(t, dir, fstype); err != nil {
				errs = append(errs, err.Error())
				continue
			}
			return TargetSpecInfo{Spec: t, PreallocDir: dir}, errs
		}
		errs = append(errs, err.Error())
	}
	return TargetSpecInfo{}, errs
}

// TargetSpecInfo is a chosen target and where it leads.
type TargetSpecInfo struct {
	Spec   string
	Target handoff.TargetSpec
	// PreallocDir: the image file does not exist yet; the first
	// hibernation preallocates it in this directory's filesystem.
	PreallocDir string
}

// preallocatable reports whether spec names a file that does not exist
// yet on a mounted local filesystem (PrepareTarget will preallocate it).
func preallocatable(spec string) (string, string, bool) {
	if strings.HasPrefix(spec, "/dev/") || strings.Contains(spec, "=") {
		return "", "", false
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return "", "", false
	}
	if _, err := os.Stat(abs); err == nil {
		return "", "", false // exists: ResolveTarget's verdict stands
	}
	dir := filepath.Dir(abs)
	for {
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			break
		}
		dir = filepath.Dir(dir)
	}
	fstype, err := resolve.FSType(dir)
	if err != nil || strings.HasPrefix(fstype, "nfs") {
		return "", "", false
	}
	return dir, fstype, true
}

func (t TargetSpecInfo) describe() string {
	switch {
	case t.PreallocDir != "":
		return fmt.Sprintf("%s: file on a mounted filesystem, preallocated by the first hibernation", t.Spec)
	case t.Target.File != nil:
		return fmt.Sprintf("%s: preallocated image file on %s", t.Spec, t.Target.File.Device)
	case t.Target.Device != "":
		return fmt.Sprintf("%s: raw partition %s", t.Spec, t.Target.Device)
	case t.Target.Source != "":
		return fmt.Sprintf("%s: %s %s, file %s", t.Spec, t.Target.FSType, t.Target.Source, t.Target.Path)
	}
	return t.Spec
}

// checkEncryption warns when a machine that encrypts its disks would write
// its RAM, with the dm-crypt master keys and everything decrypted, to an
// unencrypted image.
func checkEncryption(encrypted bool, sysBlock string) (string, Status, string, string) {
	if encrypted {
		return "encryption", Pass, "images are encrypted (AES-256-GCM)", ""
	}
	if sysBlock == "" {
		sysBlock = "/sys/block"
	}
	var crypt []string
	devs, _ := os.ReadDir(sysBlock)
	for _, d := range devs {
		uuid, err := os.ReadFile(filepath.Join(sysBlock, d.Name(), "dm", "uuid"))
		if err != nil || !strings.HasPrefix(string(uuid), "CRYPT-") {
			continue
		}
		name, _ := os.ReadFile(filepath.Join(sysBlock, d.Name(), "dm", "name"))
		crypt = append(crypt, strings.TrimSpace(string(name)))
	}
	if len(crypt) == 0 {
		return "encryption", Pass, "images are not encrypted; no dm-crypt volume is open", ""
	}
	return "encryption", Warn, "this machine uses dm-crypt (" + strings.Join(crypt, ", ") + ") but images would be written unencrypted: an image holds the volumes' master keys and all decrypted data in RAM",
		"set key_file in /etc/kjump.conf or give --key-file/--passphrase (docs/security.md)"
}

// checkLockdown: under lockdown the kernel refuses kexec_load (only signed
// kexec_file_load images, which cannot preserve context).
func checkLockdown(path string) (string, Status, string, string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "lockdown", Pass, "no lockdown LSM (/sys/kernel/security/lockdown absent)", ""
	}
	s := strings.TrimSpace(string(b))
	mode := s
	if i, j := strings.Index(s, "["), strings.Index(s, "]"); i >= 0 && j > i {
		mode = s[i+1 : j]
	}
	if mode == "none" {
		return "lockdown", Pass, "lockdown: none", ""
	}
	return "lockdown", Fail, "kernel lockdown is " + mode + ": it blocks kexec_load",
		"boot with lockdown=none (Secure Boot enables lockdown: disable it or use a kernel without CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT)"
}

// checkSpace compares the target's room with the writer's worst case: all
// of System RAM stored uncompressed (it refuses targets smaller than that).
func checkSpace(t TargetSpecInfo, sys *System) (string, Status, string, string) {
	var ram uint64
	for _, r := range sysinfo.SystemRAM(sys.IOMem) {
		ram += r.Size()
	}
	need := ram + ram/64 + 1<<20 // chunk and index overhead, header
	var have uint64
	var where string
	switch {
	case t.PreallocDir != "":
		var fs unix.Statfs_t
		if err := unix.Statfs(t.PreallocDir, &fs); err != nil {
			return "space", Warn, "cannot read free space of " + t.PreallocDir + ": " + err.Error(), ""
		}
		have, where, need = fs.Bavail*uint64(fs.Bsize), t.PreallocDir, ImageFileSize(ram)
	case t.Target.File != nil:
		have, where = uint64(t.Target.File.Size), t.Target.File.Path
	case t.Target.Device != "":
		b, err := os.ReadFile(filepath.Join("/sys/class/block", filepath.Base(t.Target.Device), "size"))
		n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || perr != nil {
			return "space", Warn, "cannot read the size of " + t.Target.Device, ""
		}
		have, where = n*512, t.Target.Device
	default:
		p := t.Spec
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			p = filepath.Dir(p)
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(p, &fs); err != nil {
			return "space", Warn, "cannot read free space of " + p + ": " + err.Error(), ""
		}
		have, where = fs.Bavail*uint64(fs.Bsize), p
		if fi, err := os.Stat(imageFile(t.Spec)); err == nil {
			have += uint64(fi.Size()) // the old image is replaced
		}
	}
	detail := fmt.Sprintf("%s has %s; the image needs up to %s (all %s of RAM uncompressed, the worst case)",
		where, mib(have), mib(need), mib(ram))
	if t.PreallocDir != "" {
		// A new image file is preallocated at its full size.
		if have < need {
			return "space", Fail, detail, "use a larger partition or free space on the export"
		}
		return "space", Pass, detail, ""
	}
	// Other targets only need room for the image this machine makes:
	// below an estimate they are refused, below the worst case the helper
	// may run out, stop and jump back (see room.go).
	if free, ok := memFree("/proc/meminfo"); ok && have < need {
		var rs layout.Ranges
		for _, r := range sysinfo.SystemRAM(sys.IOMem) {
			rs = append(rs, r.PageAligned())
		}
		warning, err := newRoom(where, have, rs.Normalize(), free).check()
		if err != nil {
			return "space", Fail, err.Error(), ""
		}
		return "space", Warn, warning, ""
	}
	if have < need {
		return "space", Fail, detail, "use a larger partition or free space on the export"
	}
	return "space", Pass, detail, ""
}

func imageFile(spec string) string {
	if fi, err := os.Stat(spec); err == nil && fi.IsDir() {
		return filepath.Join(spec, storage.DefaultName)
	}
	return spec
}

func mib(n uint64) string { return fmt.Sprintf("%d MiB", n>>20) }

// HelperModules lists the kernel modules the helper needs to reach the
// targets: the drivers between each raw partition and the bus (virtio_blk,
// nvme, usb_storage, ahci ...), and for NFS the client and the network
// driver. Unreachable targets are returned in skipped with the reason.
func HelperModules(targets []string) (mods []string, skipped []string) {
	seen := map[string]bool{}
	addAll := func(ms ...string) {
		for _, m := range ms {
			if !seen[m] {
				seen[m] = true
				mods = append(mods, m)
			}
		}
	}
	for _, t := range targets {
		ts, err := ResolveTarget(t)
		if err != nil {
			skipped = append(skipped, err.Error())
			continue
		}
		if ts.Device != "" {
			var st unix.Stat_t
			if unix.Stat(ts.Device, &st) == nil {
				addAll(prepare.DeviceModules(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)))...)
			}
		}
		if strings.HasPrefix(ts.FSType, "nfs") {
			addAll("nfs")
			if strings.Contains(ts.Opts, "vers=3") {
				addAll("nfsv3")
			} else {
				addAll("nfsv4")
			}
		} else if ts.FSType != "" {
			addAll(ts.FSType)
		}
		if ts.Net != nil {
			ifs, _ := os.ReadDir("/sys/class/net")
			for _, i := range ifs {
				mac, _ := os.ReadFile(filepath.Join("/sys/class/net", i.Name(), "address"))
				if strings.EqualFold(strings.TrimSpace(string(mac)), ts.Net.MAC) {
					addAll(prepare.DeviceModules(filepath.Join("/sys/class/net", i.Name(), "device"))...)
				}
			}
		}
	}
	return mods, skipped
}
