// Package resolve turns a target as the user gave it (a device, UUID=,
// LABEL=, a file or an NFS path) into a handoff.TargetSpec: terms the
// helper or restore kernel can act on without udev or the original's
// mounts.
package resolve

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/dustin/go-humanize"

	"github.com/kjump/kjump/internal/handoff"
	"github.com/kjump/kjump/internal/storage"
)

// Target resolves spec for reading an image. It changes nothing; Prepare
// is its counterpart for writing one.
func Target(spec string) (handoff.TargetSpec, error) {
	return resolveTarget(spec, func(path string) (*storage.FileMap, error) { return storage.LocateFile(path) })
}

// Prepare resolves a target an image is about to be written to. An
// image file on a local filesystem is preallocated (fileSize bytes) when it
// does not exist yet, and stamped with a new token, which also makes any
// image in it non-resumable.
func Prepare(spec string, fileSize int64, logf func(string, ...any)) (handoff.TargetSpec, error) {
	return resolveTarget(spec, func(path string) (*storage.FileMap, error) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			logf("preallocating %s at %s for images (once, like a swap file)", humanize.IBytes(uint64(fileSize)), path)
			if err := storage.Preallocate(path, fileSize); err != nil {
				return nil, err
			}
		}
		return storage.MapFile(path)
	})
}

func resolveTarget(spec string, mapFile func(string) (*storage.FileMap, error)) (handoff.TargetSpec, error) {
	ts := handoff.TargetSpec{Spec: spec}
	ps, err := storage.ParseSpec(spec)
	if err != nil {
		return ts, err
	}
	if ps.Path != "" {
		return ts, storage.ErrDevicePath(spec)
	}
	if ps.Tag != "" {
		dev, err := storage.Resolve(spec)
		if err != nil {
			return ts, err
		}
		spec = dev
	}
	if fi, err := os.Stat(spec); err == nil && fi.Mode()&os.ModeDevice != 0 {
		dev, err := filepath.EvalSymlinks(spec)
		if err != nil {
			return ts, err
		}
		if m, ok := mountOf(dev); ok {
			return ts, fmt.Errorf("target %s is mounted on %s: a raw target must be a partition nothing uses (or give a file path)", dev, m)
		}
		if _, err := storage.Open(dev); err != nil {
			return ts, err // a device node others can write
		}
		ts.Device, ts.PartUUID = dev, storage.PartUUID(dev)
		return ts, nil
	}
	abs, err := filepath.Abs(spec)
	if err != nil {
		return ts, err
	}
	if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
		abs = filepath.Join(abs, storage.DefaultName)
	}
	m, err := findMount(filepath.Dir(abs))
	if err != nil {
		return ts, err
	}
	rel, _ := filepath.Rel(m.point, abs)
	ts.FSType, ts.Path = m.fstype, filepath.Join(m.root, rel)
	switch {
	case strings.HasPrefix(m.fstype, "nfs"):
		// The source names the mounted directory on the server (NFS shows
		// every mount's root as "/"), so the path is relative to it.
		ts.Source, ts.Path = m.source, filepath.Join("/", rel)
		if _, err := storage.Open(abs); err != nil {
			return ts, err // a directory others can write: refuse before the jump
		}
		ts.Opts = nfsOptions(m.superOpts)
		if ts.Net, err = netFor(ts.Opts); err != nil {
			return ts, err
		}
	default:
		// Creating or growing a file in a filesystem the sleeping kernel
		// has mounted would change it behind that kernel's back; the
		// blocks of a preallocated file can be overwritten in place.
		fm, err := mapFile(abs)
		if err != nil {
			return ts, err
		}
		ts.FSType, ts.Path, ts.Device, ts.File = "", "", fm.Device, fm
	}
	return ts, nil
}

type mount struct {
	point, root, fstype, source, superOpts, majMin string
}

// Mount is the mount holding a path, as mountinfo describes it.
type Mount struct {
	Point  string // where it is mounted
	Root   string // the directory of the filesystem mounted there (a btrfs subvolume's path)
	FSType string
	Source string // the device, e.g. /dev/sda2
}

// MountOf returns the mount holding path (longest mount point prefix).
func MountOf(path string) (Mount, error) {
	m, err := findMount(path)
	return Mount{Point: m.point, Root: m.root, FSType: m.fstype, Source: m.source}, err
}

// findMount returns the mount holding path (longest mount point prefix).
func findMount(path string) (mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return mount{}, err
	}
	defer f.Close()
	return parseMountinfo(f, path)
}

// parseMountinfo finds the mount holding path in a mountinfo table.
func parseMountinfo(r io.Reader, path string) (mount, error) {
	var best mount
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		a, b := strings.Fields(pre), strings.Fields(post)
		if !ok || len(a) < 5 || len(b) < 3 {
			continue
		}
		point := unescapeMount(a[4])
		if path != point && !strings.HasPrefix(path, strings.TrimSuffix(point, "/")+"/") {
			continue
		}
		if len(point) >= len(best.point) {
			best = mount{point: point, root: unescapeMount(a[3]), fstype: b[0], source: b[1], superOpts: b[2], majMin: a[2]}
		}
	}
	if err := sc.Err(); err != nil {
		return best, fmt.Errorf("reading mountinfo: %w", err)
	}
	if best.point == "" {
		return best, fmt.Errorf("no filesystem holds %s", path)
	}
	return best, nil
}

func mountOf(dev string) (string, bool) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) > 1 && fl[0] == dev {
			return unescapeMount(fl[1]), true
		}
	}
	return "", false
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

// nfsOptions keeps the mount options the helper's own mount needs.
func nfsOptions(super string) string {
	var keep []string
	for _, o := range strings.Split(super, ",") {
		k, _, _ := strings.Cut(o, "=")
		switch k {
		case "vers", "proto", "port", "addr", "clientaddr", "mountport", "mountproto", "mountaddr", "nolock", "sec":
			keep = append(keep, o)
		}
	}
	return strings.Join(append(keep, "nolock"), ",")
}

// netFor finds the interface holding the NFS client address (clientaddr=,
// or the address on the server's subnet) so the helper can bring it up.
func netFor(opts string) (*handoff.NetConfig, error) {
	var server, client net.IP
	for _, o := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "addr":
			server = net.ParseIP(v)
		case "clientaddr":
			client = net.ParseIP(v)
		}
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 || len(ifc.HardwareAddr) == 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || ipn.IP.To4() == nil {
				continue
			}
			if ipn.IP.Equal(client) || server != nil && ipn.Contains(server) {
				return &handoff.NetConfig{MAC: ifc.HardwareAddr.String(), Address: ipn.String()}, nil
			}
		}
	}
	return nil, fmt.Errorf("no local IPv4 interface reaches the NFS server %v: the helper needs an interface on the server's subnet", server)
}

// FSType is the type of the filesystem mounted at or above path.
func FSType(path string) (string, error) {
	m, err := findMount(path)
	return m.fstype, err
}
