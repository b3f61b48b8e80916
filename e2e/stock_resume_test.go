//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "resume-on-stock-kernel", CPUs: 2, Timeout: 25 * time.Minute, Run: resumeOnStockKernel})
	register(Scenario{Name: "resume-7.3-image-on-6.1", Timeout: 45 * time.Minute, Run: resumeOnOlderKernel})
}

// resumeOnOlderKernel: the machine hibernates on Linux 7.3 and the resume
// boot runs the 6.1 test kernel; the restore kernel is the 7.3 helper.
func resumeOnOlderKernel(s *S) error {
	older, err := testKernel("")
	if err != nil {
		return err
	}
	h, err := hibernateOnce(s, "7.3")
	if err != nil {
		return err
	}
	m, err := h.bootResumeOn(s, "resume", older, "")
	if err != nil {
		return err
	}
	boot, err := m.Expect(`Linux version (\S+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	if _, err := m.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	helper, err := m.Expect(`kjump-helper: up in \S+ on \d+ CPUs \(Linux (\S+)\)`, 5*time.Minute)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(boot[1], "6.1.") || !strings.HasPrefix(helper[1], "7.3") {
		return fmt.Errorf("booted %s and restored with %s; want 6.1 then the 7.3 helper", boot[1], helper[1])
	}
	return h.expectResumed(m)
}

// resumeOnStockKernel: the machine hibernates on the 6.1 test kernel and
// boots Debian's stock kernel (another build, without CONFIG_KEXEC_JUMP)
// to resume. The boot kernel only has to read the disk and kexec the
// restore kernel, so any kernel with CONFIG_KEXEC resumes the image, and
// the original wakes up whole.
func resumeOnStockKernel(s *S) error {
	stock, err := vm.StockKernel()
	if err != nil {
		return fmt.Errorf("stock kernel: %w", err)
	}
	mods, err := stockModuleFiles(stock, "virtio_pci", "virtio_blk")
	if err != nil {
		return err
	}
	h, err := hibernateOnce(s, "", withFiles(mods))
	if err != nil {
		return err
	}
	m, err := h.bootResumeOn(s, "resume", stock, "kjtest=stock")
	if err != nil {
		return err
	}
	on, err := m.Expect(`HIB resuming on (\S+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	orig, ok := match(`Linux version (\S+)`, h.consoleText)
	if !ok || orig == on[1] {
		return fmt.Errorf("the resume boot ran %s, the hibernated kernel %q: not two different kernels", on[1], orig)
	}
	if _, err := m.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	if err := h.expectResumed(m); err != nil {
		return err
	}
	if strings.Contains(m.Console(), "HIB booted normally") {
		return fmt.Errorf("resume returned instead of restoring")
	}
	s.T.Logf("hibernated on %s, resumed from a boot of %s", orig, on[1])
	return nil
}
