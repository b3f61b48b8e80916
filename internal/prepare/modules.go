package prepare

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ModuleDB is one kernel's module tree as depmod describes it.
type ModuleDB struct {
	Dir     string              // /lib/modules/RELEASE
	deps    map[string][]string // module path (relative to Dir) -> its dependencies, as modules.dep lists them
	byName  map[string]string   // normalised name -> path
	builtin map[string]bool     // normalised names built into the kernel
	softPre map[string][]string // name -> "softdep NAME pre: ..." modules
	// runningBuiltin, when set, says whether the running kernel (the same
	// release) has a module built in: for trees without modules.builtin.
	runningBuiltin func(name string) bool
}

// normName is the kernel's module name: file name without .ko*, '-' as '_'.
func normName(s string) string {
	s = filepath.Base(s)
	if i := strings.Index(s, ".ko"); i >= 0 {
		s = s[:i]
	}
	return strings.ReplaceAll(s, "-", "_")
}

// LoadModuleDB reads modules.dep, modules.builtin and modules.softdep of dir.
func LoadModuleDB(dir string) (*ModuleDB, error) {
	db := &ModuleDB{Dir: dir, deps: map[string][]string{}, byName: map[string]string{}, builtin: map[string]bool{}, softPre: map[string][]string{}}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(line string) {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return
		}
		db.deps[mod] = strings.Fields(deps)
		db.byName[normName(mod)] = mod
	})
	if err != nil {
		return nil, fmt.Errorf("%w: run 'depmod %s' (or install the kernel's modules)", err, filepath.Base(dir))
	}
	eachLine(filepath.Join(dir, "modules.builtin"), func(line string) { db.builtin[normName(line)] = true })
	eachLine(filepath.Join(dir, "modules.softdep"), func(line string) {
		// softdep NAME pre: A B post: C
		f := strings.Fields(line)
		if len(f) < 3 || f[0] != "softdep" {
			return
		}
		pre := false
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				pre = true
			case "post:":
				pre = false
			default:
				if pre {
					db.softPre[normName(f[1])] = append(db.softPre[normName(f[1])], w)
				}
			}
		}
	})
	return db, nil
}

func eachLine(path string, fn func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			fn(l)
		}
	}
	return sc.Err()
}

// Resolve returns the module files (relative to Dir) that names need, in
// an order finit_module accepts: every module after its dependencies.
// Names built into the kernel need nothing; unknown names are an error.
func (db *ModuleDB) Resolve(names []string) ([]string, error) {
	var order []string
	done := map[string]bool{}
	var visit func(path string, stack []string) error
	visit = func(path string, stack []string) error {
		if done[path] {
			return nil
		}
		for _, s := range stack {
			if s == path {
				return fmt.Errorf("dependency loop through %s in %s/modules.dep", path, db.Dir)
			}
		}
		stack = append(stack, path)
		for _, pre := range db.softPre[normName(path)] {
			if p, ok := db.byName[normName(pre)]; ok {
				if err := visit(p, stack); err != nil {
					return err
				}
			}
		}
		// modules.dep lists every (transitive) dependency; visit them
		// in reverse so the deepest loads first, and recurse for order.
		deps := db.deps[path]
		for i := len(deps) - 1; i >= 0; i-- {
			if err := visit(deps[i], stack); err != nil {
				return err
			}
		}
		done[path] = true
		order = append(order, path)
		return nil
	}
	for _, n := range names {
		name := normName(n)
		if db.builtin[name] || db.runningBuiltin != nil && db.runningBuiltin(name) {
			continue
		}
		p, ok := db.byName[name]
		if !ok {
			return nil, fmt.Errorf("kernel module %q is neither in %s/modules.dep nor built in: check the name (lsmod) or install the helper kernel's modules", n, db.Dir)
		}
		if err := visit(p, nil); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// builtinInRunningKernel reports whether the running kernel has a module
// built in: a built-in driver has /sys/module/NAME but no initstate there
// (only loaded modules have one).
func builtinInRunningKernel(name string) bool {
	dir := filepath.Join(SysModule, normName(name))
	if _, err := os.Stat(dir); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "initstate"))
	return os.IsNotExist(err)
}

// SysModule is where the running kernel lists its modules.
var SysModule = "/sys/module"

// runningRelease is the running kernel's release (uname -r).
func runningRelease() string {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// Builtin reports whether a module is built into the kernel.
func (db *ModuleDB) Builtin(name string) bool { return db.builtin[normName(name)] }

// DeviceModules lists the drivers between a sysfs device and the root of
// the device tree (disk, controller, bus): what the helper kernel must load
// to see that device. sysPath is e.g. /sys/dev/block/254:2.
func DeviceModules(sysPath string) []string {
	dir, err := filepath.EvalSymlinks(sysPath)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for ; dir != "/sys" && dir != "/" && dir != "." && filepath.Base(dir) != "devices"; dir = filepath.Dir(dir) {
		for _, link := range []string{filepath.Join(dir, "driver", "module"), filepath.Join(dir, "device", "driver", "module")} {
			if m, err := filepath.EvalSymlinks(link); err == nil {
				if n := normName(filepath.Base(m)); !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
	}
	sort.Strings(out)
	return out
}
