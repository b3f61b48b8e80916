package bootonce

import (
	"errors"
	"fmt"
	"github.com/kjump/kjump/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kjump/kjump/internal/resolve"
)

// ID is the direct restore entry's GRUB menu entry id.
const ID = "kjump-direct"

// GrubScript is the grub-mkconfig script 'hibernate setup' installs on a
// GRUB machine: it adds to grub.cfg a block that, on the one boot GRUB's
// next_entry selects kjump-direct, sources the entry 'hibernate now'
// wrote next to grubenv. Every other boot sees no new menu entry.
const GrubScript = "/etc/grub.d/42_kjump_direct"

// entryFile is the entry, in GRUB's own syntax, in GRUB's prefix
// directory (the one holding grub.cfg and grubenv).
const entryFile = "kjump-direct.cfg"

// grubMarker is how a grub.cfg that runs GrubScript's block is known.
const grubMarker = "### kjump direct restore ###"

// GrubScriptText is GrubScript's content. GRUB's header (00_header)
// turns next_entry into the default and clears it with save_env before
// this block runs. The block goes on only if that clearing reached the
// disk (load_env reads it back): where GRUB cannot write its environment
// (LVM, RAID, some filesystems) the entry would otherwise be booted on
// every power-on. On any doubt, and if the entry fails to load, GRUB
// boots GRUB_DEFAULT.
func GrubScriptText() string {
	return `#!/bin/sh
# Written by 'hibernate setup' (kjump); 'hibernate setup --undo' removes it.
# The direct restore: 'hibernate now' writes ` + entryFile + ` next to
# grubenv and sets next_entry=` + ID + `; on that one boot the block below
# sources it, so the helper kernel restores the image without a normal boot
# first. It refuses anything it cannot verify by rebooting into the normal
# boot, which resumes or boots as usual.
set -e
case "${GRUB_DEFAULT}" in
saved) normal='${saved_entry}' ;;
*) normal="${GRUB_DEFAULT:-0}" ;;
esac
cat <<KJUMP
` + grubMarker + `
if [ "\${default}" = ` + ID + ` ]; then
  set default="${normal}"
  load_env next_entry
  if [ -z "\${next_entry}" ]; then
    if [ -f "\${prefix}/` + entryFile + `" ]; then
      set default=` + ID + `
      set fallback="${normal}"
      source "\${prefix}/` + entryFile + `"
    fi
  fi
fi
KJUMP
`
}

// GRUB is a GRUB whose grub.cfg carries GrubScript's block.
type GRUB struct {
	Dir string // its prefix directory: grub.cfg, grubenv, the entry
}

// FindGRUB returns the GRUB below root whose grub.cfg runs the direct
// restore block, or nil when there is none (no GRUB, or one set up
// without the direct restore).
func FindGRUB(root string) *GRUB {
	for _, d := range []string{"/boot/grub", "/boot/grub2"} {
		b, err := os.ReadFile(filepath.Join(root, d, "grub.cfg"))
		if err == nil && strings.Contains(string(b), grubMarker) {
			return &GRUB{Dir: filepath.Join(root, d)}
		}
	}
	return nil
}

func (g *GRUB) env() string { return filepath.Join(g.Dir, "grubenv") }

// Check says whether Arm would work for e, changing nothing.
func (g *GRUB) Check(e Entry) error {
	_, err := g.prepare(e)
	return err
}

func (g *GRUB) prepare(e Entry) (string, error) {
	if _, err := os.Stat(g.env()); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s does not exist, so GRUB cannot be told to boot the direct restore once: create it with 'grub-editenv %s create'", g.env(), g.env())
	}
	if _, _, err := readEnv(g.env(), "next_entry"); err != nil {
		return "", err
	}
	return grubEntry(e, resolve.MountOf, byUUID)
}

// Arm writes e where the block finds it and makes GRUB boot it next, once.
// The caller syncs before the power-off (hibernate does before the jump).
func (g *GRUB) Arm(e Entry) error {
	text, err := g.prepare(e)
	if err != nil {
		return err
	}
	p := filepath.Join(g.Dir, entryFile)
	if old, err := os.ReadFile(p); err != nil || string(old) != text {
		if err := atomicfile.Write(p, []byte(text), 0o644); err != nil {
			return err
		}
	}
	return editEnv(g.env(), func(b *envBlock) bool {
		b.set("next_entry", ID)
		return true
	})
}

// Disarm clears next_entry if it still selects the direct restore (a
// hibernation that failed, or a GRUB that could not clear it); it reports
// whether it did. Reading past the page cache matters after a resume:
// GRUB cleared it on the disk behind this kernel's back.
func (g *GRUB) Disarm() (bool, error) {
	cleared, changed := false, false
	err := editEnv(g.env(), func(b *envBlock) bool {
		// GRUB's header leaves "next_entry=" behind: removing it too
		// leaves grubenv as it was before kjump armed it.
		if v, ok := b.get("next_entry"); ok && (v == ID || v == "") {
			b.unset("next_entry")
			cleared, changed = v == ID, true
		}
		return changed
	})
	return cleared, err
}

