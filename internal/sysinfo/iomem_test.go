package sysinfo

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
