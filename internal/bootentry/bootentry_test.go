package bootentry

import "testing"

func TestParse(t *testing.T) {
	entry := "title Debian\nversion 6.12.0-kjump\n  options root=UUID=1 ro\noptions memmap=160M$0x15000000\nlinux /vmlinuz\n# options commented\n"
	v, o := Parse([]byte(entry))
	if v != "6.12.0-kjump" || o != "root=UUID=1 ro memmap=160M$0x15000000" {
		t.Fatalf("Parse = %q, %q", v, o)
	}
	if v, o := Parse(nil); v != "" || o != "" {
		t.Fatalf("empty entry: %q, %q", v, o)
	}
}
