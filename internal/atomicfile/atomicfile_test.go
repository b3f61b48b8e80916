package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "f")
	if err := Write(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("two"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if err != nil || string(b) != "two" || fi.Mode().Perm() != 0o755 {
		t.Fatalf("%q %v %v", b, fi.Mode(), err)
	}
	if _, err := os.Stat(p + ".kjump-tmp"); err == nil {
		t.Error("temporary file left behind")
	}
	// A directory in the way: an error, nothing left behind.
	if err := Write(filepath.Dir(p), []byte("x"), 0o644); err == nil {
		t.Error("replaced a directory")
	}
	if _, err := os.Stat(filepath.Dir(p) + ".kjump-tmp"); err == nil {
		t.Error("temporary file left behind after a failure")
	}
}
