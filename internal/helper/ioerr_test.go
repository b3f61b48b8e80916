package helper

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/storage"
)

func TestIOErrorsIn(t *testing.T) {
	log := []string{
		"virtio_blk virtio1: [vda] 4194304 512-byte logical blocks",
		"I/O error, dev vda, sector 204800 op 0x1:(WRITE) flags 0x4000 phys_seg 254 prio class 2",
		"Buffer I/O error on dev vda, logical block 25600, lost async page write",
		"I/O error, dev vdb, sector 8 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2",
		"I/O error, dev vda, sector 206848 op 0x1:(WRITE) flags 0x4000 phys_seg 254 prio class 2",
	}
	got := ioErrorsIn(log, "vda")
	for _, want := range []string{"WRITE failed on /dev/vda at sector 204800", "byte offset 104857600", "2 failed requests"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if got := ioErrorsIn(log, "vdc"); got != "" {
		t.Errorf("no errors on vdc, got %q", got)
	}
}

// readKmsg must return at the end of the log, not wait for the next
// message (an O_NONBLOCK os.File would park in Go's poller).
func TestReadKmsgReturns(t *testing.T) {
	done := make(chan []string)
	go func() { done <- readKmsg() }()
	select {
	case lines := <-done:
		if os.Geteuid() == 0 && len(lines) == 0 {
			t.Error("read nothing from /dev/kmsg as root")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readKmsg still reading after 5s")
	}
}

// The watcher sees a write error logged after it started, and only then.
func TestWatchWriteErrors(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /dev/kmsg")
	}
	got := make(chan string, 1)
	stop := watchWriteErrors("kjtest0", func(where string) { got <- where })
	defer stop()
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	f.WriteString("kjump unit test, not a real error: I/O error, dev kjtest9, sector 8 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2\n")
	f.WriteString("kjump unit test, not a real error: I/O error, dev kjtest0, sector 4096 op 0x1:(WRITE) flags 0x0 phys_seg 1 prio class 2\n")
	f.Close()
	select {
	case where := <-got:
		if !strings.Contains(where, "/dev/kjtest0 at sector 4096, byte offset 2097152") {
			t.Fatalf("watcher reported %q", where)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("write error not noticed within 5s")
	}
}

// A soft NFS mount's timed-out request ends the capture at once; another
// server's, or a hard mount's "still trying", does not.
func TestWatchNFSTimeouts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to write /dev/kmsg")
	}
	got := make(chan string, 1)
	stop := watchNFSTimeouts("10.99.0.1", func(line string) { got <- line })
	defer stop()
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	f.WriteString("kjump unit test, not a real error: nfs: server 10.99.0.12 not responding, timed out\n")
	f.WriteString("kjump unit test, not a real error: nfs: server 10.99.0.1 not responding, still trying\n")
	f.WriteString("kjump unit test, not a real error: nfs: server 10.99.0.1 not responding, timed out\n")
	f.Close()
	select {
	case line := <-got:
		if line != "nfs: server 10.99.0.1 not responding, timed out" {
			t.Fatalf("watcher reported %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("timeout not noticed within 5s")
	}
}

func FuzzHandoffAddr(f *testing.F) {
	f.Add("console=ttyS0 kjump.handoff=0x37ff8000 nokaslr")
	f.Add("kjump.handoff=")
	f.Add(`kjump.handoff="0x1000`)
	f.Fuzz(func(t *testing.T, line string) {
		a, err := parseHandoffAddr(line)
		if err == nil && (a == 0 || a%4096 != 0) {
			t.Fatalf("accepted handoff address %#x from %q", a, line)
		}
	})
}

func TestServerNames(t *testing.T) {
	ts := handoff.TargetSpec{Source: "10.0.2.1:/export", Path: "/ckpt"}
	err := serverNames(errors.New("write image to /mnt/kjump-target/ckpt: write /mnt/kjump-target/ckpt.tmp: no space left on device"), ts)
	if want := "write image to 10.0.2.1:/export/ckpt: write 10.0.2.1:/export/ckpt.tmp: no space left on device"; err.Error() != want {
		t.Fatalf("got %q, want %q", err, want)
	}
}

// The renamed message keeps the chain: decisions on the error (ENOSPC,
// EIO) still see the cause.
func TestServerNamesKeepsChain(t *testing.T) {
	ts := handoff.TargetSpec{Source: "10.0.2.1:/export", Path: "/ckpt"}
	cause := &storage.Error{Target: "/mnt/kjump-target/ckpt", Op: "write image to", Err: unix.ENOSPC}
	err := serverNames(fmt.Errorf("writing: %w", cause), ts)
	var se *storage.Error
	if !errors.Is(err, unix.ENOSPC) || !errors.As(err, &se) || se != cause {
		t.Errorf("chain lost: %v", err)
	}
	if strings.Contains(err.Error(), mountPoint) {
		t.Errorf("mount point left in %q", err)
	}
}
