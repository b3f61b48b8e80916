package resume

import (
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/layout"
	"github.com/kjump/kjump/internal/phys"
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
