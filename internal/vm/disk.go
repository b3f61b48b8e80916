package vm

import (
	"fmt"
	"os"
	"os/exec"
)

// CreateDisk creates a sparse raw disk image of sizeMiB MiB (all zeroes).
func CreateDisk(path string, sizeMiB int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := f.Truncate(int64(sizeMiB) << 20); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// MakeExt4 creates a raw disk image of sizeMiB MiB holding an ext4 file
// system (no partition table) labelled label, populated from the directory
// fromDir if it is not empty. mkfs.ext4 -d writes the files itself, so no
// loop mount or root privileges are needed.
func MakeExt4(path string, sizeMiB int, label, fromDir string) error {
	if err := CreateDisk(path, sizeMiB); err != nil {
		return err
	}
	args := []string{"-q", "-F", "-t", "ext4", "-L", label}
	if fromDir != "" {
		args = append(args, "-d", fromDir)
	}
	args = append(args, path)
	if out, err := exec.Command("mkfs.ext4", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("vm: mkfs.ext4 %s: %v\n%s", path, err, out)
	}
	return nil
}
