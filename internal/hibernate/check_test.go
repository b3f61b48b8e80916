package hibernate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckLockdown(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		content string
		want    Status
		detail  string
	}{
		{"[none] integrity confidentiality\n", Pass, "lockdown: none"},
		{"none [integrity] confidentiality\n", Fail, "lockdown is integrity: it blocks kexec_load"},
		{"none integrity [confidentiality]\n", Fail, "lockdown is confidentiality"},
	} {
		p := filepath.Join(dir, "lockdown")
		os.WriteFile(p, []byte(tc.content), 0o644)
		_, st, detail, fix := checkLockdown(p)
		if st != tc.want || !strings.Contains(detail, tc.detail) || st == Fail && !strings.Contains(fix, "lockdown=none") {
			t.Errorf("%q: %s %q %q", tc.content, st, detail, fix)
		}
	}
	if _, st, _, _ := checkLockdown(filepath.Join(dir, "absent")); st != Pass {
		t.Errorf("no lockdown file: %s", st)
	}
}

// A file target that does not exist yet on a mounted local filesystem is
// reachable (the first hibernation preallocates it); a missing device or a
// tag are not.
func TestPreallocatable(t *testing.T) {
	d := t.TempDir()
	if dir, ok := preallocatable(filepath.Join(d, "sub/dir/kjump.img")); !ok || dir != d {
		t.Errorf("new file under %s: %q %v", d, dir, ok)
	}
	os.WriteFile(filepath.Join(d, "exists"), nil, 0o600)
	for _, spec := range []string{"/dev/nonexistent-kjump", "UUID=1234", filepath.Join(d, "exists")} {
		if _, ok := preallocatable(spec); ok {
			t.Errorf("%s counted as preallocatable", spec)
		}
	}
}

// A dm-crypt volume (device-mapper uuid CRYPT-...) with unencrypted images
// is a warning naming the volume and the fix; plain dm devices are not.
func TestCheckEncryption(t *testing.T) {
	dir := t.TempDir()
	mk := func(dev, uuid, name string) {
		os.MkdirAll(filepath.Join(dir, dev, "dm"), 0o755)
		os.WriteFile(filepath.Join(dir, dev, "dm", "uuid"), []byte(uuid+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, dev, "dm", "name"), []byte(name+"\n"), 0o644)
	}
	mk("dm-0", "LVM-abc", "vg-root")
	os.MkdirAll(filepath.Join(dir, "vda"), 0o755)
	if _, st, detail, _ := checkEncryption(false, dir); st != Pass {
		t.Errorf("no dm-crypt: %s %s", st, detail)
	}
	mk("dm-1", "CRYPT-LUKS2-0123-luks-home", "luks-home")
	_, st, detail, fix := checkEncryption(false, dir)
	if st != Warn || !strings.Contains(detail, "luks-home") || !strings.Contains(fix, "key_file") {
		t.Errorf("dm-crypt, plain images: %s %q %q", st, detail, fix)
	}
	if _, st, _, _ := checkEncryption(true, dir); st != Pass {
		t.Errorf("dm-crypt, encrypted images: %s", st)
	}
}
