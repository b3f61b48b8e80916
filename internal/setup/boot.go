package setup

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kjump/kjump/internal/bootentry"
	"github.com/kjump/kjump/internal/layout"
)

// GrubDropIn is the file setup writes for GRUB: Debian's and Ubuntu's
// grub-mkconfig read /etc/default/grub.d/*.cfg after /etc/default/grub.
const GrubDropIn = "/etc/default/grub.d/kjump.cfg"

// bootLoader is where the kernel command line of the next boot comes from.
type bootLoader struct {
	Kind string // "grub", "kernel-install" or "" (unknown: print the line)
	// grub: the grub.cfg the generator writes and the command that does.
	GrubCfg string
	Update  []string
	// kernel-install: the loader entry directories it rewrites.
	Entries []string
}

// findBootLoader looks for a GRUB whose configuration generator reads
// /etc/default/grub.d, then for kernel-install with boot loader entries
// (systemd-boot, and GRUB with BLS entries).
func (o *Options) findBootLoader() bootLoader {
	// GRUB with boot loader spec entries (Fedora, RHEL) takes each entry's
	// options from the entry, which kernel-install writes from
	// /etc/kernel/cmdline: GRUB_CMDLINE_LINUX would not reach it.
	settings, err := os.ReadFile(o.path("/etc/default/grub"))
	if err == nil && !blsGrub.Match(settings) {
		for _, c := range []struct{ mkconfig, cfg string }{
			{"grub-mkconfig", "/boot/grub/grub.cfg"},
			{"grub2-mkconfig", "/boot/grub2/grub.cfg"},
		} {
			script := o.lookPath(c.mkconfig)
			if script == "" {
				continue
			}
			b, _ := os.ReadFile(o.path(script))
			if !strings.Contains(string(b), "/default/grub.d") {
				continue // upstream GRUB: reads /etc/default/grub only
			}
			bl := bootLoader{Kind: "grub", GrubCfg: c.cfg, Update: []string{c.mkconfig, "-o", c.cfg}}
			if u := o.lookPath("update-grub"); u != "" && c.mkconfig == "grub-mkconfig" {
				bl.Update = []string{"update-grub"}
			}
			return bl
		}
	}
	if o.lookPath("kernel-install") != "" {
		var entries []string
		for _, d := range bootentry.Dirs {
			if fi, err := os.Stat(o.path(d)); err == nil && fi.IsDir() {
				entries = append(entries, d)
			}
		}
		if len(entries) > 0 {
			return bootLoader{Kind: "kernel-install", Entries: entries}
		}
	}
	return bootLoader{}
}

// lookPath finds a command in the usual system directories below root.
func (o *Options) lookPath(name string) string {
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(o.path(p)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

var (
	memmapToken = regexp.MustCompile(`memmap=[^\s"']+`)
	blsGrub     = regexp.MustCompile(`(?m)^\s*GRUB_ENABLE_BLSCFG=["']?true`)
)

// configuredReservations finds memmap=SIZE$ADDR reservations in text (a
// boot loader's configuration, in whatever escaping it needs).
func configuredReservations(text string) []layout.Reservation {
	var out []layout.Reservation
	var live []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") { // a commented-out line reserves nothing
			live = append(live, l)
		}
	}
	for _, tok := range memmapToken.FindAllString(strings.Join(live, "\n"), -1) {
		rs, err := layout.ParseMemmapReservations(strings.ReplaceAll(tok, `\`, ""))
		if err == nil {
			out = append(out, rs...)
		}
	}
	return out
}

// grubDropIn is the drop-in's content for the reservation r. The shell
// that grub-mkconfig sources it with turns `\\\$` into `\$`, which is what
// grub.cfg needs: GRUB's own parser would expand a bare `$0x...` as a
// variable and drop it from the kernel's command line.
func grubDropIn(r layout.Reservation) string {
	arg := layout.GrubEscape(layout.MemmapArg(r.Range))
	return fmt.Sprintf(`# Written by 'hibernate setup' (kjump): memory the running kernel leaves
# free for the hibernation helper kernel (%d MiB at %#x).
# 'hibernate setup --undo' removes this file and regenerates grub.cfg.
# The dollar is escaped twice: this shell line yields \$ in grub.cfg, which
# GRUB passes to the kernel as $.
GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX} %s"
`, r.Size()>>20, r.Start, arg)
}

// grubCfgArg is how the reservation appears in grub.cfg.
func grubCfgArg(r layout.Reservation) string {
	return strings.Replace(layout.MemmapArg(r.Range), "$", `\$`, 1)
}

// kernelCmdline is /etc/kernel/cmdline with the reservation: the existing
// file's options, or this boot's without what the boot loader adds.
func kernelCmdline(existing, procCmdline string, r layout.Reservation) string {
	base := existing
	if strings.TrimSpace(base) == "" {
		var keep []string
		for _, f := range strings.Fields(procCmdline) {
			if strings.HasPrefix(f, "BOOT_IMAGE=") || strings.HasPrefix(f, "initrd=") {
				continue
			}
			keep = append(keep, f)
		}
		base = strings.Join(keep, " ")
	}
	fields := strings.Fields(base)
	for _, res := range configuredReservations(base) {
		if res.Range == r.Range {
			return strings.Join(fields, " ") + "\n" // this boot's own, typed at the boot loader's prompt
		}
	}
	return strings.Join(append(fields, layout.MemmapArg(r.Range)), " ") + "\n"
}

// entriesReserve checks what kernel-install regenerated: every boot loader
// entry for release (what systemd-boot, or GRUB with blscfg, boots) must
// carry the reservation r. kernel-install rewrites only the entry under
// its own entry token, and none at all when its layout is not "bls"
// (/etc/kernel/install.conf), so an entry left as it was would boot
// without the reservation and the image could not be resumed.
func (o *Options) entriesReserve(dirs []string, release string, r layout.Reservation) error {
	var lacking, found []string
	for _, d := range dirs {
		names, _ := filepath.Glob(filepath.Join(o.path(d), "*.conf"))
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				return err
			}
			version, options := bootentry.Parse(b)
			if version != release {
				continue
			}
			p := filepath.Join(d, filepath.Base(n))
			found = append(found, p)
			has := false
			for _, res := range configuredReservations(options) {
				has = has || res.Range == r.Range
			}
			if !has {
				lacking = append(lacking, p)
			}
		}
	}
	arg := layout.MemmapArg(r.Range)
	switch {
	case len(found) == 0:
		return fmt.Errorf("kernel-install wrote no boot loader entry for %s in %s (is layout=bls in /etc/kernel/install.conf?): add %s to the entry that boots this kernel by hand", release, strings.Join(dirs, ", "), arg)
	case len(lacking) > 0:
		return fmt.Errorf("boot loader entries for %s without %s after kernel-install: %s (kernel-install rewrites only the entry under its own entry token): add it to their options line, or remove them", release, arg, strings.Join(lacking, ", "))
	}
	return nil
}
