package cmdline

import "testing"

func TestValueKjumpResume(t *testing.T) {
	for line, want := range map[string]string{
		"console=ttyS0 kjump.resume=/dev/vda quiet":                  "/dev/vda",
		"kjump.resume=PARTUUID=1234-01":                              "PARTUUID=1234-01",
		`root=/dev/sda1 kjump.resume="LABEL=my disk" ro`:             "LABEL=my disk",
		`"kjump.resume=LABEL=a b" ro`:                                "LABEL=a b",
		"kjump.resume=/dev/a kjump.resume=/dev/b":                    "/dev/b",
		"kjump.resumex=/dev/a xkjump.resume=/dev/b":                  "",
		"ro -- kjump.resume=/dev/vda":                                "",
		"\tkjump.resume=/dev/vda\n":                                  "/dev/vda",
		"kjump.resume=":                                              "",
		`kjump.resume="unterminated quote console=ttyS0`:             "unterminated quote console=ttyS0",
		"memmap=128M$0x30000000 kjump.resume=UUID=abc kjump.debug=1": "UUID=abc",
	} {
		if got, _ := Value(line, "kjump.resume"); got != want {
			t.Errorf("%q: got %q, want %q", line, got, want)
		}
	}
}

func TestSwitch(t *testing.T) {
	for line, want := range map[string]bool{
		"ro kjump.force":                 true,
		"ro kjump.force=1":               true,
		"ro kjump.force=yes":             true,
		"ro kjump.force=0":               false,
		"ro kjump.force=1 kjump.force=0": false,
		"ro kjump.forced=1":              false,
		"ro":                             false,
	} {
		if got := Switch(line, "kjump.force"); got != want {
			t.Errorf("Switch(%q) = %v, want %v", line, got, want)
		}
	}
}
