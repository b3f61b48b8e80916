// Package setup is 'hibernate setup': from a stock installation to a
// machine that hibernates through kjump in one command. It checks the
// kernel (every missing option at once), chooses the memory reservation
// (layout.SuggestReservation) and puts it where the boot loader takes it,
// installs the helper kernel, builds the helper initramfs, refreshes the
// boot initramfs and enables kjump's units. Every file it changes is
// backed up first and listed in a manifest under /var/lib/kjump/setup, so
// --undo puts them back; --dry-run lists them and changes nothing; a
// second run changes nothing.
//
// Every path is taken below Options.Root, so tests run it against a
// directory tree; the commands it runs (update-grub, update-initramfs)
// go through Options.Run.
package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/kjump/kjump/internal/atomicfile"
	"github.com/kjump/kjump/internal/bootonce"
	"github.com/kjump/kjump/internal/jump"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/prepare"
	"github.com/kjump/kjump/internal/sysinfo"
)

// Options are setup's inputs.
type Options struct {
	Root   string // "/" on a real system
	DryRun bool
	Out    io.Writer
	// Run runs a command of the system being set up (update-grub ...).
	Run func(name string, args ...string) error

	HelperKernel string // helper.kernel, e.g. /boot/kjump/helper.bzImage
	HelperInitrd string // helper.initrd
	MinReserve   uint64 // helper.reserve: never reserve less
	CPUs         int    // compression workers to size for; 0: this machine's CPUs
	Binary       string // the hibernate binary: sizes an initramfs not built yet
	Targets      []string
	// Prepare builds the helper initramfs ('hibernate prepare') and
	// returns its report line; PrepareNeeded says whether it would
	// change anything (for --dry-run).
	Prepare       func() (string, error)
	PrepareNeeded func() bool
	StateDir      string // default StateDir
	// Ctx canceled (Ctrl-C) stops setup before its next step: the one
	// running finishes and is recorded, so --undo can put everything back.
	Ctx context.Context
}

func (o *Options) path(p string) string { return filepath.Join(o.Root, p) }

func (o *Options) defaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Out == nil {
		o.Out = os.Stdout
	}
	if o.Run == nil {
		o.Run = runCommand
	}
	if o.CPUs == 0 {
		o.CPUs = runtime.NumCPU()
	}
}

