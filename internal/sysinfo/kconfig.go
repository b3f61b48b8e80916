package sysinfo

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// KernelConfig is the running kernel's build configuration, when it can be
// found (/proc/config.gz or /boot/config-RELEASE).
type KernelConfig struct {
	Source string
	values map[string]string
}

// ReadKernelConfig looks for the running kernel's configuration. ok is
// false when neither location exists (not an error: many kernels do not
// ship it).
func ReadKernelConfig() (cfg KernelConfig, ok bool, err error) {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			return cfg, false, fmt.Errorf("/proc/config.gz: %w", err)
		}
		cfg, err = ParseKernelConfig(zr)
		cfg.Source = "/proc/config.gz"
		return cfg, err == nil, err
	}
	path := "/boot/config-" + KernelRelease()
	f, err := os.Open(path)
	if err != nil {
		return cfg, false, nil
	}
	defer f.Close()
	cfg, err = ParseKernelConfig(f)
	cfg.Source = path
	return cfg, err == nil, err
}

// ParseKernelConfig parses a .config file.
func ParseKernelConfig(r io.Reader) (KernelConfig, error) {
	cfg := KernelConfig{values: map[string]string{}}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok && strings.HasSuffix(name, " is not set") {
			cfg.values[strings.TrimSuffix(name, " is not set")] = "n"
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg.values[k] = strings.Trim(v, `"`)
		}
	}
	return cfg, sc.Err()
}

// Value returns option's value ("n" for "is not set"); ok is false when
// the configuration does not mention it.
func (c KernelConfig) Value(option string) (v string, ok bool) {
	v, ok = c.values[option]
	return v, ok
}

// Enabled reports whether option (e.g. "CONFIG_KEXEC_JUMP") is y.
func (c KernelConfig) Enabled(option string) bool { return c.values[option] == "y" }

// KernelRelease is uname -r.
func KernelRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
