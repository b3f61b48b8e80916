package forgery

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// Sum64 is XXH64, and a flip keeps it for every length that has eight
// bytes after its last stripe.
func TestFlipKeepingSum(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	kept := 0
	for n := 0; n < 200; n++ {
		b := make([]byte, n)
		rng.Read(b)
		if got, want := Sum64(b), xxhash.Sum64(b); got != want {
			t.Fatalf("len %d: Sum64 %x, XXH64 %x", n, got, want)
		}
		orig := bytes.Clone(b)
		fix, err := FlipKeepingSum(b, 0, 0x20)
		if n%32 < 8 || n < 32 { // no room, or the flip at 0 lies in the fixed bytes
			if err == nil {
				t.Fatalf("len %d: no room for the fix, yet no error", n)
			}
			continue
		}
		if err != nil {
			t.Fatalf("len %d: %v", n, err)
		}
		if xxhash.Sum64(b) != xxhash.Sum64(orig) || b[0] == orig[0] || fix != n-n%32 {
			t.Fatalf("len %d: sum not kept or nothing flipped (fix at %d)", n, fix)
		}
		kept++
	}
	if kept == 0 {
		t.Fatal("no length was forged")
	}
}
