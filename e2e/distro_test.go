//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/kjump/kjump/internal/vm"
)

// Debian 13's kernel, built by kernel/distro-vm.sh from Debian's own config
// plus KEXEC_JUMP: drivers are compressed modules (.ko.xz), loaded by the
// original at boot and by the helper from what 'hibernate prepare' put in
// its initramfs.
func init() {
	register(Scenario{Name: "hibernate-resume-linux6.12-distro",
		Run: func(s *S) error { return hibernateResume(s, "6.12"+distroSuffix) }})
	register(Scenario{Name: "checkpoint-smp2-linux6.12-distro",
		Run: func(s *S) error { return checkpointRoundTrip(s, "6.12"+distroSuffix, 2) }})
}

const distroSuffix = "-distro"

// bootModules are what the original needs before the scenario's script
// runs: its virtio disks and the ext4 data disk (ext4 finds crc32c, a
// soft dependency modules.dep does not list, through the crypto API).
var bootModules = []string{"virtio_blk", "crc32c_generic", "ext4"}

// loadBootModules loads /etc/kjtest-modules when they were built for the
// running kernel, and waits for every virtio disk, as an initramfs's udev would.
const loadBootModules = `
if [ -f /etc/kjtest-modules ] && [ -d /lib/modules/$(uname -r) ]; then
  while read -r m; do insmod "$m" || echo "E2E insmod $m failed"; done </etc/kjtest-modules
  want=$(grep -l 0x0002 /sys/bus/virtio/devices/*/device 2>/dev/null | wc -l)   # virtio block devices
  i=0; while [ "$(ls -d /dev/vd? 2>/dev/null | wc -l)" -lt "$want" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
fi
`

// modular reports whether kernel has its modules next to it (kernel/stock.sh
// and kernel/distro-vm.sh lay them out as lib/modules/<release>/).
func modular(kernel string) bool {
	deps, _ := filepath.Glob(filepath.Join(filepath.Dir(kernel), "lib", "modules", "*", "modules.dep"))
	return len(deps) == 1
}

// installedConfig returns the configuration kept next to a modular kernel
// (kernel/distro-vm.sh's config) and the release its modules are built for.
func installedConfig(kernel string) (path, release string, ok bool) {
	deps, _ := filepath.Glob(filepath.Join(filepath.Dir(kernel), "lib", "modules", "*", "modules.dep"))
	path = filepath.Join(filepath.Dir(kernel), "config")
	if len(deps) != 1 || !exists(path) {
		return "", "", false
	}
	return path, filepath.Base(filepath.Dir(deps[0])), true
}

// prepareHelper builds the helper initramfs with 'hibernate prepare', as on
// a real machine: kjump as /init plus the modules (and their dependencies)
// the helper kernel needs to reach the image.
func (s *S) prepareHelper(kernel, initrd string, modules ...string) error {
	conf, err := s.emptyConfig()
	if err != nil {
		return err
	}
	args := []string{"prepare", "--config", conf,
		"--kernel", kernel, "--modules-root", filepath.Dir(kernel), "--initrd", initrd}
	for _, m := range modules {
		args = append(args, "--module", m)
	}
	out, err := exec.Command(goBins["bin/hibernate"], args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("hibernate prepare: %v: %s", err, out)
	}
	s.T.Logf("hibernate prepare: %s", out)
	return nil
}

// emptyConfig writes an empty kjump.conf (every default; a --config that
// does not exist is an error) for host-side 'hibernate prepare' runs.
func (s *S) emptyConfig() (string, error) {
	conf := filepath.Join(s.Dir, "kjump.conf")
	return conf, os.WriteFile(conf, nil, 0o644)
}

// bootModuleFiles is stockModuleFiles with the modules decompressed for
// busybox's insmod (the helper loads the compressed ones itself).
func (s *S) bootModuleFiles(kernel string, names ...string) (map[string]vm.File, error) {
	files, err := stockModuleFiles(kernel, names...)
	if err != nil {
		return nil, err
	}
	out := map[string]vm.File{}
	dir := filepath.Join(s.Dir, "boot-modules")
	for name, f := range files {
		if !strings.HasSuffix(name, ".xz") {
			out[name] = f
			continue
		}
		plain := filepath.Join(dir, strings.TrimSuffix(name, ".xz"))
		if err := os.MkdirAll(filepath.Dir(plain), 0o755); err != nil {
			return nil, err
		}
		b, err := exec.Command("xz", "-dc", f.Host).Output()
		if err != nil {
			return nil, fmt.Errorf("xz -dc %s: %w", f.Host, err)
		}
		if err := os.WriteFile(plain, b, 0o644); err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(name, ".xz")] = vm.File{Host: plain, Mode: 0o644}
	}
	list := strings.ReplaceAll(string(files["etc/kjtest-modules"].Data), ".ko.xz\n", ".ko\n")
	out["etc/kjtest-modules"] = vm.File{Data: []byte(list), Mode: 0o644}
	return out, nil
}
