package vm

import "testing"

func TestParseDirectEntry(t *testing.T) {
	con := "E2E init\nENTRY begin\nlinux /boot/kjump/helper.bzImage\n" +
		"[   12.345678] random: crng init done\n" +
		"initrd /boot/kjump/helper.cpio.gz\noptions memmap=0x2ff00000$0x100000 kjump.direct=0x30000000-0x37ffffff\n" +
		"options  kjump.resume=/dev/vda \nENTRY end\noptions not-this\n"
	e, err := ParseDirectEntry(con, "ENTRY begin", "ENTRY end")
	if err != nil {
		t.Fatal(err)
	}
	want := DirectEntry{Linux: "/boot/kjump/helper.bzImage", Initrd: "/boot/kjump/helper.cpio.gz",
		Options: "memmap=0x2ff00000$0x100000 kjump.direct=0x30000000-0x37ffffff kjump.resume=/dev/vda"}
	if e != want {
		t.Errorf("ParseDirectEntry = %+v, want %+v", e, want)
	}
	for _, bad := range []string{"", "ENTRY begin\nlinux /k\n", "ENTRY begin\nlinux /k\ninitrd /i\nENTRY end\n"} {
		if e, err := ParseDirectEntry(bad, "ENTRY begin", "ENTRY end"); err == nil {
			t.Errorf("ParseDirectEntry(%q) = %+v, want an error", bad, e)
		}
	}
}
