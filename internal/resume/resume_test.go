package resume

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/phys"
	"github.com/kjump/kjump/internal/storage"
	"github.com/kjump/kjump/internal/sysinfo"
)

// sameMachine compares the image's region and RAM with this boot's.
func TestSameMachine(t *testing.T) {
	sys := &sysinfo.System{IOMem: []sysinfo.Resource{
		{Range: phys.Range{Start: 0x1000, End: 0x9fc00}, Name: "System RAM"},
		{Range: phys.Range{Start: 0x100000, End: 0x40000000}, Name: "System RAM"},
	}}
	plan := &layout.HelperPlan{HelperRAM: phys.Range{Start: 0x30000000, End: 0x37f00000}, Tail: phys.Range{Start: 0x37f00000, End: 0x38000000}}
	ram := layout.OriginalRAM(sys.IOMem, plan.Region())
	info := func(region string, rs phys.Ranges) image.Info {
		i := image.Info{ID: "img", Metadata: image.Metadata{Extra: map[string]string{}}}
		if region != "" {
			i.Metadata.Extra["region"] = region
		}
		for _, r := range rs {
			i.Ranges = append(i.Ranges, image.Range{Start: r.Start, End: r.End})
		}
		return i
	}
	if err := sameMachine(info("0x30000000-0x38000000", ram), plan, sys); err != nil {
		t.Errorf("same machine refused: %v", err)
	}
	if err := sameMachine(info("", ram), plan, sys); err != nil {
		t.Errorf("an image without a region record refused: %v", err)
	}
	for name, i := range map[string]image.Info{
		"other region":   info("0x20000000-0x28000000", ram),
		"forged region":  info("0x30000000-0x38000000junk", ram),
		"other RAM":      info("0x30000000-0x38000000", ram[:1]),
		"RAM and region": info("0x30000000-0x38000000", append(ram, phys.Range{Start: 0x30000000, End: 0x30001000})),
	} {
		err := sameMachine(i, plan, sys)
		if err == nil || !strings.Contains(err.Error(), "img") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// usable's rule at boot: a committed image is resumed; one whose restore
// was interrupted only with kjump.force=1 (Retry) or --force; a spent one
// (resumed, refused) only with --force, never with kjump.force=1. Each
// refusal says what to do and is "nothing to resume" (the boot goes on).
func TestUsableRetryOnlyInterrupted(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o700)
	tg, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	mem := make([]byte, 256<<10)
	for i := range mem {
		mem[i] = byte(i * 7)
	}
	src := image.RangeSource(bytes.NewReader(mem), []image.Range{{Start: 0, End: 256 << 10}})
	if _, err := image.WriteTarget(context.Background(), tg, src, image.Metadata{KernelRelease: "6.1.0"}, image.WithChunkSize(64<<10)); err != nil {
		t.Fatal(err)
	}
	check := func(state string, o Options, want string) {
		t.Helper()
		r, err := image.OpenTarget(tg)
		if err == nil {
			defer r.Close()
		}
		got := usable(tg, r, err, o)
		switch {
		case want == "" && got != nil:
			t.Errorf("%s %+v: refused: %v", state, o, got)
		case want != "" && (got == nil || !strings.Contains(got.Error(), want) || !errors.Is(got, ErrNothingToResume)):
			t.Errorf("%s %+v: %v, want %q", state, o, got, want)
		}
	}
	check("committed", Options{}, "")
	if err := image.MarkRestoringTarget(tg); err != nil {
		t.Fatal(err)
	}
	check("restoring", Options{}, "boot once with kjump.force=1")
	check("restoring", Options{Retry: true}, "")
	check("restoring", Options{Force: true}, "")
	if err := image.InvalidateTarget(tg); err != nil { // the restore kernel, done
		t.Fatal(err)
	}
	check("spent", Options{}, "'resume --force' restores it anyway")
	check("spent", Options{Retry: true}, "kjump.force=1 retries only an interrupted restore")
	check("spent", Options{Force: true}, "")
	// A direct restore kernel has no shell: it points at the normal boot.
	check("spent", Options{Here: &Here{}}, "the normal boot that follows leaves it alone")
}
