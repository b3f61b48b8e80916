//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "check-prepare", CPUs: 2, Timeout: 20 * time.Minute, Run: checkPrepare})
}

// checkPrepare is the user's path through the configuration: an
// /etc/kjump.conf with two targets (the first absent), `hibernate prepare`
// builds the helper initramfs in the VM, `hibernate check` passes every
// line (also as JSON), fails with exit 1 on an unreachable target, and the
// prepared helper then takes a checkpoint to the configured disk.
func checkPrepare(s *S) error {
	kernel, err := testKernel("")
	if err != nil {
		return err
	}
	files, err := s.helperFiles(kernel)
	if err != nil {
		return err
	}
	delete(files, "boot/kjump/helper.cpio.gz") // hibernate prepare builds it
	disk := filepath.Join(s.Dir, "disk.img")
	f, err := os.Create(disk)
	if err == nil {
		err = f.Truncate(1100 << 20)
		f.Close()
	}
	if err != nil {
		return err
	}
	initrd, err := s.Initramfs(`
mkdir -p /etc
printf 'targets = ["/dev/vdb", "/dev/vda"]\n\n[image]\nlevel = "fast"\n' > /etc/kjump.conf
hibernate prepare; echo "CHK prepare rc=$?"
echo "CHK check begin"; hibernate check; echo "CHK check rc=$?"
hibernate check --json > /tmp/check.json; echo "CHK json rc=$?"
echo "CHK json begin"; cat /tmp/check.json; echo "CHK json end"
hibernate check --to /dev/vdz; echo "CHK bad rc=$?"
printf '[image]\nlevle = "best"\n' > /tmp/bad.conf
hibernate check --config /tmp/bad.conf; echo "CHK badconf rc=$?"
`+workloadStart+`
hibernate checkpoint; echo "CHK checkpoint rc=$?"
kjump-workload verify || return 1
/bin/resume image verify /dev/vda; echo "CHK verify rc=$?"
`, files)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: 2, Append: region, Disks: []string{disk}})
	if err != nil {
		return err
	}
	if err := expectAll(m, 5*time.Minute, "CHK prepare rc=0"); err != nil {
		return err
	}
	if err := expectAll(m, 5*time.Minute, "CHK check rc=0"); err != nil {
		return err
	}
	con := m.Console()
	out := con[strings.Index(con, "CHK check begin"):strings.Index(con, "CHK check rc=0")]
	for _, name := range []string{"root", "kernel-config", "kexec-jump", "lockdown", "jump-back", "reserved-region", "helper-kernel", "helper-initramfs", "preload", "encryption", "target", "space"} {
		if !strings.Contains(out, "PASS  "+name) {
			return fmt.Errorf("hibernate check: no PASS line for %s:\n%s", name, out)
		}
	}
	if !strings.Contains(out, "hibernation can proceed (target /dev/vda)") {
		return fmt.Errorf("hibernate check did not choose /dev/vda (the first reachable target):\n%s", out)
	}
	if err := expectAll(m, 5*time.Minute, "CHK json rc=0", "CHK json end"); err != nil {
		return err
	}
	con = m.Console()
	js := con[strings.Index(con, "CHK json begin")+len("CHK json begin") : strings.Index(con, "CHK json end")]
	js = strings.ReplaceAll(js, "\r", "")
	var rep struct {
		OK     bool   `json:"ok"`
		Target string `json:"target"`
		Checks []struct{ Name, Status string }
	}
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		return fmt.Errorf("hibernate check --json: %v in %q", err, js)
	}
	// 11 checks, kernel-config (/proc/config.gz), and the resume side:
	// resume-hook and next-boot warn (this VM boots with -kernel and
	// -initrd, no initramfs in /boot and no boot loader).
	if !rep.OK || rep.Target != "/dev/vda" || len(rep.Checks) != 14 {
		return fmt.Errorf("hibernate check --json: %+v", rep)
	}
	if _, err := m.Expect(`FAIL  target\s+no target is reachable: target /dev/vdz does not exist \(not attached\?\); fix: `, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m, time.Minute, "CHK bad rc=1"); err != nil {
		return err
	}
	if _, err := m.Expect(`/tmp/bad.conf: line 2: unknown key "image.levle"`, time.Minute); err != nil {
		return err
	}
	if err := expectAll(m, time.Minute, "CHK badconf rc=2"); err != nil {
		return err
	}
	if _, err := m.Expect(`hibernate: checkpoint committed to /dev/vda`, 10*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m, 2*time.Minute, "CHK checkpoint rc=0", "WORKLOAD VERIFY ok", "CHK verify rc=0", "E2E exit rc=0"); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}
