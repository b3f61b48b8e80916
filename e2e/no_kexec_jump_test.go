//go:build e2e

package e2e

import (
	"fmt"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{
		Name: "no-kexec-jump",
		CPUs: 2,
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
echo "NOJUMP rc=$?"
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
	return expectRefusal(m, "NOJUMP", "CONFIG_KEXEC_JUMP", "nothing was changed")
}
