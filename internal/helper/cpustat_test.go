package helper

import "testing"

func TestCPUTimesBusySince(t *testing.T) {
	a, err := parseCPUTimes("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n")
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseCPUTimes("cpu  250 10 90 850 90 5 5 0 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	// deltas: user 160, system 50, idle 50, iowait 40: 300 ticks
	if got, want := a.busySince(b), "CPUs 70% busy (user 53%, system 17%), 13% waiting for I/O, 17% idle"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := parseCPUTimes("intr 1 2 3\n"); err == nil {
		t.Error("a /proc/stat without the cpu line was accepted")
	}
}
