package suspend

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWakeRTC(t *testing.T) {
	dir := t.TempDir()
	defer func(old string) { RTCClass = old }(RTCClass)
	RTCClass = dir
	// An RTC that cannot wake the machine has no wakealarm file.
	os.MkdirAll(filepath.Join(dir, "rtc0"), 0o755)
	if _, err := WakeRTC(); err == nil || !strings.Contains(err.Error(), "no real-time clock can wake this machine") || !strings.Contains(err.Error(), "rtc_cmos") {
		t.Fatalf("no wakealarm: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "rtc1"), 0o755)
	os.WriteFile(filepath.Join(dir, "rtc1", "wakealarm"), nil, 0o644)
	if name, err := WakeRTC(); err != nil || name != "rtc1" {
		t.Fatalf("WakeRTC = %q, %v; want rtc1", name, err)
	}
}

func TestEnterPicksAnOfferedState(t *testing.T) {
	dir := t.TempDir()
	defer func(old string) { StatePath = old }(StatePath)
	StatePath = filepath.Join(dir, "state")
	os.WriteFile(StatePath, []byte("freeze mem disk\n"), 0o644)
	if s, err := Enter([]string{"standby", "mem"}); err != nil || s != "mem" {
		t.Fatalf("Enter = %q, %v", s, err)
	}
	if b, _ := os.ReadFile(StatePath); string(b) != "mem" {
		t.Fatalf("wrote %q", b)
	}
	os.WriteFile(StatePath, []byte("freeze\n"), 0o644)
	if _, err := Enter([]string{"mem"}); err == nil || !strings.Contains(err.Error(), "SuspendState=") {
		t.Fatalf("no offered state: %v", err)
	}
}

// The alarm's timer on CLOCK_BOOTTIME (the alarm clock without the RTC
// and CAP_WAKE_ALARM): not fired at once, fired within its time.
func TestFiredWithin(t *testing.T) {
	a, err := setTimer(unix.CLOCK_BOOTTIME, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if a.Fired() {
		t.Fatal("fired at once")
	}
	if a.FiredWithin(10 * time.Millisecond) {
		t.Fatal("fired after 10ms of 200ms")
	}
	start := time.Now()
	if !a.FiredWithin(5 * time.Second) {
		t.Fatal("did not fire within 5s")
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("fired after %v, before its 200ms", waited)
	}
}
