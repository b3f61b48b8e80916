package vm

import (
	"errors"
	"fmt"
	"os"

	"github.com/kjump/kjump/internal/initramfs"
)

// HelperFiles returns the files a machine that hibernates with kjump needs
// in its initramfs, at the default paths of `hibernate` and `resume`: the
// helper kernel and the helper initramfs, whose /init is the static
// hibernate binary (hibernateBin) and nothing else. The helper initramfs is
// written to helperPath unless it exists already.
func HelperFiles(helperPath, kernel, hibernateBin string) (map[string]File, error) {
	if _, err := os.Stat(helperPath); err != nil {
		w, err := initramfs.Create(helperPath)
		if err != nil {
			return nil, err
		}
		var errs []error
		for _, d := range []string{"dev", "proc", "sys", "tmp", "mnt"} {
			errs = append(errs, w.Dir(d, 0o755))
		}
		errs = append(errs, w.CharDev("dev/console", 0o600, 5, 1),
			w.CopyFile("init", 0o755, hibernateBin), w.Close())
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("vm: helper initramfs %s: %w", helperPath, err)
		}
	}
	return map[string]File{
		"boot/kjump/helper.bzImage": {Host: kernel, Mode: 0o644},
		"boot/kjump/helper.cpio.gz": {Host: helperPath, Mode: 0o644},
	}, nil
}
