package cmdline

import (
	"strings"
	"testing"
)

// FuzzCmdline: any command line parses without panicking, and a
// kjump.resume= word appended to it (after a space, outside quotes) is found.
func FuzzCmdline(f *testing.F) {
	f.Add("console=ttyS0 kjump.resume=/dev/vda quiet", "/dev/vdb")
	f.Add(`root=/dev/sda1 kjump.resume="LABEL=my disk" ro`, "LABEL=x")
	f.Add(`"a b" -- c`, "PARTUUID=00000000-01")
	f.Add("memmap=128M$0x30000000 kjump.handoff=0x37ff8000", "UUID=1-2")
	f.Fuzz(func(t *testing.T, line, target string) {
		ps := Params(line)
		for _, p := range ps {
			if strings.ContainsAny(p[0], " \t\n") && !strings.Contains(line, `"`) {
				t.Fatalf("name %q holds a space though the line has no quotes", p[0])
			}
		}
		if strings.ContainsAny(target, " \t\n\r\v\f\"") || target == "" ||
			strings.Count(line, `"`)%2 == 1 || strings.Contains(line, "--") {
			return
		}
		if got, _ := Value(line+" kjump.resume="+target, "kjump.resume"); got != target {
			t.Fatalf("appended kjump.resume=%s to %q, parsed %q", target, line, got)
		}
	})
}
