//go:build e2e

package e2e

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

// region is the helper's reserved memory in every jumping VM (1 GiB RAM):
// in the middle of RAM, where planning mistakes show.
const region = "memmap=128M$0x30000000"

// testKernel is the test kernel of a Linux version ("" for the default,
// 6.1; "X.Y-distro" for the distribution kernel of kernel/distro-vm.sh):
// the same unpatched configuration serves as original, helper and restore
// kernel.
func testKernel(version string) (string, error) {
	var k string
	var err error
	switch {
	case version == "":
		k, err = vm.Kernel()
	case strings.HasSuffix(version, distroSuffix):
		k, err = vm.DistroKernel(strings.TrimSuffix(version, distroSuffix))
	default:
		k, err = vm.BuildKernel(version)
	}
	if err != nil {
		return "", fmt.Errorf("test kernel %s: %w", version, err)
	}
	return k, nil
}

// jumpingBoot returns the kernel of a Linux version ("" for 6.1) and an
// initramfs running body on a machine that has kjump and its helper files
// installed at their default paths, plus any extra files.
func (s *S) jumpingBoot(version, body string, extra ...map[string]vm.File) (kernel, initrd string, err error) {
	return s.jumpingBootWith(version, virtioModules, body, extra...)
}

// kernelModules are the modules a modular kernel's original loads at boot
// and those its helper gets from 'hibernate prepare': the drivers of the
// machine's disks. late ones are only put in the initramfs, listed in
// /etc/kjtest-late-modules, for the script to load when the disks of the
// others are up: the kernel then names the disks in a known order.
type kernelModules struct{ boot, late, helper []string }

// virtioModules serve the virtio disks of most scenarios.
var virtioModules = kernelModules{boot: bootModules, helper: []string{"virtio_blk"}}

// jumpingBootWith is jumpingBoot for a machine whose disks need other
// drivers than virtio_blk (with a modular kernel; built-in drivers need
// nothing).
func (s *S) jumpingBootWith(version string, mods kernelModules, body string, extra ...map[string]vm.File) (kernel, initrd string, err error) {
	if kernel, err = testKernel(version); err != nil {
		return "", "", err
	}
	files, err := s.helperFilesWith(kernel, mods.helper...)
	if err != nil {
		return "", "", err
	}
	if modular(kernel) {
		boot, err := s.bootModuleFiles(kernel, mods.boot...)
		if err != nil {
			return "", "", err
		}
		for k, v := range boot {
			files[k] = v
		}
		if len(mods.late) > 0 {
			late, err := s.bootModuleFiles(kernel, mods.late...)
			if err != nil {
				return "", "", err
			}
			late["etc/kjtest-late-modules"] = late["etc/kjtest-modules"]
			delete(late, "etc/kjtest-modules")
			for k, v := range late {
				files[k] = v
			}
		}
		body = loadBootModules + body
		// As a distribution installs it: hibernate reads init_on_free's
		// default from /boot/config-RELEASE when the kernel has no
		// /proc/config.gz (Debian's has none), and zeroes free pages when
		// it cannot tell.
		if cfg, release, ok := installedConfig(kernel); ok {
			files["boot/config-"+release] = vm.File{Host: cfg, Mode: 0o644}
		}
	}
	for _, m := range extra {
		for k, v := range m {
			files[k] = v
		}
	}
	initrd, err = s.Initramfs(body, files)
	return kernel, initrd, err
}

// helperFiles builds the helper initramfs (kjump's static binary as /init,
// nothing else; with a modular kernel, 'hibernate prepare' adds the modules
// of the image disk) and returns the files a jumping machine needs at the
// default paths of hibernate and resume.
func (s *S) helperFiles(kernel string) (map[string]vm.File, error) {
	return s.helperFilesWith(kernel, virtioModules.helper...)
}

// helperFilesWith is helperFiles with these modules in the helper
// initramfs of a modular kernel.
func (s *S) helperFilesWith(kernel string, modules ...string) (map[string]vm.File, error) {
	if goBinErr != nil {
		return nil, goBinErr
	}
	initrd := filepath.Join(s.Dir, "helper.cpio.gz")
	if modular(kernel) {
		if err := s.prepareHelper(kernel, initrd, modules...); err != nil {
			return nil, err
		}
	}
	return vm.HelperFiles(initrd, kernel, goBins["bin/hibernate"])
}

// intMatch returns submatch i of the first match of re in text, as an int.
func intMatch(re, text string, i int) (int, error) {
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	if m == nil {
		return 0, fmt.Errorf("no %q in the console log", re)
	}
	return strconv.Atoi(m[i])
}

// match returns submatch 1 of the first match of re in text.
func match(re, text string) (string, bool) {
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// expectRefusal checks a refused `hibernate checkpoint` in a script that
// prints "TAG before counter=N", runs the command, prints "TAG rc=N", waits,
// prints "TAG after counter=N" and verifies the workload: the command must
// exit non-zero, print every one of wants (what is wrong and the fix), and
// leave the workload running and intact.
func expectRefusal(m *vm.Machine, tag string, wants ...string) error {
	before, err := m.Expect(tag+` before counter=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	rc, err := m.Expect(tag+` rc=(\d+)`, 3*time.Minute)
	if err != nil {
		return err
	}
	// The refusal is what the command printed between the two markers.
	con := m.Console()
	out := strings.TrimSpace(con[strings.Index(con, before[0])+len(before[0]) : strings.Index(con, rc[0])])
	for _, w := range wants {
		if !strings.Contains(out, w) {
			return fmt.Errorf("refusal does not say %q; it printed: %q", w, out)
		}
	}
	if rc[1] == "0" {
		return fmt.Errorf("hibernate exited 0 although it refused: %q", out)
	}
	after, err := m.Expect(tag+` after counter=(\d+)`, time.Minute)
	if err != nil {
		return err
	}
	if b, a := atoi(before[1]), atoi(after[1]); a <= b {
		return fmt.Errorf("workload counter stopped: %d before, %d after", b, a)
	}
	if err := expectAll(m, time.Minute, "WORKLOAD VERIFY ok", tag+" still running", "E2E exit rc=0"); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}
