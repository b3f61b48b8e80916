package jump

import (
	"testing"
)

// The parsers below read files a user or a broken firmware controls; they
// must return errors, never panic.

func FuzzParseBzImage(f *testing.F) {
	f.Add(fakeBzImage(64))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseBzImage(b)
		if err == nil && (len(k.Payload) == 0 || k.InitSize < uint64(len(k.Payload))) {
			t.Fatalf("inconsistent parse: payload %d init %d", len(k.Payload), k.InitSize)
		}
	})
}
