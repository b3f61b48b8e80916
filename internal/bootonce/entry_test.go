package bootonce

import (
	"strings"
	"testing"
)

// A directly started restore kernel reaches raw partitions and files named
// DEVICE:/path; a path on a mounted filesystem or NFS is refused by name.
func TestCheckTarget(t *testing.T) {
	for _, ok := range []string{"/dev/vda", "/dev/disk/by-partlabel/kjump", "PARTUUID=1234-02", "UUID=abcd", "LABEL=swap", "/dev/vdb1:/kjump.img"} {
		if err := CheckTarget(ok); err != nil {
			t.Errorf("CheckTarget(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"/var/lib/kjump/image", "server:/export/kjump", "image.kjump"} {
		if err := CheckTarget(bad); err == nil || !strings.Contains(err.Error(), "normal boot") {
			t.Errorf("CheckTarget(%q) = %v, want a refusal naming the normal boot", bad, err)
		}
	}
}