// Uninstall removes what Arm left below root for 'hibernate setup
// --undo': the entry file, and next_entry if it selects it. It says what
// it did (dry: would do).
func Uninstall(root string, dryRun bool) ([]string, error) {
	var done []string
	for _, d := range []string{"/boot/grub", "/boot/grub2"} {
		g := &GRUB{Dir: filepath.Join(root, d)}
		p := filepath.Join(g.Dir, entryFile)
		if _, err := os.Stat(p); err == nil {
			done = append(done, "remove "+filepath.Join(d, entryFile))
			if !dryRun {
				if err := os.Remove(p); err != nil {
					return done, err
				}
			}
		}
		if v, _, err := readEnv(g.env(), "next_entry"); err == nil && v == ID {
			done = append(done, "clear next_entry="+ID+" in "+filepath.Join(d, "grubenv"))
			if !dryRun {
				if _, err := g.Disarm(); err != nil {
					return done, err
				}
			}
		}
	}
	return done, nil
}

// grubEntry is e in GRUB's syntax: the filesystem holding the kernel is
// found by UUID, its files named relative to that filesystem's root, and
// every $ of the options escaped (GRUB would expand memmap=SIZE$START's
// "$START" as a variable and drop it).
func grubEntry(e Entry, mountOf func(string) (resolve.Mount, error), uuidOf func(string) (string, error)) (string, error) {
	var uuid, mod string
	var paths []string
	for _, f := range []string{e.Linux, e.Initrd} {
		m, err := mountOf(f)
		if err != nil {
			return "", err
		}
		if mod, err = grubFSModule(m.FSType); err != nil {
			return "", fmt.Errorf("%s is on %s: %w", f, m.Point, err)
		}
		for _, p := range []string{"/dev/mapper/", "/dev/dm-", "/dev/md"} {
			if strings.HasPrefix(m.Source, p) {
				// GRUB reaches these only with extra modules, and cannot
				// write its environment there (save_env), so the
				// one-shot entry would never be cleared.
				return "", fmt.Errorf("%s is on %s (%s, LVM, RAID or encrypted): GRUB's one-shot boot does not work there", f, m.Point, m.Source)
			}
		}
		u, err := uuidOf(m.Source)
		if err != nil {
			return "", fmt.Errorf("%s is on %s (%s): %w", f, m.Point, m.Source, err)
		}
		if uuid != "" && u != uuid {
			return "", fmt.Errorf("the helper kernel %s and initramfs %s are on different filesystems: keep both in one directory (/boot/kjump)", e.Linux, e.Initrd)
		}
		uuid = u
		rel, err := filepath.Rel(m.Point, f)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("%s is not below its mount point %s", f, m.Point)
		}
		p := filepath.Join("/", m.Root, rel)
		if strings.ContainsAny(p, " \t\n'\"$\\;{}") {
			return "", fmt.Errorf("%s: GRUB would split or expand this path: keep the helper kernel and initramfs in a path of plain characters (/boot/kjump)", p)
		}
		paths = append(paths, p)
	}
	esc := strings.NewReplacer(`\`, `\\`, `$`, `\$`, `'`, `\'`, `"`, `\"`)
	var opts []string
	for _, o := range e.Options {
		opts = append(opts, esc.Replace(o))
	}
	return fmt.Sprintf(`# Written by 'hibernate now' (kjump): the direct restore entry ('resume boot-entry'),
# sourced by grub.cfg only on the boot after a hibernation.
menuentry 'kjump: restore the hibernated system' --id %s {
	insmod part_gpt
	insmod part_msdos
	insmod %s
	search --no-floppy --fs-uuid --set=root %s
	echo 'kjump: restoring the hibernated system'
	linux %s %s
	initrd %s
}
`, ID, mod, uuid, paths[0], strings.Join(opts, " "), paths[1]), nil
}

// grubFSModule is the GRUB module that reads a filesystem type.
func grubFSModule(fstype string) (string, error) {
	switch fstype {
	case "ext2", "ext3", "ext4":
		return "ext2", nil
	case "xfs", "btrfs":
		return fstype, nil
	case "vfat":
		return "fat", nil
	}
	return "", fmt.Errorf("the direct restore entry supports /boot on ext2/3/4, xfs, btrfs or vfat, not %s", fstype)
}

// byUUID finds a device's filesystem UUID through udev's
// /dev/disk/by-uuid links, in the form GRUB's search --fs-uuid takes.
func byUUID(dev string) (string, error) {
	want, err := filepath.EvalSymlinks(dev)
	if err != nil {
		return "", err
	}
	links, _ := filepath.Glob("/dev/disk/by-uuid/*")
	for _, l := range links {
		if t, err := filepath.EvalSymlinks(l); err == nil && t == want {
			return filepath.Base(l), nil
		}
	}
	return "", fmt.Errorf("no filesystem UUID for %s in /dev/disk/by-uuid", dev)
}
