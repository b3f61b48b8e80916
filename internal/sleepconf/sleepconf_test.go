package sleepconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseTimespan(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"20s": 20 * time.Second, "90": 90 * time.Second, "30min": 30 * time.Minute, "2h": 2 * time.Hour,
		"1h 30min": 90 * time.Minute, "1.5h": 90 * time.Minute, "1d": 24 * time.Hour, "500ms": 500 * time.Millisecond,
	} {
		if got, err := ParseTimespan(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"h", "5 parsecs", "-3s"} {
		if _, err := ParseTimespan(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Drop-ins override the main file, sorted by name, a later directory's
// file replacing an earlier one of the same name.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	MainFile = filepath.Join(dir, "etc/systemd/sleep.conf")
	Dirs = []string{filepath.Join(dir, "usr/lib/systemd"), filepath.Join(dir, "etc/systemd")}
	t.Cleanup(func() {
		MainFile = "/etc/systemd/sleep.conf"
		Dirs = []string{"/usr/lib/systemd", "/lib/systemd", "/usr/local/lib/systemd", "/run/systemd", "/etc/systemd"}
	})
	write := func(p, s string) {
		p = filepath.Join(dir, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(s), 0o644)
	}
	c, err := Read()
	if err != nil || c.HibernateDelay != DefaultHibernateDelay || c.SuspendStates[0] != "mem" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	write("etc/systemd/sleep.conf", "[Sleep]\n#HibernateDelaySec=1h\nHibernateDelaySec=3h\n")
	write("usr/lib/systemd/sleep.conf.d/10-vendor.conf", "[Sleep]\nHibernateDelaySec=45min\nSuspendState=freeze\n")
	write("usr/lib/systemd/sleep.conf.d/20-x.conf", "[Sleep]\nHibernateDelaySec=10min\n")
	write("etc/systemd/sleep.conf.d/20-x.conf", "[Sleep]\nHibernateDelaySec=20s\n[Other]\nHibernateDelaySec=1s\n")
	if c, err = Read(); err != nil || c.HibernateDelay != 20*time.Second || c.SuspendStates[0] != "freeze" || len(c.Files) != 3 {
		t.Fatalf("merged: %+v %v", c, err)
	}
	write("etc/systemd/sleep.conf.d/30-bad.conf", "[Sleep]\nHibernateDelaySec=soon\n")
	if _, err := Read(); err == nil {
		t.Fatal("bad HibernateDelaySec accepted")
	}
}

// The runtime drop-in allows or denies hibernation, and denial carries
// the reasons; the shipped one denies until a check passed.
func TestSetHibernationAllowed(t *testing.T) {
	dir := t.TempDir()
	defer func(r string) { RuntimeDropIn = r }(RuntimeDropIn)
	RuntimeDropIn = filepath.Join(dir, "run/systemd/sleep.conf.d/kjump.conf")
	if a, c := HibernationAllowed(); a || c {
		t.Fatal("allowed before any check")
	}
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if err := SetHibernationAllowed(false, []string{"target: /dev/vdb does not exist"}, now); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(RuntimeDropIn)
	for _, want := range []string{"AllowHibernation=no", "AllowSuspendThenHibernate=no", "#   target: /dev/vdb does not exist", "2026-12-02T10:00:00Z"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("denying drop-in lacks %q:\n%s", want, b)
		}
	}
	if a, c := HibernationAllowed(); a || !c {
		t.Fatal("denied reads as allowed")
	}
	SetHibernationAllowed(true, nil, now)
	if a, c := HibernationAllowed(); !a || !c {
		t.Fatal("allowed reads as denied")
	}
	// Read (HibernateDelaySec=, SuspendState=) is not disturbed by them.
	MainFile = filepath.Join(dir, "none")
	Dirs = []string{filepath.Join(dir, "run/systemd")}
	c, err := Read()
	if err != nil || c.HibernateDelay != DefaultHibernateDelay {
		t.Fatal(c, err)
	}
	shipped, err := os.ReadFile("../../systemd/sleep.conf.d/kjump.conf")
	if err != nil || !strings.Contains(string(shipped), "AllowHibernation=no") {
		t.Fatalf("shipped drop-in: %v %s", err, shipped)
	}
}
