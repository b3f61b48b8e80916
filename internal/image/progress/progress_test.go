package progress

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	got := Line("saving", 512<<20, 1<<30, 2*time.Second)
	for _, want := range []string{"saving", "50.0%", "512 MiB / 1.0 GiB", "256 MiB/s", "ETA 2s"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q lacks %q", got, want)
		}
	}
	if got := Line("x", 0, 100, 0); !strings.Contains(got, "ETA --") {
		t.Errorf("no rate yet: %q", got)
	}
}

// Not a terminal (a file): the meter stays silent.
func TestQuietWithoutTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if IsTerminal(f) {
		t.Fatal("a regular file reported as a terminal")
	}
	old := os.Stderr
	os.Stderr = f
	m := New("saving")
	os.Stderr = old
	m.Update(1, 2)
	m.Done()
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Fatalf("meter wrote %d bytes to a non-terminal", fi.Size())
	}
}
