package layout

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/image"
	"github.com/kjump/kjump/internal/sysinfo"
)

func iomemSample(t *testing.T, name string) []sysinfo.Resource {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := sysinfo.ParseIOMem(f)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSuggestReservation(t *testing.T) {
	for _, tc := range []struct {
		name, iomem, cmdline string
		size                 uint64
		want                 string
	}{
		// Free RAM from 256 MiB; the kernel (KASLR put it at 1.5 GiB) is elsewhere.
		{name: "laptop", iomem: "laptop-16g.iomem", size: 160 << 20, want: "memmap=160M$0x10000000"},
		{name: "laptop large", iomem: "laptop-16g.iomem", size: 700 << 20, want: "memmap=700M$0x10000000"},
		// No range holds it above 256 MiB: from 96 MiB.
		{name: "laptop larger", iomem: "laptop-16g.iomem", size: 800 << 20, want: "memmap=800M$0x6000000"},
		// The crashkernel= region and the kernel inside it are skipped.
		{name: "crashkernel", iomem: "crashkernel-4g.iomem", size: 144 << 20, want: "memmap=144M$0x2f000000"},
		// Too little RAM above 256 MiB: from 96 MiB, clear of the kernel at 16 MiB.
		{name: "small", iomem: "small-384m.iomem", size: 144 << 20, want: "memmap=144M$0x6000000"},
		// The kernel image (nokaslr, at 304 MiB) is avoided.
		{name: "qemu", iomem: "qemu-1g.iomem", size: 128 << 20, want: "memmap=128M$0x15000000"},
		// The existing reservation counts as free: a larger one may take its place.
		{name: "qemu grows", iomem: "qemu-1g.iomem", cmdline: "root=/dev/vda memmap=128M$0x30000000", size: 400 << 20, want: "memmap=400M$0x15000000"},
		// ... and GRUB's escaped form on /proc/cmdline counts too.
		{name: "qemu escaped", iomem: "qemu-1g.iomem", cmdline: `memmap=128M\$0x30000000`, size: 400 << 20, want: "memmap=400M$0x15000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := SuggestReservation(iomemSample(t, tc.iomem), tc.cmdline, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			if r.Source != tc.want || MemmapArg(r.Range) != tc.want || r.Size() != tc.size {
				t.Fatalf("got %s %v, want %s", r.Source, r.Range, tc.want)
			}
			// What the kernel will parse back is the same range.
			back, err := ParseMemmapReservations(r.Source)
			if err != nil || len(back) != 1 || back[0].Range != r.Range {
				t.Fatalf("%s parses back as %v, %v", r.Source, back, err)
			}
			// Inside System RAM (or the old reservation) of the sample, below 4 GiB.
			if r.End > 4<<30 || r.Start < 96<<20 {
				t.Fatalf("%v outside [96 MiB, 4 GiB)", r.Range)
			}
		})
	}
}

func TestSuggestReservationRefuses(t *testing.T) {
	_, err := SuggestReservation(iomemSample(t, "small-384m.iomem"), "", 512<<20)
	if err == nil || !strings.Contains(err.Error(), "no free System RAM range below 4 GiB holds 512 MiB") {
		t.Fatalf("got %v", err)
	}
	// 12 GiB of RAM above 4 GiB do not count: no range below holds 1 GiB.
	if r, err := SuggestReservation(iomemSample(t, "laptop-16g.iomem"), "", 1<<30); err == nil {
		t.Fatalf("chose %v", r.Range)
	}
	if _, err := SuggestReservation(iomemSample(t, "qemu-1g.iomem"), "", 1000); err == nil {
		t.Fatal("a size that is not a page multiple was accepted")
	}
	if _, err := SuggestReservation(iomemSample(t, "qemu-1g.iomem"), "memmap=12Q$0x100", 128<<20); err == nil {
		t.Fatal("a malformed memmap= on the command line was ignored")
	}
	// Near the top of the address space the end must not wrap around.
	top := []sysinfo.Resource{{Range: Range{Start: 0xffffffffff000000, End: 0xfffffffffffff000}, Name: "System RAM"}}
	if r, err := SuggestReservation(top, "", 64<<20); err == nil {
		t.Fatalf("chose %v above 4 GiB", r.Range)
	}
}

func TestHelperSize(t *testing.T) {
	// The test kernel (init_size 43 MiB) with a 4 MiB initramfs on 2 CPUs.
	got := HelperSize(43<<20, 4<<20, 2, 128<<20)
	if got%(16<<20) != 0 || got < 128<<20 {
		t.Fatalf("HelperSize = %d MiB", got>>20)
	}
	// The workers' part is what image.ThreadsFor grants: with the region
	// minus kernel, initramfs and the kernel's own use, all workers fit.
	for workers := 1; workers <= 8; workers++ {
		size := HelperSize(43<<20, 4<<20, workers, 0)
		avail := size - (44 << 20) - 4*(4<<20) - helperKernelRuntime - tailEstimate
		if n := image.ThreadsFor(workers, avail); n != min(workers, image.MaxThreads) {
			t.Errorf("%d workers: %d MiB leaves %d MiB, room for %d workers", workers, size>>20, avail>>20, n)
		}
	}
	if a, b := HelperSize(43<<20, 4<<20, 1, 0), HelperSize(43<<20, 4<<20, 4, 0); a >= b {
		t.Errorf("4 workers (%d MiB) need no more than 1 (%d MiB)", b>>20, a>>20)
	}
	if got := HelperSize(43<<20, 4<<20, 64, 0); got != HelperSize(43<<20, 4<<20, image.MaxThreads, 0) {
		t.Errorf("more CPUs than image.MaxThreads still grew the region")
	}
	if got := HelperSize(10<<20, 1<<20, 1, 512<<20); got != 512<<20 {
		t.Errorf("minimum ignored: %d MiB", got>>20)
	}
}

func TestGrubEscape(t *testing.T) {
	if got := GrubEscape(MemmapArg(RangeOf(0x30000000, 128<<20))); got != `memmap=128M\\\$0x30000000` {
		t.Fatalf("GrubEscape = %s", got)
	}
}
