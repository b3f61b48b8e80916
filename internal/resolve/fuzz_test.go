package resolve

import (
	"strings"
	"testing"
)

const sampleMountinfo = `22 1 0:21 / / rw,relatime shared:1 - rootfs rootfs rw
23 22 0:22 / /proc rw,nosuid - proc proc rw
30 22 0:30 / /mnt/nfs rw,relatime shared:9 - nfs4 10.0.2.1:/export rw,vers=4.0,rsize=131072,proto=tcp,addr=10.0.2.1,clientaddr=10.0.2.2
31 22 8:2 /srv/img /mnt/my\040disk rw - ext4 /dev/sda2 rw
`

func TestParseMountinfo(t *testing.T) {
	m, err := parseMountinfo(strings.NewReader(sampleMountinfo), "/mnt/nfs/host.img")
	if err != nil || m.point != "/mnt/nfs" || m.fstype != "nfs4" || m.source != "10.0.2.1:/export" {
		t.Fatalf("nfs mount: %+v, %v", m, err)
	}
	m, err = parseMountinfo(strings.NewReader(sampleMountinfo), "/mnt/my disk/x")
	if err != nil || m.point != "/mnt/my disk" || m.root != "/srv/img" {
		t.Fatalf("escaped mount point: %+v, %v", m, err)
	}
	if _, err := parseMountinfo(strings.NewReader("garbage\n"), "/x"); err == nil {
		t.Fatal("garbage mountinfo gave a mount")
	}
}

// FuzzMountinfo: any table parses without panicking, and a mount found
// really holds the path.
func FuzzMountinfo(f *testing.F) {
	f.Add(sampleMountinfo, "/mnt/nfs/host.img")
	f.Add("1 0 0:1 / / rw - rootfs rootfs rw\n", "/")
	f.Fuzz(func(t *testing.T, table, path string) {
		m, err := parseMountinfo(strings.NewReader(table), path)
		if err != nil {
			return
		}
		if path != m.point && !strings.HasPrefix(path, strings.TrimSuffix(m.point, "/")+"/") {
			t.Fatalf("mount %q does not hold %q", m.point, path)
		}
		opts := nfsOptions(m.superOpts)
		if !strings.HasSuffix(opts, "nolock") {
			t.Fatalf("nfs options %q lost nolock", opts)
		}
	})
}
