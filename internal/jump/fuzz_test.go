package jump

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The parsers below read files a user or a broken firmware controls; they
// must return errors, never panic.

func FuzzParseIOMem(f *testing.F) {
	seed, _ := os.ReadFile(filepath.Join("testdata", "qemu-1g.iomem"))
	f.Add(seed)
	f.Add([]byte("00000000-00000fff : Reserved\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := ParseIOMem(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, r := range res {
			if r.End <= r.Start {
				t.Fatalf("empty resource accepted: %+v", r)
			}
		}
		OriginalRAM(res, Range{0x30000000, 0x38000000})
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

func FuzzDecodeHandoff(f *testing.F) {
	good, _ := EncodeHandoff(Instructions{Mode: "checkpoint"})
	SetResult(good, Result{OK: true})
	f.Add(good[:0x200])
	f.Fuzz(func(t *testing.T, head []byte) {
		b := make([]byte, HandoffSize)
		copy(b, good)
		copy(b, head)
		DecodeHandoff(b)
	})
}

func FuzzParseBzImage(f *testing.F) {
	f.Add(fakeBzImage(64))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseBzImage(b)
		if err == nil && (len(k.Payload) == 0 || k.InitSize < uint64(len(k.Payload))) {
			t.Fatalf("inconsistent parse: payload %d init %d", len(k.Payload), k.InitSize)
		}
	})
}
