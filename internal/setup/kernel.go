package setup

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/kjump/kjump/internal/sysinfo"
)

// option is a kernel build option kjump needs, and why.
type option struct {
	name, why string
	// before: only kernels older than this major.minor need it (0: all).
	before [2]int
}

// required are the running kernel's options (docs/setup.md, "Kernel
// requirements"); the running kernel also serves as helper kernel.
var required = []option{
	{name: "CONFIG_KEXEC", why: "kexec_load, the jump itself"},
	{name: "CONFIG_KEXEC_JUMP", why: "a kexec that returns (preserve context)"},
	{name: "CONFIG_CRASH_DUMP", why: "the helper reads the stopped kernel's RAM as /proc/vmcore"},
	{name: "CONFIG_PROC_VMCORE", why: "/proc/vmcore in the helper"},
	{name: "CONFIG_DEVMEM", why: "/dev/mem for the handoff area and restore writes"},
	{name: "CONFIG_RELOCATABLE", why: "the helper runs inside the reserved region"},
	{name: "CONFIG_KALLSYMS_ALL", why: "saved_context, to restore the GDT after the jump back", before: [2]int{6, 13}},
}

// kernelFacts is what setup reads about the running kernel.
type kernelFacts struct {
	Release    string
	ConfigFrom string // where its build configuration was read; "" if nowhere
	Missing    []option
	Lockdown   string // "none", "integrity", "confidentiality"; "" without the lockdown LSM
	NoKexec    bool   // no /sys/kernel/kexec_loaded
}

// readKernel checks the running kernel below root.
func (o *Options) readKernel() (kernelFacts, error) {
	var k kernelFacts
	rel, err := os.ReadFile(o.path("/proc/sys/kernel/osrelease"))
	if err != nil {
		return k, fmt.Errorf("reading the kernel release: %w (is /proc mounted?)", err)
	}
	k.Release = strings.TrimSpace(string(rel))
	if _, err := os.Stat(o.path("/sys/kernel/kexec_loaded")); err != nil {
		k.NoKexec = true
	}
	if b, err := os.ReadFile(o.path("/sys/kernel/security/lockdown")); err == nil {
		k.Lockdown = "none"
		s := string(b)
		if i, j := strings.Index(s, "["), strings.Index(s, "]"); i >= 0 && j > i {
			k.Lockdown = s[i+1 : j]
		}
	}
	cfg, from, err := o.kernelConfig(k.Release)
	if err != nil {
		return k, err
	}
	k.ConfigFrom = from
	if from == "" {
		return k, nil
	}
	major, minor := kernelVersion(k.Release)
	for _, opt := range required {
		if opt.before[0] != 0 && (major > opt.before[0] || major == opt.before[0] && minor >= opt.before[1]) {
			continue
		}
		if !cfg.Enabled(opt.name) {
			k.Missing = append(k.Missing, opt)
		}
	}
	return k, nil
}

// kernelConfig reads /proc/config.gz or /boot/config-RELEASE below root.
func (o *Options) kernelConfig(release string) (sysinfo.KernelConfig, string, error) {
	if b, err := os.ReadFile(o.path("/proc/config.gz")); err == nil {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			return sysinfo.KernelConfig{}, "", fmt.Errorf("/proc/config.gz: %w", err)
		}
		cfg, err := sysinfo.ParseKernelConfig(zr)
		return cfg, "/proc/config.gz", err
	}
	p := "/boot/config-" + release
	b, err := os.ReadFile(o.path(p))
	if err != nil {
		return sysinfo.KernelConfig{}, "", nil
	}
	cfg, err := sysinfo.ParseKernelConfig(bytes.NewReader(b))
	return cfg, p, err
}

func kernelVersion(release string) (int, int) {
	f := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(f) < 2 {
		return 0, 0
	}
	a, _ := strconv.Atoi(f[0])
	b, _ := strconv.Atoi(f[1])
	return a, b
}

