//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "prepare-modules", Run: prepareModules, Timeout: 15 * time.Minute})
}

// prepareModules runs `hibernate prepare` against Debian's stock kernel,
// whose virtio and ext4 drivers are modules, and boots that kernel with the
// resulting helper initramfs and a virtio disk (virtio_pci, virtio_blk, ext4
// and their dependencies): the helper (PID 1) must load
// every module with finit_module, so the disk appears, before it looks for
// its instructions (there are none on a plain boot: it then powers off).
func prepareModules(s *S) error {
	if goBinErr != nil {
		return goBinErr
	}
	kernel, err := vm.StockKernel()
	if err != nil {
		return fmt.Errorf("stock kernel: %w", err)
	}
	initrd := filepath.Join(s.Dir, "helper.cpio.gz")
	conf, err := s.emptyConfig()
	if err != nil {
		return err
	}
	cmd := exec.Command(goBins["bin/hibernate"], "prepare", "--config", conf,
		"--kernel", kernel, "--modules-root", filepath.Dir(kernel), "--initrd", initrd,
		"--module", "virtio_pci", "--module", "virtio_blk", "--module", "ext4")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("hibernate prepare: %v: %s", err, out)
	}
	s.T.Logf("hibernate prepare: %s", out)
	m := regexp.MustCompile(`(\d+) modules: `).FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("hibernate prepare did not list modules: %s", out)
	}
	want := string(m[1])
	// Run again: current, nothing rebuilt.
	if out, err := exec.Command(cmd.Path, cmd.Args[1:]...).CombinedOutput(); err != nil || !regexp.MustCompile(`is current`).Match(out) {
		return fmt.Errorf("second hibernate prepare rebuilt or failed (%v): %s", err, out)
	}
	disk := filepath.Join(s.Dir, "disk.img")
	if err := os.WriteFile(disk, make([]byte, 16<<20), 0o644); err != nil {
		return err
	}
	mach, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, Disks: []string{disk}, SMP: 1})
	if err != nil {
		return err
	}
	if _, err := mach.Expect(`virtio_blk virtio\d+: \[vda\]`, 8*time.Minute); err != nil {
		return err
	}
	if _, err := mach.Expect(`kjump-helper: loaded `+want+` kernel modules`, time.Minute); err != nil {
		return err
	}
	if regexp.MustCompile(`loading module .*: `).MatchString(mach.Console()) {
		return fmt.Errorf("a module failed to load (see console.log)")
	}
	// No instructions on a plain boot: the helper says so and powers off.
	if _, err := mach.Expect(`no kjump.handoff= on the helper's command line`, time.Minute); err != nil {
		return err
	}
	return mach.Wait(time.Minute)
}
