//go:build e2e

package e2e

import (
	"fmt"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "boot-smoke", CPUs: 2, Run: bootSmoke})
}

// bootSmoke boots the test kernel on two CPUs, runs a project binary and
// powers off: the harness, kernel config and static build all work.
func bootSmoke(s *S) error {
	kernel, err := vm.Kernel()
	if err != nil {
		return fmt.Errorf("test kernel: %w", err)
	}
	initrd, err := s.Initramfs(`
hibernate --help >/tmp/help 2>&1
echo "SMOKE hibernate-help rc=$?"
grep -q "^usage: hibernate" /tmp/help && echo "SMOKE hibernate-usage ok"
echo "SMOKE cpus-online=$(cat /sys/devices/system/cpu/online)"
echo "SMOKE kexec-jump=$(zcat /proc/config.gz | sed -n 's/^CONFIG_KEXEC_JUMP=//p')"
`, nil)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: 2})
	if err != nil {
		return err
	}
	const boot = 3 * time.Minute // TCG boots in seconds; leave room for a loaded CI machine
	if err := expectAll(m, boot, "E2E init:", "SMOKE hibernate-help rc=0", "SMOKE hibernate-usage ok"); err != nil {
		return err
	}
	if sm, err := m.Expect(`SMOKE cpus-online=(\S*)`, time.Minute); err != nil {
		return err
	} else if sm[1] != "0-1" {
		return fmt.Errorf("online CPUs %q, want 0-1", sm[1])
	}
	if sm, err := m.Expect(`SMOKE kexec-jump=(\S*)`, time.Minute); err != nil {
		return err
	} else if sm[1] != "y" {
		return fmt.Errorf("test kernel has CONFIG_KEXEC_JUMP=%q, want y", sm[1])
	}
	if _, err := m.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}
