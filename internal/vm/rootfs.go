package vm

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os/exec"
	"sort"
	"strings"

	"github.com/kjump/kjump/internal/initramfs"
)

// Busybox is the static busybox the images are built from (Debian's
// busybox-static package).
const Busybox = "/bin/busybox"

// File is one file placed into an initramfs: from the host (Host) or from
// memory (Data).
type File struct {
	Host string
	Data []byte
	Mode fs.FileMode // 0 means 0755
}

// Initramfs describes a minimal busybox system. Init is the /init script
// (run by busybox sh as PID 1); Files maps image paths to their content.
// Busybox is installed as /bin/busybox with every applet linked under
// /bin, /sbin, /usr/bin and /usr/sbin.
type Initramfs struct {
	Init  string
	Files map[string]File
}

// Write builds the image as a gzip-compressed newc archive at path.
func (r Initramfs) Write(path string) error {
	applets, err := busyboxApplets()
	if err != nil {
		return err
	}
	w, err := initramfs.Create(path)
	if err != nil {
		return err
	}
	var errs []error
	check := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "tmp", "run", "mnt", "root", "etc"} {
		check(w.Dir(d, 0o755))
	}
	check(w.CharDev("dev/console", 0o600, 5, 1))
	check(w.CharDev("dev/null", 0o666, 1, 3))
	check(w.CopyFile("bin/busybox", 0o755, Busybox))
	for _, a := range applets {
		if _, own := r.Files[a]; !own && a != "bin/busybox" {
			check(w.Symlink(a, "/bin/busybox"))
		}
	}
	init := r.Init
	if !strings.HasPrefix(init, "#!") {
		init = "#!/bin/sh\n" + init
	}
	check(w.File("init", 0o755, []byte(init)))
	names := make([]string, 0, len(r.Files))
	for n := range r.Files {
		names = append(names, n)
	}
	sort.Strings(names) // reproducible images
	for _, n := range names {
		f := r.Files[n]
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		if f.Host != "" {
			check(w.CopyFile(n, mode, f.Host))
		} else {
			check(w.File(n, mode, f.Data))
		}
	}
	check(w.Close())
	if len(errs) > 0 {
		return fmt.Errorf("vm: writing initramfs %s: %w", path, errs[0])
	}
	return nil
}

// busyboxApplets lists the applets with their install paths, e.g. "sbin/poweroff".
func busyboxApplets() ([]string, error) {
	out, err := exec.Command(Busybox, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("vm: %s --list-full: %v (install busybox-static)", Busybox, err)
	}
	var list []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		a := strings.TrimSpace(sc.Text())
		if strings.Contains(a, "/") { // skip "linuxrc" at the root
			list = append(list, a)
		}
	}
	return list, nil
}