// runCommand runs a command, its output shown only when it fails.
func runCommand(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ErrKernel is returned when the running kernel cannot run kjump.
var ErrKernel = errors.New("this kernel cannot run kjump")

// run is one setup run's shared state.
type run struct {
	o       *Options
	m       *Manifest
	changed int // files changed (or, dry, that would be)
}

// Setup does (or with DryRun lists) everything between a stock system and
// one that hibernates through kjump.
func Setup(o Options) error {
	o.defaults()
	m, err := o.loadManifest()
	if err != nil {
		return err
	}
	r := &run{o: &o, m: m}
	k, err := o.readKernel()
	if err != nil {
		return err
	}
	if probs := k.problems(o.readDistro()); len(probs) > 0 {
		fmt.Fprintf(o.Out, "kernel %s cannot run kjump:\n", k.Release)
		for _, p := range probs {
			if strings.HasPrefix(p, "what to do: ") {
				fmt.Fprintf(o.Out, "  %s\n", p)
				continue
			}
			fmt.Fprintf(o.Out, "  - %s\n", p)
		}
		return fmt.Errorf("%w (listed above); nothing was changed", ErrKernel)
	}
	qualifies := k.ConfigFrom != ""
	if qualifies {
		fmt.Fprintf(o.Out, "kernel %s: CONFIG_KEXEC_JUMP and the other options kjump needs are set (%s); lockdown: %s\n", k.Release, k.ConfigFrom, orNone(k.Lockdown))
	} else {
		fmt.Fprintf(o.Out, "kernel %s: its build options cannot be read (no /proc/config.gz or /boot/config-%s); 'hibernate check' probes kexec_load instead\n", k.Release, k.Release)
	}

	plan, err := r.planReservation(k)
	if err != nil {
		return err
	}
	if _, _, err := o.helperSource(k, qualifies); err != nil {
		return err
	}
	if !o.DryRun {
		if err := os.MkdirAll(o.path(o.stateDir()), 0o700); err != nil {
			return err
		}
	}
	if err := r.bootLoader(plan); err != nil {
		return r.fail(err)
	}
	helperNew, err := r.helperKernel(k, qualifies)
	if err != nil {
		return r.fail(err)
	}
	initrdNew, err := r.helperInitramfs()
	if err != nil {
		return r.fail(err)
	}
	if err := r.bootInitramfs(k.Release, helperNew || initrdNew); err != nil {
		return r.fail(err)
	}
	if err := r.units(); err != nil {
		return r.fail(err)
	}
	if !o.DryRun {
		if err := o.saveManifest(m); err != nil {
			return err
		}
		if len(m.Entries) == 0 { // nothing to undo: leave no trace
			os.RemoveAll(o.path(o.stateDir()))
			os.Remove(o.path(filepath.Dir(o.stateDir())))
		}
	}
	r.summary(plan)
	return nil
}

// fail saves what was done so far, so --undo can still undo it.
func (r *run) fail(err error) error {
	if !r.o.DryRun && len(r.m.Entries) > 0 {
		if serr := r.o.saveManifest(r.m); serr != nil {
			return fmt.Errorf("%w (and saving the manifest failed: %v)", err, serr)
		}
		return fmt.Errorf("%w; what was changed before is listed in %s: 'hibernate setup --undo' puts it back", err, r.o.stateDir()+"/manifest.json")
	}
	return err
}

func orNone(s string) string {
	if s == "" {
		return "none (no lockdown LSM)"
	}
	return s
}

// reservationPlan is the reservation decided on and what to do about it.
type reservationPlan struct {
	Res   layout.Reservation
	Need  uint64
	Boot  bootLoader
	Write bool   // put it into the boot loader's configuration
	Where string // the file already holding it (Write false)
}

// planReservation sizes the region and decides where it goes, changing
// nothing: a reservation already configured for the next boot and large
// enough is kept; else the running kernel's, if large enough; else a new
// one from layout.SuggestReservation.
func (r *run) planReservation(k kernelFacts) (reservationPlan, error) {
	o := r.o
	cmdline, iomem, err := o.readMemory()
	if err != nil {
		return reservationPlan{}, err
	}
	need, why := o.size(k.Release)
	plan := reservationPlan{Need: need, Boot: o.findBootLoader()}

	// Already configured for the next boot?
	type source struct{ file, text string }
	var user []source
	var ours []layout.Reservation
	switch plan.Boot.Kind {
	case "grub":
		b, _ := os.ReadFile(o.path("/etc/default/grub"))
		user = append(user, source{"/etc/default/grub", string(b)})
		others, _ := filepath.Glob(o.path("/etc/default/grub.d/*.cfg"))
		for _, p := range others {
			b, _ := os.ReadFile(p)
			rel := "/etc/default/grub.d/" + filepath.Base(p)
			if rel == GrubDropIn {
				ours = configuredReservations(string(b))
				continue
			}
			user = append(user, source{rel, string(b)})
		}
	case "kernel-install":
		b, _ := os.ReadFile(o.path("/etc/kernel/cmdline"))
		user = append(user, source{"/etc/kernel/cmdline", string(b)})
	}
	for _, s := range user {
		for _, res := range configuredReservations(s.text) {
			if res.Size() >= need {
				plan.Res, plan.Where = res, s.file
				fmt.Fprintf(o.Out, "reservation: %s in %s, %d MiB (the helper needs %d MiB): kept\n", res.Source, s.file, res.Size()>>20, need>>20)
				return plan, nil
			}
			return plan, fmt.Errorf("%s reserves %d MiB with %s, but the helper needs %d MiB (%s): enlarge it there and run hibernate setup again (setup does not edit your own boot loader lines)",
				s.file, res.Size()>>20, res.Source, need>>20, why)
		}
	}
	if len(ours) == 1 && ours[0].Size() >= need {
		plan.Res, plan.Where = ours[0], GrubDropIn
		fmt.Fprintf(o.Out, "reservation: %s (%s), %d MiB: kept\n", layout.MemmapArg(ours[0].Range), GrubDropIn, ours[0].Size()>>20)
		return plan, nil
	}
	plan.Write = true
	if res, err := layout.FindReservation(cmdline, iomem, need); err == nil && strings.HasPrefix(res.Source, "memmap=") {
		plan.Res = res
		fmt.Fprintf(o.Out, "reservation: %s, on this boot's command line (%d MiB; %s)\n", layout.MemmapArg(res.Range), res.Size()>>20, why)
		return plan, nil
	}
	res, err := layout.SuggestReservation(iomem, cmdline, need)
	if err != nil {
		return plan, err
	}
	plan.Res = res
	fmt.Fprintf(o.Out, "reservation: %s (%d MiB of free System RAM at %d MiB; %s)\n", res.Source, res.Size()>>20, res.Start>>20, why)
	return plan, nil
}

// readMemory reads this boot's command line and /proc/iomem.
func (o *Options) readMemory() (string, []sysinfo.Resource, error) {
	cmdline, err := os.ReadFile(o.path("/proc/cmdline"))
	if err != nil {
		return "", nil, err
	}
	f, err := os.Open(o.path("/proc/iomem"))
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	iomem, err := sysinfo.ParseIOMem(f)
	return string(cmdline), iomem, err
}

// size is the reservation the helper needs (layout.HelperSize) and a
// sentence saying what it was sized for.
func (o *Options) size(release string) (uint64, string) {
	initSize, kernelFrom := uint64(64<<20), "64 MiB assumed"
	for _, kp := range []string{o.HelperKernel, o.runningImage(release)} {
		if kp == "" {
			continue
		}
		if bz, err := jump.ReadBzImage(o.path(kp)); err == nil {
			initSize, kernelFrom = bz.InitSize, kp
			break
		}
	}
	var initrdSize uint64
	initrdFrom := "an initramfs of %d MiB"
	for i, p := range []string{o.HelperInitrd, o.Binary} {
		if fi, err := os.Stat(o.path(p)); p != "" && err == nil {
			initrdSize = uint64(fi.Size())
			if i == 1 {
				initrdFrom = "an initramfs of at most %d MiB (the hibernate binary's size; not built yet)"
			}
			break
		}
	}
	need := layout.HelperSize(initSize, initrdSize, o.CPUs, o.MinReserve)
	workers := min(o.CPUs, 4)
	return need, fmt.Sprintf("sized for the helper kernel's %d MiB (%s), "+initrdFrom+" and %d compression workers",
		initSize>>20, kernelFrom, initrdSize>>20, workers)
}

// Suggest is the reservation setup would make on this machine (Root,
// HelperKernel, HelperInitrd, Binary, MinReserve and CPUs are read) when
// none is configured: 'hibernate check' prints it so that both agree.
// The string says what it was sized for.
func Suggest(o Options) (layout.Reservation, string, error) {
	o.defaults()
	rel, err := os.ReadFile(o.path("/proc/sys/kernel/osrelease"))
	if err != nil {
		return layout.Reservation{}, "", err
	}
	cmdline, iomem, err := o.readMemory()
	if err != nil {
		return layout.Reservation{}, "", err
	}
	need, why := o.size(strings.TrimSpace(string(rel)))
	res, err := layout.SuggestReservation(iomem, cmdline, need)
	return res, why, err
}

// runningImage is the running kernel's bzImage where distributions keep it.
func (o *Options) runningImage(release string) string {
	for _, p := range []string{"/boot/vmlinuz-" + release, "/usr/lib/modules/" + release + "/vmlinuz", "/lib/modules/" + release + "/vmlinuz"} {
		if rel, err := prepare.KernelRelease(o.path(p)); err == nil && rel == release {
			return p
		}
	}
	return ""
}

// step runs fn with paths tracked: backed up before, recorded after.
// Dry, it only lists them.
func (r *run) step(by string, regenerate []string, owned bool, paths []string, fn func() error) ([]string, error) {
	return r.stepFinding(by, regenerate, owned, paths, nil, fn)
}

// stepFinding is step for a command that may also create files no one
// can name beforehand (kernel-install: an entry under its own entry
// token, its copy of the kernel): found returns, after fn ran, the files
// and directories (outermost first) that it created, and they are
// recorded as created by it, so --undo removes them.
func (r *run) stepFinding(by string, regenerate []string, owned bool, paths []string, found func() (files, dirs []string), fn func() error) ([]string, error) {
	o := r.o
	if o.Ctx != nil && o.Ctx.Err() != nil {
		return nil, fmt.Errorf("before %s: %w", strings.Join(paths, ", "), o.Ctx.Err())
	}
	if o.DryRun {
		for _, p := range paths {
			verb := "would change"
			if _, err := os.Lstat(o.path(p)); errors.Is(err, fs.ErrNotExist) {
				verb = "would create"
			}
			fmt.Fprintf(o.Out, "  %-13s %s%s\n", verb, p, byNote(by))
			r.changed++
		}
		return paths, nil
	}
	t, err := o.track(r.m, paths...)
	if err != nil {
		return nil, err
	}
	ferr := fn()
	if found != nil {
		files, dirs := found()
		for _, p := range files {
			if _, ok := t.before[p]; !ok {
				t.before[p] = "" // not there before: paths lists every one that was
			}
		}
		t.dirs = append(t.dirs, dirs...)
	}
	// Record what the step changed, even when it failed, and save the
	// manifest at once: setup killed in the next step stays undoable.
	changed, err := t.done(by, regenerate, owned)
	if err == nil && len(changed) > 0 {
		err = o.saveManifest(r.m)
	}
	if ferr != nil {
		return nil, ferr
	}
	for _, p := range changed {
		verb := "changed"
		if e := r.m.Entries[r.m.index(p)]; !e.Existed {
			verb = "created"
		}
		fmt.Fprintf(o.Out, "  %-13s %s%s\n", verb, p, byNote(by))
		r.changed++
	}
	return changed, err
}

func byNote(by string) string {
	if by == "hibernate setup" {
		return ""
	}
	return " (" + by + ")"
}

func (r *run) bootLoader(plan reservationPlan) error {
	o := r.o
	switch {
	case plan.Boot.Kind == "grub":
		return r.grub(plan)
	case !plan.Write:
		return nil
	case plan.Boot.Kind == "kernel-install":
		rel, _ := os.ReadFile(o.path("/proc/sys/kernel/osrelease"))
		release := strings.TrimSpace(string(rel))
		image := o.runningImage(release)
		cmd := []string{"kernel-install", "add", release, image}
		fmt.Fprintf(o.Out, "boot loader: kernel-install (/etc/kernel/cmdline, then %s)\n", strings.Join(cmd, " "))
		if image == "" {
			return fmt.Errorf("the running kernel's image (/boot/vmlinuz-%s or /usr/lib/modules/%s/vmlinuz) is not there for kernel-install", release, release)
		}
		if _, err := r.step("hibernate setup", nil, false, []string{"/etc/kernel/cmdline"}, func() error {
			old, _ := os.ReadFile(o.path("/etc/kernel/cmdline"))
			proc, _ := os.ReadFile(o.path("/proc/cmdline"))
			return atomicfile.Write(o.path("/etc/kernel/cmdline"), []byte(kernelCmdline(string(old), string(proc), plan.Res)), 0o644)
		}); err != nil {
			return err
		}
		list := func() []string {
			var entries []string
			for _, d := range plan.Boot.Entries {
				ents, _ := os.ReadDir(o.path(d))
				for _, e := range ents {
					entries = append(entries, filepath.Join(d, e.Name()))
				}
			}
			return entries
		}
		// Its copies of the kernel (BOOT/TOKEN/RELEASE/linux, initrd) and
		// their directories: only new ones are recorded (created: --undo
		// removes them); the existing ones are the kernel this machine
		// boots, rewritten alike, and an empty BOOT/TOKEN bootctl made.
		copies := func() map[string]bool {
			m := map[string]bool{}
			for _, d := range plan.Boot.Entries {
				boot := filepath.Dir(filepath.Dir(d))
				for _, pattern := range []string{"*", filepath.Join("*", release), filepath.Join("*", release, "*")} {
					files, _ := filepath.Glob(filepath.Join(o.path(boot), pattern))
					for _, f := range files {
						rel, _ := filepath.Rel(o.Root, f)
						m[filepath.Join("/", rel)] = true
					}
				}
			}
			return m
		}
		before := copies()
		found := func() (files, dirs []string) {
			files = list()
			for p := range copies() {
				if before[p] {
					continue
				}
				if fi, err := os.Lstat(o.path(p)); err == nil && fi.IsDir() {
					dirs = append(dirs, p)
				} else {
					files = append(files, p)
				}
			}
			sort.Strings(dirs) // a parent sorts before its children: outermost first
			return files, dirs
		}
		_, err := r.stepFinding("kernel-install", cmd, false, list(), found, func() error {
			if err := o.Run(cmd[0], cmd[1:]...); err != nil {
				return err
			}
			return o.entriesReserve(plan.Boot.Entries, release, plan.Res)
		})
		return err
	}
	fmt.Fprintf(o.Out, "boot loader: neither a GRUB that reads /etc/default/grub.d nor kernel-install with boot loader entries: add this to the kernel command line yourself, then reboot:\n    %s\n  (in /etc/default/grub: GRUB_CMDLINE_LINUX=\"... %s\", then regenerate grub.cfg; GRUB needs the $ escaped)\n",
		layout.MemmapArg(plan.Res.Range), layout.GrubEscape(layout.MemmapArg(plan.Res.Range)))
	return nil
}

// grub puts the reservation (when it is setup's to write) and the direct
// restore's block (bootonce.GrubScript) into GRUB's configuration and
// regenerates grub.cfg once if either changed.
func (r *run) grub(plan reservationPlan) error {
	o := r.o
	script := bootonce.GrubScriptText()
	old, _ := os.ReadFile(o.path(bootonce.GrubScript))
	newScript := string(old) != script
	if !plan.Write && !newScript {
		return nil
	}
	fmt.Fprintf(o.Out, "boot loader: GRUB (%s)\n", strings.Join(plan.Boot.Update, " "))
	if plan.Write {
		if _, err := r.step("hibernate setup", plan.Boot.Update, true, []string{GrubDropIn}, func() error {
			return atomicfile.Write(o.path(GrubDropIn), []byte(grubDropIn(plan.Res)), 0o644)
		}); err != nil {
			return err
		}
	}
	if newScript {
		if _, err := r.step("hibernate setup", plan.Boot.Update, true, []string{bootonce.GrubScript}, func() error {
			return atomicfile.Write(o.path(bootonce.GrubScript), []byte(script), 0o755)
		}); err != nil {
			return err
		}
	}
	var direct bool
	_, err := r.step(plan.Boot.Update[0], plan.Boot.Update, false, []string{plan.Boot.GrubCfg}, func() error {
		if err := o.Run(plan.Boot.Update[0], plan.Boot.Update[1:]...); err != nil {
			return err
		}
		b, err := os.ReadFile(o.path(plan.Boot.GrubCfg))
		if err != nil {
			return err
		}
		if !strings.Contains(string(b), grubCfgArg(plan.Res)) {
			return fmt.Errorf("%s did not put %s into %s: is GRUB_CMDLINE_LINUX overridden after %s? Add it to the kernel command line by hand",
				plan.Boot.Update[0], grubCfgArg(plan.Res), plan.Boot.GrubCfg, GrubDropIn)
		}
		direct = bootonce.FindGRUB(o.Root) != nil
		return nil
	})
	if err == nil && !o.DryRun && !direct {
		fmt.Fprintf(o.Out, "direct restore: %s did not run %s (is it executable?): the power-on after hibernating boots normally first\n", plan.Boot.Update[0], bootonce.GrubScript)
	}
	return err
}

// helperKernel installs the running kernel as the helper when there is
// none; it reports whether it did.
func (r *run) helperKernel(k kernelFacts, qualifies bool) (bool, error) {
	o := r.o
	image, rel, err := o.helperSource(k, qualifies)
	if err != nil {
		return false, err
	}
	if image == "" {
		fmt.Fprintf(o.Out, "helper kernel: %s (Linux %s): kept\n", o.HelperKernel, rel)
		return false, nil
	}
	fmt.Fprintf(o.Out, "helper kernel: the running kernel, %s\n", image)
	changed, err := r.step("hibernate setup", nil, true, []string{o.HelperKernel}, func() error {
		return copyFile(o.path(image), o.path(o.HelperKernel), 0o644)
	})
	return len(changed) > 0, err
}

// helperSource decides, changing nothing, where the helper kernel comes
// from: "" when the one installed is kept (its release in rel), else the
// running kernel's image; an error when there is neither, so that setup
// refuses before it changes anything.
func (o *Options) helperSource(k kernelFacts, qualifies bool) (image, rel string, err error) {
	if rel, err := prepare.KernelRelease(o.path(o.HelperKernel)); err == nil {
		return "", rel, nil
	} else if _, serr := os.Stat(o.path(o.HelperKernel)); serr == nil {
		return "", "", fmt.Errorf("helper kernel %s: %v: replace it with a bzImage built with CONFIG_KEXEC_JUMP=y, or remove it and run hibernate setup again to install the running kernel there; nothing was changed", o.HelperKernel, err)
	}
	image = o.runningImage(k.Release)
	switch {
	case !qualifies:
		return "", "", fmt.Errorf("no helper kernel at %s, and the running kernel's options cannot be read to use it: install a kernel with CONFIG_KEXEC_JUMP=y there (docs/setup.md, 'The helper kernel'); nothing was changed", o.HelperKernel)
	case image == "":
		return "", "", fmt.Errorf("no helper kernel at %s, and the running kernel %s's image is not in /boot/vmlinuz-%s or /usr/lib/modules/%s/vmlinuz: copy a kernel with CONFIG_KEXEC_JUMP=y there; nothing was changed", o.HelperKernel, k.Release, k.Release, k.Release)
	}
	return image, "", nil
}

// helperInitramfs runs 'hibernate prepare'; it reports whether that
// changed anything.
func (r *run) helperInitramfs() (bool, error) {
	o := r.o
	if o.Prepare == nil {
		return false, nil
	}
	paths := []string{o.HelperInitrd, prepare.StampPath(o.HelperInitrd)}
	if o.DryRun {
		if o.PrepareNeeded != nil && !o.PrepareNeeded() {
			fmt.Fprintf(o.Out, "helper initramfs: %s is current\n", o.HelperInitrd)
			return false, nil
		}
		fmt.Fprintf(o.Out, "helper initramfs: hibernate prepare\n")
		_, err := r.step("hibernate prepare", nil, true, paths, nil)
		return true, err
	}
	fmt.Fprintf(o.Out, "helper initramfs: hibernate prepare\n")
	changed, err := r.step("hibernate prepare", nil, true, paths, func() error {
		line, err := o.Prepare()
		if err == nil {
			fmt.Fprintf(o.Out, "  %s\n", line)
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("hibernate prepare: %w", err)
	}
	return len(changed) > 0, nil
}

// bootInitramfs rebuilds the boot initramfs when the helper kernel or its
// initramfs changed: kjump's resume hook copies both into it (the restore
// kernel boots them).
func (r *run) bootInitramfs(release string, needed bool) error {
	o := r.o
	type gen struct {
		cmd  []string
		hook string
		file string
	}
	gens := []gen{
		{[]string{"update-initramfs", "-u", "-k", release}, "/usr/share/initramfs-tools/hooks/kjump", "/boot/initrd.img-" + release},
		{[]string{"dracut", "-f", "--kver", release}, "/usr/lib/dracut/modules.d/90kjump", "/boot/initramfs-" + release + ".img"},
	}
	for _, g := range gens {
		if o.lookPath(g.cmd[0]) == "" {
			continue
		}
		if _, err := os.Stat(o.path(g.hook)); err != nil {
			fmt.Fprintf(o.Out, "boot initramfs: kjump's hook for %s is not installed (%s): resume at boot needs it; install kjump from its package or with make install\n", g.cmd[0], g.hook)
			return nil
		}
		if g.cmd[0] == "dracut" {
			if _, err := os.Stat(o.path(g.file)); err != nil {
				g.file = "/boot/initrd.img-" + release // dracut on Debian
			}
		}
		if !needed {
			fmt.Fprintf(o.Out, "boot initramfs: %s: kept (the helper did not change)\n", g.file)
			return nil
		}
		fmt.Fprintf(o.Out, "boot initramfs: %s (kjump's hook takes the helper along for resume)\n", strings.Join(g.cmd, " "))
		_, err := r.step(g.cmd[0], g.cmd, false, []string{g.file}, func() error { return o.Run(g.cmd[0], g.cmd[1:]...) })
		return err
	}
	fmt.Fprintf(o.Out, "boot initramfs: neither initramfs-tools nor dracut found: rebuild your initramfs with kjump's resume hook yourself\n")
	return nil
}

// Units are the kjump units setup enables: every one with an [Install]
// section, as the package's postinst enables them (a test holds the two
// lists together). The canhibernate units keep logind's CanHibernate
// current: at boot (the service), when the configuration changes (the
// path unit), and every few minutes (the timer).
var Units = []string{"kjump-prepare.service", "kjump-preload.service",
	"kjump-canhibernate.service", "kjump-canhibernate.timer", "kjump-canhibernate.path"}

var unitDirs = []string{"/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"}

// units enables kjump's units (the links systemctl enable makes, which
// work without a running systemd) and checks the sleep integration.
func (r *run) units() error {
	o := r.o
	if _, err := os.Stat(o.path("/usr/lib/systemd")); err != nil {
		if _, err := os.Stat(o.path("/lib/systemd")); err != nil {
			fmt.Fprintf(o.Out, "systemd: not found; kjump's units are not enabled (run 'hibernate prepare' after each kernel or kjump change yourself)\n")
			return nil
		}
	}
	var enabled, enabling, links []string
	target := map[string]string{}
	for _, u := range Units {
		file := ""
		for _, d := range unitDirs {
			if _, err := os.Stat(o.path(filepath.Join(d, u))); err == nil {
				file = filepath.Join(d, u)
				break
			}
		}
		if file == "" {
			return fmt.Errorf("%s is not installed: install kjump from its package (or make install) first", u)
		}
		unit, err := os.ReadFile(o.path(file))
		if err != nil {
			return err
		}
		wantedBy := WantedBy(string(unit))
		if len(wantedBy) == 0 {
			return fmt.Errorf("%s has no WantedBy= in its [Install] section: reinstall kjump", file)
		}
		have := true
		for _, w := range wantedBy {
			link := filepath.Join("/etc/systemd/system", w+".wants", u)
			if _, err := os.Lstat(o.path(link)); err == nil {
				continue
			}
			have = false
			links = append(links, link)
			target[link] = file
		}
		if have {
			enabled = append(enabled, u)
		} else {
			enabling = append(enabling, u)
		}
	}
	sleep := "systemctl hibernate goes through kjump (systemd-hibernate.service.d/kjump.conf)"
	found := false
	for _, d := range unitDirs {
		if _, err := os.Stat(o.path(filepath.Join(d, "systemd-hibernate.service.d/kjump.conf"))); err == nil {
			found = true
		}
	}
	if !found {
		sleep = "WARNING: systemd-hibernate.service.d/kjump.conf is not installed, so systemctl hibernate would use the kernel's swsusp: install kjump from its package"
	}
	if len(links) == 0 {
		fmt.Fprintf(o.Out, "systemd: %s already enabled; %s\n", strings.Join(enabled, ", "), sleep)
		return nil
	}
	fmt.Fprintf(o.Out, "systemd: enable %s; %s\n", strings.Join(enabling, ", "), sleep)
	_, err := r.step("hibernate setup", nil, true, links, func() error {
		for _, l := range links {
			if err := os.MkdirAll(o.path(filepath.Dir(l)), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(target[l], o.path(l)); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// WantedBy lists the units a unit file's [Install] section names in
// WantedBy= (where systemctl enable links it).
func WantedBy(unit string) []string {
	var out []string
	section := ""
	for _, l := range strings.Split(unit, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "["):
			section = l
		case section == "[Install]" && strings.HasPrefix(l, "WantedBy="):
			out = append(out, strings.Fields(strings.TrimPrefix(l, "WantedBy="))...)
		}
	}
	return out
}

func (r *run) summary(plan reservationPlan) {
	o := r.o
	if r.changed == 0 {
		fmt.Fprintf(o.Out, "nothing to change: this machine is set up\n")
	} else if o.DryRun {
		fmt.Fprintf(o.Out, "dry run: %d file(s) would change; nothing was changed\n", r.changed)
		return
	} else {
		fmt.Fprintf(o.Out, "changed %d file(s); 'hibernate setup --undo' puts them back (manifest: %s/manifest.json)\n", r.changed, o.stateDir())
	}
	cmdline, _ := os.ReadFile(o.path("/proc/cmdline"))
	active := false
	for _, res := range configuredReservations(string(cmdline)) {
		if res.Range == plan.Res.Range {
			active = true
		}
	}
	if !active {
		via := "the boot loader"
		if plan.Boot.Kind == "grub" {
			via = "GRUB"
		}
		fmt.Fprintf(o.Out, "next boot: %s passes %s: the kernel leaves %v free for the helper; then kjump-prepare.service keeps the helper initramfs current, kjump-preload.service loads it (Linux 6.6+), and systemctl hibernate, the desktop's menu and HandleLidSwitch=hibernate go through kjump. Until that reboot hibernate refuses: no memory is reserved yet.\n",
			via, layout.MemmapArg(plan.Res.Range), plan.Res.Range)
	} else {
		fmt.Fprintf(o.Out, "the reservation %s is active on this boot: kjump can hibernate now\n", layout.MemmapArg(plan.Res.Range))
	}
	if len(o.Targets) == 0 {
		fmt.Fprintf(o.Out, "no target is configured: set targets in /etc/kjump.conf (docs/setup.md, 'Choosing a target'), then run hibernate check\n")
	} else {
		fmt.Fprintf(o.Out, "targets: %s; run hibernate check to see every prerequisite\n", strings.Join(o.Targets, ", "))
	}
}

func sortStrings(s []string) { sort.Strings(s) }
