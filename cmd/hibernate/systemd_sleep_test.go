package main

import (
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// The hooks of both system-sleep directories run once each by name, with
// the phase and operation as arguments; links to /dev/null and files that
// are not executable are skipped.
func TestSleepHooks(t *testing.T) {
	usr, lib, out := t.TempDir(), t.TempDir(), t.TempDir()
	defer func(d []string) { systemSleepDirs = d }(systemSleepDirs)
	systemSleepDirs = []string{usr, lib}
	hook := "#!/bin/sh\necho \"$1 $2\" >" + out + "/$(basename $0).$1\n"
	write := func(dir, name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(hook), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(usr, "10-a", 0o755)
	write(lib, "10-a", 0o755) // shadowed by the first directory's
	write(lib, "20-b", 0o755)
	write(usr, "30-not-executable", 0o644)
	if err := os.Symlink(os.DevNull, filepath.Join(usr, "40-masked")); err != nil {
		t.Fatal(err)
	}
	write(lib, "40-masked", 0o755)

	got := sleepHooks()
	want := []string{filepath.Join(usr, "10-a"), filepath.Join(lib, "20-b")}
	sort.Strings(want)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("hooks %q, want %q", got, want)
	}
	runSleepHooks("pre", "hibernate")
	runSleepHooks("post", "hibernate")
	ents, _ := os.ReadDir(out)
	var ran []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(out, e.Name()))
		ran = append(ran, e.Name()+"="+strings.TrimSpace(string(b)))
	}
	wantRan := []string{"10-a.post=post hibernate", "10-a.pre=pre hibernate", "20-b.post=post hibernate", "20-b.pre=pre hibernate"}
	if !reflect.DeepEqual(ran, wantRan) {
		t.Fatalf("ran %q, want %q", ran, wantRan)
	}
}

func TestSystemdSleepRefusesOtherOperations(t *testing.T) {
	for _, args := range [][]string{nil, {"suspend"}} {
		err := runSystemdSleep(args)
		if err == nil || !strings.Contains(err.Error(), "only hibernation goes through kjump") {
			t.Errorf("systemd-sleep %q: %v", args, err)
		}
	}
	if err := runSystemdSleep([]string{"hybrid-sleep"}); err == nil || !strings.Contains(err.Error(), "use suspend-then-hibernate") {
		t.Errorf("systemd-sleep hybrid-sleep: %v", err)
	}
}
