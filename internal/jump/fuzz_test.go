package jump

import (
	"bytes"
	"encoding/binary"
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

// FuzzHandoffResult: the helper's report (length field and JSON at
// handoffResultOff) is read by the original after the jump back.
func FuzzHandoffResult(f *testing.F) {
	good, _ := EncodeHandoff(Instructions{Mode: "now"})
	f.Add(uint32(0), []byte(nil))
	f.Add(uint32(40), []byte(`{"ok":false,"error":"target full","mode":"now"}`))
	f.Add(uint32(HandoffSize), []byte(`{"details":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, n uint32, js []byte) {
		b := make([]byte, HandoffSize)
		copy(b, good)
		binary.LittleEndian.PutUint32(b[handoffResultLen:], n)
		copy(b[handoffResultOff:], js)
		h, err := DecodeHandoff(b)
		if err != nil {
			return
		}
		if n != 0 && h.Result == nil || n == 0 && h.Result != nil {
			t.Fatalf("result length %d, result %v", n, h.Result)
		}
		if h.Instructions.Mode != "now" {
			t.Fatalf("instructions changed by the result: %+v", h.Instructions)
		}
	})
}
