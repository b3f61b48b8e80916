package hibernate

import (
	"strings"

	"github.com/kjump/kjump/internal/sysinfo"
)

// zeroesFreePages reports whether the running kernel keeps its free pages
// zeroed (init_on_free): it then hands them out without clearing them, so
// a restore must put zeros back. Otherwise free pages hold whatever was
// last in them and a restore may leave them as it finds them. The kernel
// command line decides; without init_on_free= on it, the kernel's
// CONFIG_INIT_ON_FREE_DEFAULT_ON (cfg, if found). Unknown counts as
// zeroed: zeroing is never wrong.
func zeroesFreePages(cmdline string, cfg sysinfo.KernelConfig, found bool) (zeroed bool, why string) {
	for _, a := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(a, "init_on_free="); ok {
			on := v != "0" && v != "off" && v != "n" && v != "no" && v != "false"
			return on, "init_on_free=" + v + " on the kernel command line"
		}
	}
	if found {
		if v, ok := cfg.Value("CONFIG_INIT_ON_FREE_DEFAULT_ON"); ok {
			return v == "y", "CONFIG_INIT_ON_FREE_DEFAULT_ON=" + v + " in " + cfg.Source
		}
	}
	return true, "the kernel's init_on_free default is unknown (no /proc/config.gz or /boot/config-RELEASE)"
}