// problems lists everything about the kernel that stops kjump, each with
// what to do; empty when it qualifies.
func (k kernelFacts) problems(distro distro) []string {
	var p []string
	if k.NoKexec && len(k.Missing) == 0 {
		p = append(p, fmt.Sprintf("kernel %s has no kexec support (no /sys/kernel/kexec_loaded): needs CONFIG_KEXEC=y and CONFIG_KEXEC_JUMP=y", k.Release))
	}
	for _, m := range k.Missing {
		p = append(p, fmt.Sprintf("%s is not set (%s; read from %s)", m.name, m.why, k.ConfigFrom))
	}
	kernelBad := len(p) > 0
	switch k.Lockdown {
	case "", "none":
	default:
		p = append(p, fmt.Sprintf("kernel lockdown is %q (/sys/kernel/security/lockdown; Secure Boot turns it on): it blocks kexec_load, as it blocks the kernel's own hibernation; turn Secure Boot off in the firmware setup, or boot a kernel whose lockdown is none", k.Lockdown))
	}
	if kernelBad {
		p = append(p, distro.kernelAdvice())
	}
	return p
}

// distro is /etc/os-release's identity.
type distro struct {
	ID, Like, Version, Name string
}

func (o *Options) readDistro() distro {
	var d distro
	b, err := os.ReadFile(o.path("/etc/os-release"))
	if err != nil {
		b, _ = os.ReadFile(o.path("/usr/lib/os-release"))
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			d.ID = v
		case "ID_LIKE":
			d.Like = v
		case "VERSION_ID":
			d.Version = v
		case "PRETTY_NAME":
			d.Name = v
		}
	}
	if d.Name == "" {
		d.Name = d.ID
	}
	return d
}

func (d distro) is(ids ...string) bool {
	for _, id := range ids {
		if d.ID == id || strings.Contains(" "+d.Like+" ", " "+id+" ") {
			return true
		}
	}
	return false
}

// kernelAdvice says where a kernel with KEXEC_JUMP comes from here. The
// stock kernels of Fedora, RHEL and CentOS Stream, Ubuntu 24.04 and
// 26.04, Arch and NixOS set it; Debian 12 and 13, openSUSE and SLE do
// not (docs/setup.md).
func (d distro) kernelAdvice() string {
	recipe := "see docs/setup.md, 'Kernels without KEXEC_JUMP'"
	switch {
	case d.is("debian") && !d.is("ubuntu") && d.ID != "ubuntu":
		return "what to do: Debian's stock kernel (12 and 13) is built without CONFIG_KEXEC_JUMP; a kernel built with it is needed: " + recipe
	case d.is("suse", "opensuse", "sles") || strings.HasPrefix(d.ID, "opensuse"):
		return "what to do: the stock kernels of openSUSE and SLE are built without CONFIG_KEXEC_JUMP; a kernel built with it is needed: " + recipe
	case d.ID == "ubuntu" || d.is("ubuntu"):
		return "what to do: boot Ubuntu's generic kernel (linux-image-generic; 24.04 and 26.04 set CONFIG_KEXEC_JUMP=y)"
	case d.is("fedora", "rhel", "centos"):
		return "what to do: boot the distribution's stock kernel (the kernel package of Fedora, RHEL and CentOS Stream sets CONFIG_KEXEC_JUMP=y)"
	case d.is("arch"):
		return "what to do: boot Arch's stock kernel (the linux package sets CONFIG_KEXEC_JUMP=y)"
	case d.ID == "nixos":
		return "what to do: boot NixOS's default kernel (boot.kernelPackages = pkgs.linuxPackages sets CONFIG_KEXEC_JUMP=y)"
	}
	return "what to do: boot a kernel built with the options above (stock on Fedora, RHEL/CentOS Stream, Ubuntu 24.04/26.04, Arch and NixOS; " + recipe + ")"
}
