package helper

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kjump/kjump/internal/handoff"
)

func TestRawDeviceFindsTaggedTargetUnderItsNameHere(t *testing.T) {
	// This kernel: the stick (PARTLABEL=kjstick) is sda1; the original
	// called it sdb1, which here is another disk's partition.
	here := map[string]string{"/dev/sda1": "PARTLABEL=kjstick", "/dev/sdb1": "PARTLABEL=other"}
	carries := func(dev, spec string) bool { return here[dev] == spec }
	resolve := func(spec string) (string, error) {
		for dev, s := range here {
			if s == spec {
				return dev, nil
			}
		}
		return "", errors.New("not found")
	}
	ts := handoff.TargetSpec{Spec: "PARTLABEL=kjstick", Device: "/dev/sdb1"}
	if dev, err := rawDevice(ts, time.Second, carries, resolve); err != nil || dev != "/dev/sda1" {
		t.Errorf("renamed stick: %q, %v; want /dev/sda1", dev, err)
	}
	// The original's name first: another partition with the same label
	// does not win over it.
	here["/dev/sdb1"] = "PARTLABEL=kjstick"
	if dev, err := rawDevice(ts, time.Second, carries, resolve); err != nil || dev != "/dev/sdb1" {
		t.Errorf("same name: %q, %v; want /dev/sdb1", dev, err)
	}
	// Missing: the error names the tag and the original's name.
	_, err := rawDevice(handoff.TargetSpec{Spec: "PARTUUID=1234", Device: "/dev/sdc1"}, 200*time.Millisecond, carries, resolve)
	if err == nil || !strings.Contains(err.Error(), "PARTUUID=1234 (/dev/sdc1 in the original kernel) did not appear") {
		t.Errorf("missing target: %v", err)
	}
	// A device path with the PARTUUID the original read off it: found by
	// that, not by the name, which here is another disk's partition.
	here["/dev/sdc1"], here["/dev/sdb1"] = "PARTUUID=5e1f-02", "PARTUUID=0a0b-01"
	byPath := handoff.TargetSpec{Spec: "/dev/sdb1", Device: "/dev/sdb1", PartUUID: "5e1f-02"}
	if dev, err := rawDevice(byPath, time.Second, carries, resolve); err != nil || dev != "/dev/sdc1" {
		t.Errorf("device path with a PARTUUID: %q, %v; want /dev/sdc1", dev, err)
	}
	delete(here, "/dev/sdc1")
	if _, err := rawDevice(byPath, 200*time.Millisecond, carries, resolve); err == nil || !strings.Contains(err.Error(), "/dev/sdb1 (PARTUUID=5e1f-02)") {
		t.Errorf("device path whose partition is gone, another in its name: %v", err)
	}
	// A device path without a PARTUUID, or a filesystem tag the image
	// overwrites, is taken as given (and waited for).
	for _, spec := range []string{"/dev/kjump-no-such", "UUID=0f3a8d5c-8e1b-4c2a-b6d9-7a1e2f3c4d5e"} {
		_, err := rawDevice(handoff.TargetSpec{Spec: spec, Device: "/dev/kjump-no-such"}, 100*time.Millisecond, carries, resolve)
		if err == nil || !strings.Contains(err.Error(), "target device /dev/kjump-no-such did not appear") {
			t.Errorf("%s: %v", spec, err)
		}
	}
}
