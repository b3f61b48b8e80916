// Package suspend puts the machine to sleep in RAM through /sys/power/state
// and sets the wake-up alarm suspend-then-hibernate needs, the way
// systemd-sleep does: a CLOCK_BOOTTIME_ALARM timer, which the kernel's
// alarmtimer programs into the RTC when the system suspends.
package suspend

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// StatePath is the kernel's sleep control file.
var StatePath = "/sys/power/state"

// Enter suspends with the first of states the kernel offers and returns
// after the machine woke up.
func Enter(states []string) (string, error) {
	b, err := os.ReadFile(StatePath)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w (no suspend support)", StatePath, err)
	}
	have := strings.Fields(string(b))
	for _, s := range states {
		if slices.Contains(have, s) {
			if err := os.WriteFile(StatePath, []byte(s), 0); err != nil {
				return s, fmt.Errorf("suspending (%s > %s): %w", s, StatePath, err)
			}
			return s, nil
		}
	}
	return "", fmt.Errorf("none of the sleep states %v is offered by the kernel (%s: %s): fix SuspendState= in sleep.conf", states, StatePath, strings.TrimSpace(string(b)))
}

// RTCClass lists the real-time clocks.
var RTCClass = "/sys/class/rtc"

// WakeRTC names a real-time clock that can wake the machine, which the
// kernel's alarmtimer programs when it suspends: the kernel shows a
// wakealarm file only for an RTC that can raise a wake-up. Without one a
// wake-up alarm never fires and the machine would stay suspended.
func WakeRTC() (string, error) {
	ms, _ := filepath.Glob(filepath.Join(RTCClass, "rtc*", "wakealarm"))
	if len(ms) == 0 {
		return "", fmt.Errorf("no real-time clock can wake this machine (no %s/rtc*/wakealarm), so a wake-up alarm would never fire: load the RTC driver (rtc_cmos on PCs) and allow it to wake the machine in the firmware", RTCClass)
	}
	return filepath.Base(filepath.Dir(ms[0])), nil
}

// Alarm is a wake-up alarm: it wakes a suspended machine when it expires.
type Alarm struct{ fd int }

// SetAlarm arms an alarm d from now on the boot-time clock, which keeps
// counting while the machine is suspended.
func SetAlarm(d time.Duration) (*Alarm, error) { return setTimer(unix.CLOCK_BOOTTIME_ALARM, d) }

func setTimer(clock int, d time.Duration) (*Alarm, error) {
	fd, err := unix.TimerfdCreate(clock, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("wake-up alarm (timerfd CLOCK_BOOTTIME_ALARM): %w (needs CAP_WAKE_ALARM and an RTC that can wake the machine)", err)
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(d.Nanoseconds())}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("arming the wake-up alarm: %w", err)
	}
	return &Alarm{fd: fd}, nil
}

// Fired reports whether the alarm has expired.
func (a *Alarm) Fired() bool {
	var buf [8]byte
	n, err := unix.Read(a.fd, buf[:])
	return err == nil && n == 8
}

// FiredWithin waits up to d for the alarm to expire. The RTC counts whole
// seconds, so it can wake the machine a moment before the boot-time clock
// reaches the alarm, which then expires only after user space runs again.
func (a *Alarm) FiredWithin(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for !a.Fired() {
		left := time.Until(deadline)
		if left <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(a.fd), Events: unix.POLLIN}}
		unix.Poll(fds, int(left.Milliseconds())+1)
	}
	return true
}

// Close disarms the alarm.
func (a *Alarm) Close() error { return unix.Close(a.fd) }
