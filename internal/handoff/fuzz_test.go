package handoff

import (
	"encoding/binary"
	"testing"
)

func FuzzDecode(f *testing.F) {
	good, _ := Encode(Instructions{Mode: "checkpoint"})
	SetResult(good, Result{OK: true})
	f.Add(good[:0x200])
	f.Fuzz(func(t *testing.T, head []byte) {
		b := make([]byte, Size)
		copy(b, good)
		copy(b, head)
		Decode(b)
	})
}

// FuzzHandoffResult: the helper's report (length field and JSON at
// resultOff) is read by the original after the jump back.
func FuzzHandoffResult(f *testing.F) {
	good, _ := Encode(Instructions{Mode: "now"})
	f.Add(uint32(0), []byte(nil))
	f.Add(uint32(40), []byte(`{"ok":false,"error":"target full","mode":"now"}`))
	f.Add(uint32(Size), []byte(`{"details":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, n uint32, js []byte) {
		b := make([]byte, Size)
		copy(b, good)
		binary.LittleEndian.PutUint32(b[resultLenField:], n)
		copy(b[resultOff:], js)
		h, err := Decode(b)
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
