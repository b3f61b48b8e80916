package helper

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// moduleList is written by 'hibernate prepare' (internal/prepare): the
// kernel modules that reach the target, one path per line in load order.
const moduleList = "/etc/kjump/modules"

// loadModules loads the initramfs's modules with finit_module before
// anything opens the target. A module that fails is reported and skipped:
// the target's own error then says what is missing.
func loadModules() {
	b, err := os.ReadFile(moduleList)
	if err != nil {
		return // no modules: the helper kernel has its drivers built in
	}
	n := 0
	for _, path := range strings.Fields(string(b)) {
		if err := loadModule(path); err != nil {
			logf("loading module %s: %v", path, err)
			continue
		}
		n++
	}
	logf("loaded %d kernel modules", n)
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	flags := 0
	if compressedModule(path) {
		// Distribution kernels install modules compressed (Debian 13: .ko.xz);
		// the kernel decompresses them itself when built with MODULE_DECOMPRESS.
		flags = unix.MODULE_INIT_COMPRESSED_FILE
	}
	err = unix.FinitModule(int(f.Fd()), "", flags)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if flags != 0 && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP)) {
		return fmt.Errorf("finit_module: %w (a compressed module needs a helper kernel with CONFIG_MODULE_DECOMPRESS=y)", err)
	}
	if err != nil {
		return fmt.Errorf("finit_module: %w", err)
	}
	return nil
}

// compressedModule reports whether path names a module file the kernel must
// decompress (modules_install's MODULE_COMPRESS suffixes).
func compressedModule(path string) bool {
	for _, ext := range []string{".ko.xz", ".ko.zst", ".ko.gz"} {
		if strings.HasSuffix(path, ext) {
			return true
		}
	}
	return false
}
