//go:build e2e

package e2e

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "checkpoint-smp1", Run: func(s *S) error { return checkpointRoundTrip(s, "", 1) }})
	register(Scenario{Name: "checkpoint-smp2", CPUs: 2, Run: func(s *S) error { return checkpointRoundTrip(s, "", 2) }})
	// Linux 7.3 has the reworked relocate_kernel (6.14+ calling convention,
	// GDT restored by the kernel): the same kjump must work there too.
	register(Scenario{Name: "checkpoint-smp2-linux7.3", Timeout: 40 * time.Minute,
		Run: func(s *S) error { return checkpointRoundTrip(s, "7.3", 2) }})
	register(Scenario{Name: "no-reserved-region", CPUs: 2, Run: noReservedRegion})
}

// workloadStart runs the memory workload (a 256 MiB buffer with a known
// checksum, and a counter) in the background and waits until it is ready.
const workloadStart = `
kjump-workload run -mib 256 -print-every 0 &
while [ ! -f /run/kjump-workload/pid ]; do sleep 0.2; done
sleep 1
`

// checkpointRoundTrip jumps to the helper and back twice (a fresh helper
// each time): the workload continues with its memory intact, every CPU
// comes back, and hibernate prints what the helper read.
func checkpointRoundTrip(s *S, version string, smp int) error {
	kernel, initrd, err := s.jumpingBoot(version, workloadStart+`
for round in 1 2; do
  echo "CKPT round $round before counter=$(cat /run/kjump-workload/counter)"
  hibernate checkpoint
  echo "CKPT round $round rc=$?"
  echo "CKPT round $round cpus=$(cat /sys/devices/system/cpu/online)"
  sleep 2
  echo "CKPT round $round after counter=$(cat /run/kjump-workload/counter)"
  kjump-workload verify || return 1
done
`)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: smp, Append: region})
	if err != nil {
		return err
	}
	wantCPUs := map[int]string{1: "0", 2: "0-1"}[smp]
	for round := 1; round <= 2; round++ {
		before, err := m.Expect(fmt.Sprintf(`CKPT round %d before counter=(\d+)`, round), 5*time.Minute)
		if err != nil {
			return err
		}
		rep, err := m.Expect(`hibernate: back after \S+: helper \((\d+) CPUs\) read (\d+) MiB of RAM`, 5*time.Minute)
		if err != nil {
			return err
		}
		if rep[1] != fmt.Sprint(smp) {
			return fmt.Errorf("round %d: helper ran on %s CPUs, want %d", round, rep[1], smp)
		}
		if mib, _ := intMatch(`(\d+)`, rep[2], 1); mib < 800 {
			return fmt.Errorf("round %d: helper read only %d MiB of the original's ~895 MiB", round, mib)
		}
		if _, err := m.ExpectString(fmt.Sprintf("CKPT round %d rc=0", round), time.Minute); err != nil {
			return err
		}
		cpus, err := m.Expect(fmt.Sprintf(`CKPT round %d cpus=(\S+)`, round), time.Minute)
		if err != nil {
			return err
		}
		if cpus[1] != wantCPUs {
			return fmt.Errorf("round %d: CPUs online after the jump back: %s, want %s", round, cpus[1], wantCPUs)
		}
		after, err := m.Expect(fmt.Sprintf(`CKPT round %d after counter=(\d+)`, round), time.Minute)
		if err != nil {
			return err
		}
		if a, b := atoi(after[1]), atoi(before[1]); a <= b {
			return fmt.Errorf("round %d: workload counter did not advance: %s before, %s after", round, before[1], after[1])
		}
		if _, err := m.Expect(`WORKLOAD VERIFY ok`, time.Minute); err != nil {
			return err
		}
	}
	if _, err := m.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}

// noReservedRegion: without memory reserved at boot, hibernate refuses
// clearly and the machine and its processes carry on untouched.
func noReservedRegion(s *S) error {
	kernel, initrd, err := s.jumpingBoot("", workloadStart+`
echo "NORES before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint
echo "NORES rc=$?"
sleep 2
echo "NORES after counter=$(cat /run/kjump-workload/counter)"
kjump-workload verify && echo "NORES still running"
`)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: 2})
	if err != nil {
		return err
	}
	if err := expectRefusal(m, "NORES", "no memory is reserved for the helper kernel", "memmap="); err != nil {
		return err
	}
	// The fix names a concrete reservation (the one 'hibernate setup'
	// would make), not memmap=SIZE$ADDR to fill in.
	fix := regexp.MustCompile(`add memmap=\d+[KMG]\$0x[0-9a-f]+ to the kernel command line`).FindString(m.Console())
	if fix == "" {
		return fmt.Errorf("the refusal suggests no concrete memmap=SIZE$ADDR")
	}
	s.T.Logf("suggested: %s", fix)
	return nil
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }
