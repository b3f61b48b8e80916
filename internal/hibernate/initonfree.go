package hibernate

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"strings"
)

// zeroesFreePages reports whether the running kernel keeps its free pages
// zeroed (init_on_free): it then hands them out without clearing them, so
// a restore must put zeros back. Otherwise free pages hold whatever was
// last in them and a restore may leave them as it finds them. The kernel
// command line decides; without init_on_free= on it, the kernel's
// CONFIG_INIT_ON_FREE_DEFAULT_ON (/proc/config.gz, else
// /boot/config-RELEASE). Unknown counts as zeroed: zeroing is never wrong.
func zeroesFreePages(cmdline string, configs ...string) (zeroed bool, why string) {
	for _, a := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(a, "init_on_free="); ok {
			on := v != "0" && v != "off" && v != "n" && v != "no" && v != "false"
			return on, "init_on_free=" + v + " on the kernel command line"
		}
	}
	for _, path := range configs {
		v, ok := kernelConfig(path, "CONFIG_INIT_ON_FREE_DEFAULT_ON")
		if !ok {
			continue
		}
		return v == "y", "CONFIG_INIT_ON_FREE_DEFAULT_ON=" + v + " in " + path
	}
	return true, "the kernel's init_on_free default is unknown (no /proc/config.gz or /boot/config-RELEASE)"
}

// kernelConfig returns option's value in a kernel config file (plain or
// gzip), "n" when it says "is not set"; ok is false when the file cannot
// be read or does not mention option.
func kernelConfig(path, option string) (value string, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return "", false
		}
		defer z.Close()
		r = z
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if v, found := strings.CutPrefix(line, option+"="); found {
			return v, true
		}
		if line == "# "+option+" is not set" {
			return "n", true
		}
	}
	return "", false
}
