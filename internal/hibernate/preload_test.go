package hibernate

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/jump"
)

// The preload guard: a loaded helper is used only with a record from this
// boot, an unchanged kexec load count, an image still loaded and the same
// content as the helper that would be loaded now.
func TestPreloadGuard(t *testing.T) {
	dir := t.TempDir()
	LoadLimitPath, PreloadRecord, kexecLoadedPath = filepath.Join(dir, "limit"), filepath.Join(dir, "run/preload.json"), filepath.Join(dir, "loaded")
	t.Cleanup(func() {
		LoadLimitPath, PreloadRecord, kexecLoadedPath = "/proc/sys/kernel/kexec_load_limit_reboot", "/run/kjump/preload.json", "/sys/kernel/kexec_loaded"
	})
	im := jump.Image{Entry: 0x30001000, PreserveContext: true, Segments: []jump.Segment{jump.NewSegment([]byte("helper"), 0x30000000)}}
	other := jump.Image{Entry: 0x30001000, PreserveContext: true, Segments: []jump.Segment{jump.NewSegment([]byte("helpeR"), 0x30000000)}}
	write := func(p, s string) { os.WriteFile(p, []byte(s), 0o600) }

	if _, err := guardLoads(); !errors.Is(err, ErrNoLoadCounter) {
		t.Fatalf("no counter: got %v", err)
	}
	if ok, why := preloaded(im); ok || why != "" {
		t.Fatalf("no record: %v %q", ok, why)
	}
	// An unlimited count is made countable.
	write(LoadLimitPath, "-1\n")
	if n, err := guardLoads(); err != nil || n != guardLimit {
		t.Fatalf("guard: %d %v", n, err)
	}
	if b, _ := os.ReadFile(LoadLimitPath); strings.TrimSpace(string(b)) != "1073741824" {
		t.Fatalf("limit file now %q", b)
	}
	record := func(p preload) {
		os.MkdirAll(filepath.Dir(PreloadRecord), 0o700)
		b, _ := json.Marshal(p)
		write(PreloadRecord, string(b))
	}
	write(LoadLimitPath, "1000")
	write(kexecLoadedPath, "1\n")
	record(preload{BootID: bootID(), Hash: im.Hash(), Limit: 1000})
	if ok, why := preloaded(im); !ok {
		t.Fatalf("valid preload refused: %s", why)
	}
	for _, tc := range []struct {
		name  string
		setup func()
		img   jump.Image
		want  string
	}{
		{"other helper", func() {}, other, "changed since the preload"},
		{"foreign load", func() { write(LoadLimitPath, "999") }, im, "went from 1000 to 999"},
		{"unloaded", func() { write(kexecLoadedPath, "0\n") }, im, "no kexec image is loaded"},
		{"other boot", func() { record(preload{BootID: "x", Hash: im.Hash(), Limit: 1000}) }, im, "another boot"},
	} {
		write(LoadLimitPath, "1000")
		write(kexecLoadedPath, "1\n")
		record(preload{BootID: bootID(), Hash: im.Hash(), Limit: 1000})
		tc.setup()
		if ok, why := preloaded(tc.img); ok || !strings.Contains(why, tc.want) {
			t.Errorf("%s: got %v %q, want refusal containing %q", tc.name, ok, why, tc.want)
		}
	}
	write(LoadLimitPath, "1")
	if _, err := guardLoads(); err == nil || !strings.Contains(err.Error(), "no more kexec loads") {
		t.Fatalf("exhausted count: %v", err)
	}
}

// PreloadStatus names its verdict as a PreloadState, so 'hibernate check'
// decides on it and never on the wording of the detail.
func TestPreloadStatusStates(t *testing.T) {
	dir := t.TempDir()
	LoadLimitPath, PreloadRecord, kexecLoadedPath = filepath.Join(dir, "limit"), filepath.Join(dir, "preload.json"), filepath.Join(dir, "loaded")
	t.Cleanup(func() {
		LoadLimitPath, PreloadRecord, kexecLoadedPath = "/proc/sys/kernel/kexec_load_limit_reboot", "/run/kjump/preload.json", "/sys/kernel/kexec_loaded"
	})
	if _, _, err := PreloadStatus(); !errors.Is(err, ErrNoLoadCounter) {
		t.Fatalf("no counter: %v", err)
	}
	os.WriteFile(LoadLimitPath, []byte("1000\n"), 0o600)
	os.WriteFile(kexecLoadedPath, []byte("1\n"), 0o600)
	if st, _, err := PreloadStatus(); st != PreloadNone || err != nil {
		t.Fatalf("no record: %v %v", st, err)
	}
	b, _ := json.Marshal(preload{BootID: bootID(), Limit: 1000})
	os.WriteFile(PreloadRecord, b, 0o600)
	if st, d, err := PreloadStatus(); st != PreloadOurs || err != nil {
		t.Fatalf("valid record: %v %q %v", st, d, err)
	}
	os.WriteFile(LoadLimitPath, []byte("999\n"), 0o600)
	if st, d, err := PreloadStatus(); st != PreloadReplaced || err != nil {
		t.Fatalf("foreign load: %v %q %v", st, d, err)
	}
	if r := checkPreload(&checkRun{}); r.Status != Warn || !strings.Contains(r.Fix, "kexec-load.service") {
		t.Fatalf("check line for a replaced preload: %+v", *r)
	}
}
