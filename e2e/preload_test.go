//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	// kexec_load_limit_reboot, which guards a preloaded helper, exists
	// from Linux 6.6: 7.3 preloads, 6.1 must refuse clearly and still work.
	register(Scenario{Name: "preload-linux7.3", Timeout: 40 * time.Minute, Run: func(s *S) error { return preloadScenario(s, "7.3") }})
	register(Scenario{Name: "preload-refused", CPUs: 2, Run: func(s *S) error { return preloadScenario(s, "") }})
}

// preloadScript: time a checkpoint without preload, preload, checkpoint
// with it (it must be used, and preloaded again afterwards), let another
// tool load a kexec image, checkpoint again (the foreign image must be
// noticed and replaced), and verify the workload after all of it.
const preloadScript = workloadStart + `
echo "PRE ckpt0 start"
hibernate checkpoint
echo "PRE ckpt0 rc=$?"
hibernate preload
echo "PRE preload rc=$? loaded=$(cat /sys/kernel/kexec_loaded) limit=$(cat /proc/sys/kernel/kexec_load_limit_reboot 2>/dev/null)"
hibernate check | grep preload
echo "PRE ckpt1 start"
hibernate checkpoint
echo "PRE ckpt1 rc=$? loaded=$(cat /sys/kernel/kexec_loaded)"
kjump-workload kexec-load-other
echo "PRE foreign rc=$?"
hibernate check | grep preload
echo "PRE ckpt2 start"
hibernate checkpoint
echo "PRE ckpt2 rc=$?"
kjump-workload verify
`

func preloadScenario(s *S, version string) error {
	kernel, initrd, err := s.jumpingBoot(version, preloadScript)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: 2, Append: region})
	if err != nil {
		return err
	}
	if _, err := m.ExpectString("PRE ckpt0 rc=0", 5*time.Minute); err != nil {
		return err
	}
	if version == "" { // Linux 6.1: no load counter
		if _, err := m.Expect(`not preloaded: this kernel has no kexec_load_limit_reboot \(added in Linux 6.6\).*loaded when you hibernate`, time.Minute); err != nil {
			return err
		}
		if _, err := m.Expect(`PRE preload rc=1 loaded=0`, time.Minute); err != nil {
			return err
		}
		if _, err := m.Expect(`PASS\s+preload\s+not available on kernel`, time.Minute); err != nil {
			return err
		}
		if _, err := m.ExpectString("PRE ckpt1 rc=0", 5*time.Minute); err != nil {
			return err
		}
		if strings.Contains(m.Console(), "using the helper preloaded") {
			return fmt.Errorf("6.1 used a preloaded helper it cannot guard")
		}
		if _, err := m.ExpectString("WORKLOAD VERIFY ok", 10*time.Minute); err != nil {
			return err
		}
		return nil
	}
	pre, err := m.Expect(`PRE preload rc=(\d+) loaded=(\d) limit=(\d+)`, time.Minute)
	if err != nil {
		return err
	}
	if pre[1] != "0" || pre[2] != "1" {
		return fmt.Errorf("hibernate preload: rc=%s, kexec_loaded=%s", pre[1], pre[2])
	}
	if _, err := m.Expect(`PASS\s+preload\s+helper preloaded at \S+, guarded by kexec_load_limit_reboot`, time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("hibernate: using the helper preloaded at boot", 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("hibernate: helper preloaded again for the next hibernate", 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("PRE ckpt1 rc=0 loaded=1", time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("PRE foreign rc=0", time.Minute); err != nil {
		return err
	}
	if _, err := m.Expect(`WARN\s+preload\s+the preloaded helper was replaced or unloaded`, time.Minute); err != nil {
		return err
	}
	if _, err := m.Expect(`not using the preloaded helper: another kexec load or unload happened since the preload \(kexec_load_limit_reboot went from \d+ to \d+\); loading it now`, 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("PRE ckpt2 rc=0", 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("WORKLOAD VERIFY ok", 10*time.Minute); err != nil {
		return err
	}
	// The log file has the host's timestamps (the console text does not).
	b, _ := os.ReadFile(m.ConsolePath())
	con := string(b)
	fmt.Printf("  %s: command to jump %.2fs loading the helper, %.2fs preloaded, %.2fs after a foreign load\n", s.Name,
		toJump(con, "PRE ckpt0 start"), toJump(con, "PRE ckpt1 start"), toJump(con, "PRE ckpt2 start"))
	return nil
}

// toJump is the console time from the line tag to the next "jumping to the
// helper kernel" line.
func toJump(con, tag string) float64 {
	i := strings.Index(con, tag)
	if i < 0 {
		return -1
	}
	ts := regexp.MustCompile(`\[\s*([\d.]+)\] `)
	start := ts.FindAllStringSubmatch(con[max(0, strings.LastIndex(con[:i], "\n")):i+len(tag)], -1)
	j := strings.Index(con[i:], "jumping to the helper kernel")
	if len(start) == 0 || j < 0 {
		return -1
	}
	end := ts.FindAllStringSubmatch(con[strings.LastIndex(con[:i+j], "\n"):i+j], -1)
	if len(end) == 0 {
		return -1
	}
	a, _ := strconv.ParseFloat(start[0][1], 64)
	b, _ := strconv.ParseFloat(end[0][1], 64)
	return b - a
}
