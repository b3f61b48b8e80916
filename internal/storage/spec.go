package storage

import (
	"fmt"
	"strings"
)

// Spec is a parsed target: a device tag (UUID=, LABEL=, PARTUUID=,
// PARTLABEL=) or a path.
type Spec struct {
	Tag   string // "" for a path
	Value string // the tag's value, or the path
	// Path is the file in "DEVICE:/path" (a file on a filesystem nobody
	// mounted yet, see SplitDevicePath); Tag and Value then name DEVICE.
	Path string
}

// ParseSpec checks a target as the user wrote it. A word of upper-case
// letters before '=' is a tag and must be one kjump knows; its value may
// not contain '/' (udev escapes it in /dev/disk/by-* names, and a raw '/'
// or ".." would walk out of that directory to another device).
func ParseSpec(spec string) (Spec, error) {
	if spec == "" {
		return Spec{}, fmt.Errorf("empty target: give a file, directory, /dev/ block device, UUID=, LABEL=, PARTUUID= or PARTLABEL=")
	}
	if strings.IndexByte(spec, 0) >= 0 {
		return Spec{}, fmt.Errorf("target %q contains a NUL byte", spec)
	}
	if dev, path, ok := SplitDevicePath(spec); ok {
		d, err := ParseSpec(dev)
		d.Path = path
		return d, err
	}
	k, v, ok := strings.Cut(spec, "=")
	if !ok || !looksLikeTag(k) {
		return Spec{Value: spec}, nil
	}
	if !isTag(k) {
		return Spec{}, fmt.Errorf("target %s: unknown tag %s=: use UUID=, LABEL=, PARTUUID= or PARTLABEL= (or ./%s for a file of that name)", spec, k, spec)
	}
	v = strings.Trim(v, `"`)
	switch {
	case v == "":
		return Spec{}, fmt.Errorf("target %s: empty %s value: give the value blkid or lsblk shows", spec, k)
	case strings.Contains(v, "/") || v == "." || v == "..":
		return Spec{}, fmt.Errorf("target %s: a %s value cannot contain '/' or be '.' or '..': give the value blkid shows, or the device path", spec, k)
	}
	return Spec{Tag: k, Value: v}, nil
}

// looksLikeTag: upper-case letters only, as in UUID or PARTLABEL.
func looksLikeTag(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func (s Spec) String() string {
	dev := s.Value
	if s.Tag != "" {
		dev = s.Tag + "=" + s.Value
	}
	if s.Path != "" {
		return dev + ":" + s.Path
	}
	return dev
}

// errDevicePath refuses "DEVICE:/path" where only boot-time resume reads it.
func errDevicePath(spec string) error {
	return fmt.Errorf("target %s names a file on a filesystem by its device, which only 'resume' at boot reads: mount the filesystem and give the file's path", spec)
}
