package kmsg

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A line written reaches the kernel's log buffer with its priority and
// the user facility (8 + level in /dev/kmsg's records), one line however
// many newlines the message had.
func TestPrintfReachesKernelLog(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root to write /dev/kmsg")
	}
	marker := fmt.Sprintf("kjump-kmsg-test-%d", time.Now().UnixNano())
	if err := Printf(Warning, "resume", "refused %s:\nsecond line", marker); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(Path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for {
		rec, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("marker not in the kernel log: %v", err)
		}
		if !strings.Contains(rec, marker) {
			continue
		}
		// "PRIO,SEQ,TS,FLAGS;MESSAGE"
		if !strings.HasPrefix(rec, "12,") || !strings.HasSuffix(strings.TrimSpace(rec), "resume: refused "+marker+":; second line") {
			t.Fatalf("record %q", rec)
		}
		return
	}
}
