package resolve

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestNFSOptions(t *testing.T) {
	got := nfsOptions("rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.2.15,local_lock=none,addr=10.0.2.2")
	if got != "vers=4.2,proto=tcp,sec=sys,clientaddr=10.0.2.15,addr=10.0.2.2,nolock" {
		t.Errorf("got %q", got)
	}
}

// A file on a local filesystem is written behind the sleeping kernel's
// back, so it must be preallocated on a filesystem that allows that; tmpfs
// (no block device) is refused with the alternatives.
func TestPrepareTargetRefusesTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "kjtest", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v %s", err, out)
	}
	defer exec.Command("umount", dir).Run()
	_, err := Prepare(dir+"/kjump.img", 32<<20, t.Logf)
	if err == nil {
		t.Fatal("a file on tmpfs was accepted as a target")
	}
	for _, want := range []string{"ext4 or xfs", "raw partition", "NFS"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if _, err := Target(dir + "/missing.img"); err == nil || !strings.Contains(err.Error(), "no kjump image file") {
		t.Errorf("missing file: %v", err)
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
