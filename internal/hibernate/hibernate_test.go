package hibernate

import (
	"os"
	"strings"
	"testing"
)

func TestConsoleArgs(t *testing.T) {
	got := consoleArgs("BOOT_IMAGE=/vmlinuz root=/dev/sda1 console=tty0 console=ttyS0,115200 memmap=128M$0x30000000 loglevel=7 quiet")
	if got != "console=tty0 console=ttyS0,115200 loglevel=7" {
		t.Errorf("got %q", got)
	}
}

func TestNFSOptions(t *testing.T) {
	got := nfsOptions("rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.2.15,local_lock=none,addr=10.0.2.2")
	if got != "vers=4.2,proto=tcp,sec=sys,clientaddr=10.0.2.15,addr=10.0.2.2,nolock" {
		t.Errorf("got %q", got)
	}
}

// A file on a filesystem this system has mounted (here: the test's own
// temporary directory) is refused with the reason and the alternatives.
func TestResolveTargetRefusesMountedLocalFile(t *testing.T) {
	_, err := ResolveTarget(t.TempDir() + "/kjump.img")
	if err == nil {
		t.Fatal("a file on a mounted local filesystem was accepted as a target")
	}
	for _, want := range []string{"which this system has mounted", "raw partition", "NFS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestFindMount(t *testing.T) {
	m, err := findMount("/proc/self")
	if err != nil || m.fstype != "proc" || m.point != "/proc" {
		t.Errorf("findMount(/proc/self) = %+v, %v", m, err)
	}
	if _, err := os.Stat("/proc/self/mountinfo"); err != nil {
		t.Fatal(err)
	}
	if got := unescapeMount(`/mnt/with\040space`); got != "/mnt/with space" {
		t.Errorf("unescape = %q", got)
	}
}
