package vm

import (
	"fmt"
	"strings"
)

// DirectEntry is the boot loader entry `resume boot-entry` prints (Boot
// Loader Specification keys): the helper kernel and initramfs, as paths on
// the machine that printed it, and the command line that boots them
// straight into the restore (issue 19's direct boot). A machine boots it
// with Config{Kernel: host copy of Linux, Initrd: host copy of Initrd,
// Append: Options}, what a boot loader does with the entry.
type DirectEntry struct{ Linux, Initrd, Options string }

// ParseDirectEntry reads the entry a guest printed on its console between
// a line holding begin and one holding end. Lines other than linux, initrd
// and options (a kernel message the console put there) are ignored; several
// options lines are joined with spaces, as the specification says.
func ParseDirectEntry(console, begin, end string) (DirectEntry, error) {
	var e DirectEntry
	lines := strings.Split(console, "\n")
	start := -1
	for i, l := range lines {
		if strings.Contains(l, begin) {
			start = i + 1
			break
		}
	}
	if start < 0 {
		return e, fmt.Errorf("vm: no %q line before the boot entry", begin)
	}
	var opts []string
	found := false
	for _, l := range lines[start:] {
		if strings.Contains(l, end) {
			found = true
			break
		}
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		v = strings.TrimSpace(v)
		switch k {
		case "linux":
			e.Linux = v
		case "initrd":
			e.Initrd = v
		case "options":
			opts = append(opts, v)
		}
	}
	e.Options = strings.Join(opts, " ")
	switch {
	case !found:
		return e, fmt.Errorf("vm: no %q line after the boot entry", end)
	case e.Linux == "" || e.Initrd == "" || e.Options == "":
		return e, fmt.Errorf("vm: boot entry without linux, initrd or options: %+v", e)
	}
	return e, nil
}
