//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{
		Name: "no-kexec-jump",
		Run:  noKexecJump,
	})
}

// noKexecJump runs `hibernate checkpoint` on Debian's stock kernel, which is
// built without CONFIG_KEXEC_JUMP: the command must refuse with a message
// naming that option, exit non-zero, and leave the machine and its
// processes running untouched.
func noKexecJump(s *S) error {
	kernel, err := vm.StockKernel()
	if err != nil {
		return fmt.Errorf("stock kernel: %w", err)
	}
	// The stock kernel's virtio drivers are modules: no disks, no network.
	initrd, err := s.Initramfs(`
kjump-workload run -mib 32 -print-every 1 &
while [ ! -f /run/kjump-workload/pid ]; do sleep 0.2; done
sleep 2
echo "NOJUMP before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint
echo "NOJUMP checkpoint rc=$?"
sleep 3
echo "NOJUMP after counter=$(cat /run/kjump-workload/counter)"
kjump-workload verify && echo "NOJUMP still running"
`, nil)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: 2})
	if err != nil {
		return err
	}
	before, err := m.Expect(`NOJUMP before counter=(\d+)`, 3*time.Minute)
	if err != nil {
		return err
	}
	rc, err := m.Expect(`NOJUMP checkpoint rc=(\d+)`, 3*time.Minute)
	if err != nil {
		return err
	}
	// The refusal is what the command printed between the two markers.
	con := m.Console()
	out := con[strings.Index(con, before[0])+len(before[0]) : strings.Index(con, rc[0])]
	if !strings.Contains(out, "CONFIG_KEXEC_JUMP") {
		return fmt.Errorf("hibernate checkpoint did not refuse naming CONFIG_KEXEC_JUMP; it printed: %q", strings.TrimSpace(out))
	}
	if rc[1] == "0" {
		return fmt.Errorf("hibernate checkpoint exited 0 on a kernel without CONFIG_KEXEC_JUMP")
	}
	after, err := m.Expect(`NOJUMP after counter=(\d+)`, time.Minute)
	if err != nil {
		return err
	}
	b, _ := strconv.Atoi(before[1])
	a, _ := strconv.Atoi(after[1])
	if a <= b {
		return fmt.Errorf("workload counter stopped: %d before checkpoint, %d after", b, a)
	}
	if err := expectAll(m, time.Minute, "WORKLOAD VERIFY ok", "NOJUMP still running", "E2E exit rc=0"); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}
