package layout

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kjump/kjump/internal/sysinfo"
)

func FuzzParseIOMem(f *testing.F) {
	seed, _ := os.ReadFile(filepath.Join("testdata", "qemu-1g.iomem"))
	f.Add(seed)
	f.Add([]byte("00000000-00000fff : Reserved\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := sysinfo.ParseIOMem(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, r := range res {
			if r.End <= r.Start {
				t.Fatalf("empty resource accepted: %+v", r)
			}
		}
		OriginalRAM(res, Range{Start: 0x30000000, End: 0x38000000})
	})
}

func FuzzParseMemmap(f *testing.F) {
	f.Add("memmap=128M$0x30000000 console=ttyS0")
	f.Add(`memmap=64K\$1G,1M$0x100000000`)
	f.Fuzz(func(t *testing.T, cmdline string) {
		rs, err := ParseMemmapReservations(cmdline)
		if err != nil {
			return
		}
		for _, r := range rs {
			_ = r.PageAligned()
		}
	})
}
