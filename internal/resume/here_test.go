package resume

import (
	"errors"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/fsstate"
	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/phys"
)

// A directly started restore kernel sees the firmware's RAM, which keeps a
// little more than a booted kernel's iomem (page 0): the image may hold up
// to 1 MiB less, never more, and must carry the same region.
func TestSameMachineHere(t *testing.T) {
	region := phys.Range{Start: 0x30000000, End: 0x38000000}
	fwRAM := phys.Ranges{{Start: 0, End: 0x9f000}, {Start: 0x100000, End: 0x40000000}}.Subtract(region).Normalize()
	h := &Here{Region: region, RAM: fwRAM}
	saved := phys.Ranges{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x40000000}}.Subtract(region).Normalize()
	info := func(region string, rs phys.Ranges) image.Info {
		i := image.Info{ID: "img", Metadata: image.Metadata{Extra: map[string]string{"region": region}}}
		for _, r := range rs {
			i.Ranges = append(i.Ranges, image.Range{Start: r.Start, End: r.End})
		}
		return i
	}
	if err := sameMachineHere(info("0x30000000-0x38000000", saved), h); err != nil {
		t.Errorf("same machine refused: %v", err)
	}
	for name, i := range map[string]image.Info{
		"other region": info("0x20000000-0x28000000", saved),
		"less RAM":     info("0x30000000-0x38000000", saved[:2]),
		"more RAM":     info("0x30000000-0x38000000", append(saved, phys.Range{Start: 0x100000000, End: 0x100001000})),
	} {
		if err := sameMachineHere(i, h); err == nil || !strings.Contains(err.Error(), "img") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Here, a filesystem the kernel cannot see or prove is left to the normal
// boot (no error that checkDisks would invalidate on); a proven change
// falls through to checkDisks.
func TestProvenHere(t *testing.T) {
	info := image.Info{ID: "img"}
	missing := fsstate.Result{Missing: []image.Fingerprint{{UUID: "u1", Type: "ext4", Device: "/dev/nvme0n1p2"}}}
	if err := provenHere(info, missing, nil); err == nil || !strings.Contains(err.Error(), "normal boot") {
		t.Errorf("missing filesystem: %v", err)
	}
	unproven := &fsstate.StaleError{Changes: []fsstate.Change{{Unproven: "xfs"}}}
	if err := provenHere(info, fsstate.Result{}, unproven); err == nil || !strings.Contains(err.Error(), "normal boot") {
		t.Errorf("unproven filesystem: %v", err)
	}
	proven := &fsstate.StaleError{Changes: []fsstate.Change{{}}}
	if err := provenHere(info, fsstate.Result{}, proven); err != nil {
		t.Errorf("a proven change must reach checkDisks (which invalidates): %v", err)
	}
	if err := provenHere(info, fsstate.Result{}, errors.New("read error")); err == nil || !strings.Contains(err.Error(), "normal boot") {
		t.Errorf("check error: %v", err)
	}
}
