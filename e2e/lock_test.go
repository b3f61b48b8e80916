//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "lock-one-at-a-time", CPUs: 2, Timeout: 20 * time.Minute, Run: lockOneAtATime})
}

// lockOneAtATime runs three kjump commands at once in one machine: a
// checkpoint holds /run/kjump/lock; a second checkpoint with --lock-wait 0
// is refused at once naming the holder; 'hibernate check' (which may probe
// kexec_load) waits for it, saying for whom. The first checkpoint jumps to
// its own helper and back, and the workload's memory is intact.
func lockOneAtATime(s *S) error {
	kernel, initrd, err := s.jumpingBoot("", workloadStart+`
echo "LOCK before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint >/tmp/first.log 2>&1 &
first=$!
while [ ! -s /run/kjump/lock ]; do sleep 0.05; done
echo "LOCK holder: $(cat /run/kjump/lock) first=$first"
hibernate checkpoint --lock-wait 0 >/tmp/second.log 2>&1; echo "LOCK second rc=$?"
hibernate check >/tmp/check.log 2>&1; echo "LOCK check rc=$?"
wait $first; echo "LOCK first rc=$?"
for f in second check first; do echo "LOCK $f log begin"; cat /tmp/$f.log; echo "LOCK $f log end"; done
sleep 1
echo "LOCK after counter=$(cat /run/kjump-workload/counter)"
echo "LOCK cpus=$(cat /sys/devices/system/cpu/online)"
kjump-workload verify || return 1
`)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, SMP: 2, Append: region})
	if err != nil {
		return err
	}
	before, err := m.Expect(`LOCK before counter=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	h, err := m.Expect(`LOCK holder: pid (\d+): hibernate checkpoint, since \S+ first=(\d+)`, 3*time.Minute)
	if err != nil {
		return err
	}
	if h[1] != h[2] {
		return fmt.Errorf("the lock names pid %s, the first checkpoint is pid %s", h[1], h[2])
	}
	holder := "pid " + h[1] + ": hibernate checkpoint, since "
	if err := expectAll(m, 2*time.Minute, "LOCK second rc=1"); err != nil {
		return err
	}
	if err := expectAll(m, 10*time.Minute, "LOCK check rc=", "LOCK first rc=0", "LOCK first log end"); err != nil {
		return err
	}
	logs := map[string][]string{
		"second": {"another kjump run holds /run/kjump/lock (" + holder, "nothing was changed", "--lock-wait"},
		"check":  {"waiting up to 5m0s for another kjump run to finish: " + holder, "PASS  kexec-jump", "PASS  reserved-region"},
		"first":  {"hibernate: back after"},
	}
	con := strings.ReplaceAll(m.Console(), "\r", "")
	for name, wants := range logs {
		b, e := strings.Index(con, "LOCK "+name+" log begin"), strings.Index(con, "LOCK "+name+" log end")
		if b < 0 || e < b {
			return fmt.Errorf("no %s log in the console", name)
		}
		out := con[b:e]
		for _, w := range wants {
			if !strings.Contains(out, w) {
				return fmt.Errorf("%s run: no %q in its output:\n%s", name, w, out)
			}
		}
	}
	if strings.Contains(con[strings.Index(con, "LOCK second log begin"):strings.Index(con, "LOCK second log end")], "jumping") {
		return fmt.Errorf("the refused checkpoint jumped")
	}
	after, err := m.Expect(`LOCK after counter=(\d+)`, time.Minute)
	if err != nil {
		return err
	}
	if atoi(after[1]) <= atoi(before[1]) {
		return fmt.Errorf("workload counter did not advance: %s before, %s after", before[1], after[1])
	}
	if err := expectAll(m, time.Minute, "LOCK cpus=0-1", "WORKLOAD VERIFY ok", "E2E exit rc=0"); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}
