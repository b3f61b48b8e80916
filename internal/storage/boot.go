package storage

import "path/filepath"

// BootTarget is a target as resume opens it at boot: Open's targets, and
// also "DEVICE:/path", a file on a filesystem nobody mounted yet.
type BootTarget struct {
	Target
	// Path is what this kernel opened, tags resolved: a device, or a file
	// (for DEVICE:/path, inside the read-only mount).
	Path    string
	release func()
}

// OpenAtBoot resolves spec once and opens it. For "DEVICE:/path" it mounts
// DEVICE's filesystem read-only without journal replay (MountReadOnly)
// until Close; the target keeps the name the user gave.
func OpenAtBoot(spec string) (*BootTarget, error) {
	ps, err := ParseSpec(spec)
	if err != nil {
		return nil, err
	}
	switch {
	case ps.Path != "":
		dir, unmount, err := MountReadOnly(Spec{Tag: ps.Tag, Value: ps.Value}.String())
		if err != nil {
			return nil, err
		}
		local := filepath.Join(dir, ps.Path)
		t, err := Open(local)
		if err != nil {
			unmount()
			return nil, err
		}
		return &BootTarget{Target: Named(t, spec), Path: local, release: unmount}, nil
	case ps.Tag != "":
		dev, err := Resolve(spec)
		if err != nil {
			return nil, err
		}
		t, err := openBlock(dev, spec)
		if err != nil {
			return nil, err
		}
		return &BootTarget{Target: t, Path: dev}, nil
	}
	t, err := Open(spec)
	if err != nil {
		return nil, err
	}
	return &BootTarget{Target: t, Path: spec}, nil
}

// Close unmounts what OpenAtBoot mounted.
func (b *BootTarget) Close() {
	if b.release != nil {
		b.release()
		b.release = nil
	}
}
