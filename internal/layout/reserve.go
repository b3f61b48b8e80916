package layout

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kjump/kjump/internal/sysinfo"
)

// Reservation is the physical memory set aside at boot for the helper
// kernel, which the running kernel never uses.
type Reservation struct {
	Range
	Source string // "memmap=256M$0x30000000" or "crashkernel"
}

// ParseMemSize parses a kernel memparse() number: decimal, 0x-hex or
// 0-octal, with an optional K, M, G, T, P or E suffix.
func ParseMemSize(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	shift := 0
	switch s[len(s)-1] {
	case 'K', 'k':
		shift = 10
	case 'M', 'm':
		shift = 20
	case 'G', 'g':
		shift = 30
	case 'T', 't':
		shift = 40
	case 'P', 'p':
		shift = 50
	case 'E', 'e':
		shift = 60
	}
	if shift != 0 {
		s = s[:len(s)-1]
	}
	v, err := strconv.ParseUint(s, 0, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if shift != 0 && v > (^uint64(0))>>shift {
		return 0, fmt.Errorf("size %q overflows", s)
	}
	return v << shift, nil
}

// ParseMemmapReservations returns every memmap=SIZE$ADDR range on a kernel
// command line (boot loaders sometimes need the $ escaped; both forms parse).
func ParseMemmapReservations(cmdline string) ([]Reservation, error) {
	var out []Reservation
	for _, arg := range strings.Fields(cmdline) {
		val, ok := strings.CutPrefix(arg, "memmap=")
		if !ok {
			continue
		}
		val = strings.ReplaceAll(val, `\$`, "$")
		for _, part := range strings.Split(val, ",") {
			size, addr, ok := strings.Cut(part, "$")
			if !ok {
				continue // other memmap forms (exactmap, @, #, !) do not reserve memory for us
			}
			sz, err := ParseMemSize(size)
			if err != nil {
				return nil, fmt.Errorf("kernel command line %q: %v", arg, err)
			}
			at, err := ParseMemSize(addr)
			if err != nil {
				return nil, fmt.Errorf("kernel command line %q: %v", arg, err)
			}
			out = append(out, Reservation{Range: RangeOf(at, sz), Source: "memmap=" + part})
		}
	}
	return out, nil
}

// FindReservation picks the region for the helper: the largest memmap=$
// reservation that the kernel really left out of System RAM, else the
// crashkernel= region. It refuses clearly when there is none or it is
// smaller than need bytes.
func FindReservation(cmdline string, iomem []sysinfo.Resource, need uint64) (Reservation, error) {
	cands, err := ParseMemmapReservations(cmdline)
	if err != nil {
		return Reservation{}, err
	}
	ram := sysinfo.SystemRAM(iomem)
	var best Reservation
	for _, c := range cands {
		c.Range = c.PageAligned()
		for _, r := range ram {
			if r.Overlaps(c.Range) {
				return Reservation{}, fmt.Errorf("%s overlaps System RAM %v in /proc/iomem: the kernel did not honour the reservation (check the boot loader did not eat the '$'; escape it as '\\$' in GRUB)", c.Source, r)
			}
		}
		if c.Size() > best.Size() {
			best = c
		}
	}
	if best.Empty() {
		if ck, ok := sysinfo.Find(iomem, "Crash kernel"); ok {
			best = Reservation{Range: ck.Range.PageAligned(), Source: "crashkernel"}
		}
	}
	if best.Empty() {
		return Reservation{}, fmt.Errorf("no memory is reserved for the helper kernel: add memmap=%dM$ADDR (a free System RAM range) or crashkernel=%dM to the kernel command line and reboot (see docs/setup.md)", need>>20, need>>20)
	}
	if best.Size() < need {
		return Reservation{}, fmt.Errorf("reserved region %v (%s) is %d MiB but the helper kernel needs at least %d MiB: enlarge it on the kernel command line", best.Range, best.Source, best.Size()>>20, need>>20)
	}
	return best, nil
}
