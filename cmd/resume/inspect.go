package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kjump/kjump/internal/cli"
	"github.com/kjump/kjump/internal/storage"
)

// exitNoTarget is 'resume image's status for a TARGET that does not exist
// at all, distinct from 3 (the target exists but holds no committed image).
const exitNoTarget = 5

// openInspect opens spec for the read-only image commands. resume trusts
// an image with root's authority at boot, so storage.Open refuses image
// files in directories other users can write (/tmp); reading one to show,
// verify or restore it into a file trusts it with nothing, so an image file
// or a directory holding one is read as it is here, without that demand.
// Block devices, UUID=/LABEL= names, NFS and mapped files go through
// storage.Open.
func openInspect(spec string) (storage.Target, error) {
	fi, err := os.Stat(spec)
	switch {
	case errors.Is(err, os.ErrNotExist) && !strings.Contains(spec, "=") && !strings.Contains(spec, ":"):
		return nil, &cli.ExitError{Code: exitNoTarget, Err: fmt.Errorf("%s does not exist: give an image file, a directory holding %s, a block device, UUID=, LABEL= or an NFS path", spec, storage.DefaultName)}
	case err != nil:
		return storage.Open(spec)
	}
	path := spec
	switch {
	case fi.IsDir():
		path = filepath.Join(spec, storage.DefaultName)
	case !fi.Mode().IsRegular():
		return storage.Open(spec)
	}
	if mapped(path) {
		return storage.Open(spec)
	}
	return readOnlyFile{path: path, spec: spec}, nil
}

// mapped reports whether path is a mapped image file (its image lives in
// the blocks of its filesystem's device, found through storage.Open).
func mapped(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	magic := make([]byte, 8)
	if _, err := f.ReadAt(magic, 0); err != nil {
		return false
	}
	return string(magic) == "KJUMPMAP" || string(magic) == "KJUMPDEV"
}

// readOnlyFile is an image file opened for reading only.
type readOnlyFile struct{ path, spec string }

func (t readOnlyFile) String() string {
	if t.path == t.spec {
		return t.path
	}
	return t.path + " (" + t.spec + ")"
}

func (t readOnlyFile) Create(uint64) (storage.Writer, error) {
	return nil, fmt.Errorf("%s: opened for reading only", t)
}

func (t readOnlyFile) Open(writable bool) (storage.Image, error) {
	if writable {
		return nil, fmt.Errorf("%s: opened for reading only", t)
	}
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		if _, terr := os.Stat(t.path + ".tmp"); terr == nil {
			return nil, fmt.Errorf("%s: %w (only an unfinished temporary image, left by an interrupted write)", t, storage.ErrNoImage)
		}
		return nil, fmt.Errorf("%s: %w", t, storage.ErrNoImage)
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return readOnlyImage{f, fi.Size()}, nil
}

type readOnlyImage struct {
	*os.File
	size int64
}

func (i readOnlyImage) Size() int64 { return i.size }
func (i readOnlyImage) WriteAt([]byte, int64) (int, error) {
	return 0, errors.New("image opened for reading only")
}
