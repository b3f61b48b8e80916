package jump

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func itoa(i int) string   { return fmt.Sprint(i) }
func hex(v uint64) string { return fmt.Sprintf("0x%x", v) }

func TestParseIOMem(t *testing.T) {
	res := qemuIOMem(t)
	if got, want := SystemRAM(res), (Ranges{{Start: 0x1000, End: 0x9fc00}, {Start: 0x100000, End: 0x30000000}, {Start: 0x38000000, End: 0x3ffe0000}}); !reflect.DeepEqual(got, want) {
		t.Errorf("SystemRAM = %v, want %v", got, want)
	}
	code, ok := Find(res, "Kernel code")
	if !ok || code.Start != 0x13000000 || code.Depth != 1 {
		t.Errorf("Kernel code = %+v, %v", code, ok)
	}
	if got, want := OriginalRAM(res, Range{Start: 0x30000000, End: 0x38000000}), (Ranges{{Start: 0x1000, End: 0x9f000}, {Start: 0x100000, End: 0x30000000}, {Start: 0x38000000, End: 0x3ffe0000}}); !reflect.DeepEqual(got, want) {
		t.Errorf("OriginalRAM = %v, want %v", got, want)
	}
}

func TestParseIOMemRejectsBadInput(t *testing.T) {
	for name, in := range map[string]string{
		"no separator": "00000000-00000fff Reserved\n",
		"no dash":      "00000000 : Reserved\n",
		"not hex":      "0000zz00-00000fff : Reserved\n",
		"end < start":  "00001000-00000fff : Reserved\n",
		"unprivileged": "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n",
	} {
		if _, err := ParseIOMem(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted %q", name, in)
		}
	}
	_, err := ParseIOMem(strings.NewReader("00000000-00000000 : System RAM\n"))
	if err == nil || !strings.Contains(err.Error(), "root") {
		t.Errorf("zeroed addresses should ask for root, got %v", err)
	}
}

func TestReadFirmwareMemmap(t *testing.T) {
	dir := writeFirmwareMemmap(t, qemuFirmware)
	got, err := ReadFirmwareMemmap(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, qemuFirmware) {
		t.Errorf("got %v\nwant %v", got, qemuFirmware)
	}
	os.WriteFile(filepath.Join(dir, "3", "end"), []byte("zz\n"), 0o644)
	if _, err := ReadFirmwareMemmap(dir); err == nil {
		t.Error("bad end accepted")
	}
	if _, err := ReadFirmwareMemmap(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing directory accepted")
	}
}

func TestRanges(t *testing.T) {
	rs := Ranges{{Start: 0x3000, End: 0x5000}, {Start: 0x1000, End: 0x2000}, {Start: 0x2000, End: 0x3000}, {Start: 0x9000, End: 0x9000}}.Normalize()
	if want := (Ranges{{Start: 0x1000, End: 0x5000}}); !reflect.DeepEqual(rs, want) {
		t.Errorf("Normalize = %v", rs)
	}
	if got := rs.Subtract(Range{Start: 0x2000, End: 0x3000}); !reflect.DeepEqual(got, Ranges{{Start: 0x1000, End: 0x2000}, {Start: 0x3000, End: 0x5000}}) {
		t.Errorf("Subtract middle = %v", got)
	}
	if got := rs.Subtract(Range{Start: 0, End: 0x10000}); len(got) != 0 {
		t.Errorf("Subtract all = %v", got)
	}
	if got := (Range{Start: 0x1001, End: 0x3fff}).PageAligned(); got != (Range{Start: 0x2000, End: 0x3000}) {
		t.Errorf("PageAligned = %v", got)
	}
	if got := (Range{Start: 0x1001, End: 0x1fff}).PageAligned(); !got.Empty() {
		t.Errorf("PageAligned of a partial page = %v", got)
	}
}

func TestParseMemmapReservations(t *testing.T) {
	got, err := ParseMemmapReservations(`console=ttyS0 memmap=128M$0x30000000 memmap=exactmap memmap=64K\$1G,1M$0x100000000 memmap=640K@0`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Reservation{
		{RangeOf(0x30000000, 128<<20), "memmap=128M$0x30000000"},
		{RangeOf(1<<30, 64<<10), "memmap=64K$1G"},
		{RangeOf(1<<32, 1<<20), "memmap=1M$0x100000000"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	for _, bad := range []string{"memmap=12Q$0x1000", "memmap=1M$zz", "memmap=99999999999999999999G$0"} {
		if _, err := ParseMemmapReservations(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFindReservation(t *testing.T) {
	iomem := qemuIOMem(t)
	r, err := FindReservation("console=ttyS0 memmap=128M$0x30000000", iomem, 64<<20)
	if err != nil || r.Range != (Range{Start: 0x30000000, End: 0x38000000}) {
		t.Fatalf("got %v, %v", r, err)
	}
	_, err = FindReservation("console=ttyS0", iomem, 64<<20)
	if err == nil || !strings.Contains(err.Error(), "memmap=") || !strings.Contains(err.Error(), "no memory is reserved") {
		t.Errorf("no reservation: %v", err)
	}
	_, err = FindReservation("memmap=128M$0x30000000", iomem, 256<<20)
	if err == nil || !strings.Contains(err.Error(), "at least 256 MiB") {
		t.Errorf("too small: %v", err)
	}
	_, err = FindReservation("memmap=16M$0x01000000", iomem, 1<<20)
	if err == nil || !strings.Contains(err.Error(), "overlaps System RAM") {
		t.Errorf("not honoured: %v", err)
	}
	ck := append(qemuIOMem(t), Resource{Range: Range{Start: 0x20000000, End: 0x28000000}, Name: "Crash kernel", Depth: 1})
	r, err = FindReservation("crashkernel=128M", ck, 64<<20)
	if err != nil || r.Source != "crashkernel" || r.Start != 0x20000000 {
		t.Errorf("crashkernel: %v, %v", r, err)
	}
}
