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
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finit_module: %w", err)
	}
	return nil
}
