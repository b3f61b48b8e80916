package helper

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuTimes is the first line of /proc/stat: ticks all CPUs spent per state.
type cpuTimes struct{ user, system, idle, iowait, other uint64 }

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(string(b))
}

func parseCPUTimes(stat string) (cpuTimes, error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return cpuTimes{}, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var v [10]uint64
	for i := 1; i < len(f) && i <= len(v); i++ {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return cpuTimes{}, fmt.Errorf("/proc/stat: %q: %w", line, err)
		}
		v[i-1] = n
	}
	// user nice system idle iowait irq softirq steal (guest time is in user)
	return cpuTimes{user: v[0] + v[1], system: v[2] + v[5] + v[6], idle: v[3], iowait: v[4], other: v[7]}, nil
}

// busySince says how the CPUs spent the time since t: whether a capture
// was limited by the CPUs (busy near 100 %) or by the target (iowait).
func (t cpuTimes) busySince(now cpuTimes) string {
	d := func(a, b uint64) float64 { return float64(a - b) }
	user, sys, idle, wait, other := d(now.user, t.user), d(now.system, t.system), d(now.idle, t.idle), d(now.iowait, t.iowait), d(now.other, t.other)
	total := user + sys + idle + wait + other
	if total == 0 {
		return "no CPU time elapsed"
	}
	pct := func(x float64) float64 { return 100 * x / total }
	return fmt.Sprintf("CPUs %.0f%% busy (user %.0f%%, system %.0f%%), %.0f%% waiting for I/O, %.0f%% idle",
		pct(user+sys), pct(user), pct(sys), pct(wait), pct(idle))
}
