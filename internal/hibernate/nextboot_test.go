package hibernate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/layout"
)

// The next boot's command line comes from GRUB's grub.cfg, else from the
// boot loader entries kernel-install wrote (systemd-boot, Fedora's GRUB
// with blscfg: /etc/kernel/cmdline alone says nothing until the entries
// are regenerated), else /etc/kernel/cmdline.
func TestNextBootCmdline(t *testing.T) {
	const rel = "6.12.0-1-amd64"
	cur, err := layout.ParseMemmapReservations("memmap=160M$0x15000000")
	if err != nil {
		t.Fatal(err)
	}
	write := func(root, p, s string) {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	entry := func(version, options string) string {
		return "title Debian\nversion " + version + "\noptions " + options + "\nlinux /mid/" + version + "/linux\n"
	}
	for _, tc := range []struct {
		name   string
		files  map[string]string
		where  string
		lacks  int // index of the line without the reservation, -1: none
		noLine bool
	}{
		{name: "grub", files: map[string]string{
			"boot/grub/grub.cfg": "menuentry x {\n\tlinux /boot/vmlinuz-" + rel + " root=/dev/vda ro memmap=160M\\$0x15000000\n}\n",
		}, where: "/boot/grub/grub.cfg", lacks: -1},
		{name: "grub without", files: map[string]string{
			"boot/grub/grub.cfg": "\tlinux /boot/vmlinuz-" + rel + " root=/dev/vda ro\n",
			"etc/kernel/cmdline": "root=/dev/vda memmap=160M$0x15000000\n",
		}, where: "/boot/grub/grub.cfg", lacks: 0},
		{name: "entries not regenerated", files: map[string]string{
			"boot/grub2/grub.cfg":                      "blscfg\n",
			"boot/loader/entries/mid-" + rel + ".conf": entry(rel, "root=/dev/vda ro"),
			"boot/loader/entries/mid-6.1.0.conf":       entry("6.1.0", "root=/dev/vda ro memmap=160M$0x15000000"),
			"etc/kernel/cmdline":                       "root=/dev/vda ro memmap=160M$0x15000000\n",
		}, where: "/boot/loader/entries/mid-" + rel + ".conf", lacks: 0},
		{name: "every entry for the release", files: map[string]string{
			"efi/loader/entries/mid-" + rel + ".conf":     entry(rel, "root=/dev/vda memmap=160M$0x15000000"),
			"efi/loader/entries/mid-" + rel + "+3-0.conf": entry(rel, "root=/dev/vda"),
		}, where: "/efi/loader/entries/mid-" + rel + "+3-0.conf, /efi/loader/entries/mid-" + rel + ".conf", lacks: 0},
		{name: "entries regenerated", files: map[string]string{
			"boot/loader/entries/mid-" + rel + ".conf": entry(rel, "root=/dev/vda memmap=160M$0x15000000 systemd.machine_id=mid"),
		}, where: "/boot/loader/entries/mid-" + rel + ".conf", lacks: -1},
		{name: "kernel cmdline only", files: map[string]string{
			"etc/kernel/cmdline": "root=/dev/vda memmap=160M$0x15000000\n",
		}, where: "/etc/kernel/cmdline", lacks: -1},
		{name: "nothing", files: map[string]string{}, noLine: true},
	} {
		root := t.TempDir()
		for p, s := range tc.files {
			write(root, p, s)
		}
		lines, where := nextBootCmdline(root, rel)
		if tc.noLine {
			if where != "" || len(lines) > 0 {
				t.Errorf("%s: %q from %q, want nothing", tc.name, lines, where)
			}
			continue
		}
		if where != tc.where || lacksReservation(lines, cur[0]) != tc.lacks {
			t.Errorf("%s: %q from %q (lacking at %d), want from %q lacking at %d", tc.name, lines, where, lacksReservation(lines, cur[0]), tc.where, tc.lacks)
		}
		if strings.Contains(where, "6.1.0") {
			t.Errorf("%s: another kernel's entry read: %s", tc.name, where)
		}
	}
}
