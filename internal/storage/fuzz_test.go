package storage

import (
	"strings"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for spec, want := range map[string]Spec{
		"/dev/vda":                   {Value: "/dev/vda"},
		"PARTUUID=1234-01":           {Tag: "PARTUUID", Value: "1234-01"},
		`LABEL="kjump img"`:          {Tag: "LABEL", Value: "kjump img"},
		"/mnt/nfs/A=B":               {Value: "/mnt/nfs/A=B"},
		"host=1.img":                 {Value: "host=1.img"},
		"./FOO=bar":                  {Value: "./FOO=bar"},
		"UUID=0b7c-11":               {Tag: "UUID", Value: "0b7c-11"},
		"PARTLABEL=kjump swap":       {Tag: "PARTLABEL", Value: "kjump swap"},
		"UUID=ab-12:/kjump/ckpt.img": {Tag: "UUID", Value: "ab-12", Path: "/kjump/ckpt.img"},
		"/dev/vdb:/kjump.img":        {Value: "/dev/vdb", Path: "/kjump.img"},
	} {
		got, err := ParseSpec(spec)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", spec, got, err, want)
		}
	}
	for spec, msg := range map[string]string{
		"":                "empty target",
		"LABEL=":          "empty LABEL value",
		"LABEL=../../vda": "cannot contain '/'",
		"PARTUUID=..":     "cannot contain '/'",
		"FOO=bar":         "unknown tag FOO=",
		"a\x00b":          "NUL",
	} {
		if _, err := ParseSpec(spec); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", spec, err, msg)
		}
	}
}

// FuzzParseSpec: no panic; a tag is one kjump knows and its value can
// never leave /dev/disk/by-*/; String gives the spec back.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"/dev/vda", "PARTUUID=1234-01", `LABEL="a b"`, "LABEL=../../vda", "FOO=bar", "x=y", "UUID="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := ParseSpec(spec)
		if err != nil {
			return
		}
		if s.Tag != "" {
			if !isTag(s.Tag) || s.Value == "" || strings.Contains(s.Value, "/") || s.Value == ".." || s.Value == "." || s.Path != "" && s.Path[0] != '/' {
				t.Fatalf("%q parsed as %+v", spec, s)
			}
			if again, err := ParseSpec(s.String()); err != nil || again != s {
				t.Fatalf("%q: %+v does not round-trip: %+v, %v", spec, s, again, err)
			}
		} else if s.Path == "" && s.Value != spec {
			t.Fatalf("path %q became %q", spec, s.Value)
		}
	})
}

// FuzzSignature: the raw device signature block from any bytes and
// device size: an error or a length that fits the device.
func FuzzSignature(f *testing.F) {
	f.Add(encodeSignature(12345), int64(1<<20))
	f.Add(encodeSignature(12345), int64(100)) // a valid block on a device too small for it
	f.Add(make([]byte, SignatureSize), int64(SignatureSize))
	f.Fuzz(func(t *testing.T, head []byte, devSize int64) {
		b := make([]byte, SignatureSize)
		copy(b, head)
		n, err := parseSignature(b, devSize)
		if err == nil && (n < 0 || n > devSize-SignatureSize) {
			t.Fatalf("length %d accepted on a %d-byte device", n, devSize)
		}
	})
}

// FuzzSuperblockID: superblocks and partition names come from any disk.
// The input is the ext superblock area (offset 1024) and swap's tail.
func FuzzSuperblockID(f *testing.F) {
	sb := make([]byte, 160)
	sb[56], sb[57] = 0x53, 0xEF
	copy(sb[120:], "kjdata")
	f.Add(sb, "")
	f.Add([]byte{}, "SWAPSPACE2")
	f.Fuzz(func(t *testing.T, sb []byte, tail string) {
		b := make([]byte, 4096)
		copy(b[1024:], sb)
		copy(b[4086:], tail)
		superblockID(b)
		utf16z(sb)
		cstr(sb)
	})
}
