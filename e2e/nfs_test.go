//go:build e2e

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "nfs-checkpoint", CPUs: 3, Timeout: 25 * time.Minute, Run: nfsCheckpoint})
}

// The two machines' addresses on their private QEMU socket network.
const (
	nfsServerAddr = "10.0.2.1"
	nfsClientAddr = "10.0.2.2"
	nfsClientMAC  = "52:54:00:12:34:57"
)

// nfsServerBody serves /export (a tmpfs) over NFSv4 only: no rpcbind, no
// statd, no lockd. Then it runs the commands typed on its console, so the
// test can look at the export once the client is done.
const nfsServerBody = `
while read -r m; do insmod "$m" || return 1; done </etc/kjtest-modules
dev=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set lo up; ip link set "$dev" up; ip addr add ` + nfsServerAddr + `/24 dev "$dev" || return 1
mkdir -p /export /proc/fs/nfsd /var/lib/nfs
# The size is a limit, not a reservation: kjump wants room for an incompressible image.
# mode=0700: kjump refuses a directory other users can write (tmpfs roots are 1777).
# kjtest.export=SIZE on the command line makes a small export (enospc-nfs-jumps-back).
size=$(sed -n 's/.*kjtest.export=\([0-9]*m\).*/\1/p' /proc/cmdline)
mount -t tmpfs -o size=${size:-1500m},mode=0700 export /export || return 1
mount -t nfsd nfsd /proc/fs/nfsd || return 1
# tmpfs has no UUID for a file handle: fsid= names it.
echo "/export 10.0.2.0/24(rw,sync,no_root_squash,no_subtree_check,insecure,fsid=1)" >/etc/exports
touch /var/lib/nfs/etab /var/lib/nfs/rmtab
exportfs -ra || return 1
rpc.mountd -N 3 -u || return 1
# The shortest lease and grace time: NFSv4 refuses OPENs during the grace period.
rpc.nfsd -N 3 -U -L 10 -G 10 4 || return 1
echo "NFSD versions $(cat /proc/fs/nfsd/versions)"
echo "NFSD ready on $dev"
while read -r cmd; do eval "$cmd"; done
`

// nfsClientBody is the machine under test. Both boots mount the export the
// way a system would (busybox mount -i: the kernel's own text options, no
// mount.nfs; NFSv4.0 because the test kernel has no CONFIG_NFS_V4_1); the
// second boot resumes from it.
const nfsClientBody = nfsClientMount + `
if grep -q kjtest=resume /proc/cmdline; then
  /bin/resume --from /mnt/nfs/ckpt   # by path: busybox sh prefers its own swsusp "resume" applet
  echo "NFS resume rc=$?"
  return 1
fi
` + workloadStart + `
echo "NFS before counter=$(cat /run/kjump-workload/counter)"
hibernate checkpoint --to /mnt/nfs/ckpt
echo "NFS checkpoint rc=$?"
echo "NFS cpus=$(cat /sys/devices/system/cpu/online)"
sleep 2
echo "NFS after counter=$(cat /run/kjump-workload/counter)"
kjump-workload verify || return 1
# The mount must still work after the jump(s), although the helper and the
# restore kernel used the server with NFS clients of their own. The wall
# clock names the file: the resumed machine's shell has the same pid and
# random state as at the checkpoint.
f=alive-$(date +%s)
echo "written after checkpoint rc=0" >/mnt/nfs/$f && sync || return 1
echo "NFS wrote $f, listing: $(ls /mnt/nfs | tr '\n' ' ')"
`

// nfsClientMount brings up the client's NIC and mounts the export on /mnt/nfs.
const nfsClientMount = `
dev=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set lo up; ip link set "$dev" up; ip addr add ` + nfsClientAddr + `/24 dev "$dev" || return 1
mkdir -p /mnt/nfs
for i in $(seq 30); do
  mount -i -t nfs4 -o vers=4.0,addr=` + nfsServerAddr + `,clientaddr=` + nfsClientAddr + ` ` + nfsServerAddr + `:/export /mnt/nfs && break
  sleep 2
done
grep " /mnt/nfs " /proc/self/mountinfo || return 1
`

// nfsClient is the kernel and NIC of the machine under test in
// nfsCheckpointWith.
type nfsClient struct {
	version string        // testKernel's version
	nic     string        // vm.Net.Model ("": virtio-net)
	mods    kernelModules // on a modular kernel: the NIC's driver and NFS
}

// nfsCheckpoint checkpoints a machine to an NFS export served by a second
// VM (Debian's stock kernel with nfsd), powers it off, and resumes it in a
// new QEMU process from the same export: the helper and the restore kernel
// each bring up the NIC and mount the export themselves.
func nfsCheckpoint(s *S) error { return nfsCheckpointWith(s, nfsClient{mods: virtioModules}) }

// nfsCheckpointWith is nfsCheckpoint with another client kernel or NIC.
func nfsCheckpointWith(s *S, c nfsClient) error {
	server, err := s.startNFSServer(0)
	if err != nil {
		return err
	}
	kernel, initrd, err := s.jumpingBootWith(c.version, c.mods, nfsClientBody)
	if err != nil {
		return err
	}
	port := server.port
	client := func(name, appendLine string) (*vm.Machine, error) {
		return s.Start(vm.Config{Name: name, Kernel: kernel, Initrd: initrd, SMP: 2, Append: appendLine,
			Net: &vm.Net{Port: port, MAC: nfsClientMAC, Model: c.nic}})
	}

	// The helper names the image by the server's path, not by its own
	// mount point or the original's.
	const onServer = nfsServerAddr + ":/export/ckpt"
	m, err := client("checkpoint", region)
	if err != nil {
		return err
	}
	before, err := m.Expect(`NFS before counter=(\d+)`, 5*time.Minute)
	if err != nil {
		return err
	}
	rep, err := m.Expect(`hibernate: checkpoint committed to (\S+):`, 10*time.Minute)
	if err != nil {
		return err
	}
	if rep[1] != onServer {
		return fmt.Errorf("checkpoint committed to %s, want %s", rep[1], onServer)
	}
	wrote1, err := nfsExpectAlive(m, atoi(before[1]))
	if err != nil {
		return err
	}
	if _, err := m.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	if err := m.Wait(time.Minute); err != nil {
		return err
	}

	// A new QEMU process, same NIC: resume from the export.
	r, err := client("resume", region+" kjtest=resume")
	if err != nil {
		return err
	}
	if _, err := r.Expect(`resume: image \w+ verified and invalidated`, 10*time.Minute); err != nil {
		return err
	}
	res, err := r.Expect(`hibernate: RESUMED from image \w+ on (\S+) `, 10*time.Minute)
	if err != nil {
		return err
	}
	if res[1] != onServer {
		return fmt.Errorf("resumed from %s, want %s", res[1], onServer)
	}
	wrote2, err := nfsExpectAlive(r, atoi(before[1]))
	if err != nil {
		return err
	}
	if wrote1 == wrote2 {
		return fmt.Errorf("the first and the resumed boot both wrote %s: the clock did not move?", wrote1)
	}
	if _, err := r.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	if err := r.Wait(time.Minute); err != nil {
		return err
	}

	// The image and what both boots wrote after the checkpoint are files
	// on the server, not in some client's cache.
	cmd := fmt.Sprintf(`echo "SERVER has $(ls -l /export/ckpt) $(cat /export/%s /export/%s | grep -c written)"`, wrote1, wrote2)
	if err := server.m.SendConsole(cmd + "\n"); err != nil {
		return err
	}
	ls, err := server.m.Expect(`SERVER has -\S+\s+\d+\s+\S+\s+\S+\s+(\d+) .*/export/ckpt (\d+)`, time.Minute)
	if err != nil {
		return err
	}
	if n := atoi(ls[1]); n < 64<<20 {
		return fmt.Errorf("image on the server is only %d bytes", n)
	}
	if ls[2] != "2" {
		return fmt.Errorf("the server holds %s of the 2 files the clients wrote after the checkpoint (%s, %s)", ls[2], wrote1, wrote2)
	}
	server.m.SendConsole("poweroff -f\n")
	return server.m.Wait(time.Minute)
}

// nfsExpectAlive checks what follows the checkpoint's return, in the first
// boot and again in the resumed one: both CPUs, the workload (memory
// intact, counter moving on from its value before the checkpoint) and the
// NFS mount. It returns the file the machine wrote to the export.
func nfsExpectAlive(m *vm.Machine, before int) (string, error) {
	if _, err := m.ExpectString("NFS checkpoint rc=0", time.Minute); err != nil {
		return "", err
	}
	cpus, err := m.Expect(`NFS cpus=(\S+)`, time.Minute)
	if err != nil {
		return "", err
	}
	if cpus[1] != "0-1" {
		return "", fmt.Errorf("CPUs online after the jump back: %s, want 0-1", cpus[1])
	}
	after, err := m.Expect(`NFS after counter=(\d+)`, time.Minute)
	if err != nil {
		return "", err
	}
	if atoi(after[1]) <= before {
		return "", fmt.Errorf("workload counter did not advance: %d before the checkpoint, %s after", before, after[1])
	}
	if _, err := m.ExpectString("WORKLOAD VERIFY ok", time.Minute); err != nil {
		return "", err
	}
	w, err := m.Expect(`NFS wrote (alive-\d+), listing: .*ckpt`, 3*time.Minute)
	if err != nil {
		return "", err
	}
	return w[1], nil
}

type nfsServer struct {
	m    *vm.Machine
	port int
}

// startNFSServer boots the NFS server on Debian's stock kernel (our test
// kernel has no nfsd) and waits until it serves.
// exportMiB sizes the export (0: 1500 MiB, room for an incompressible image).
func (s *S) startNFSServer(exportMiB int) (*nfsServer, error) {
	kernel, err := vm.StockKernel()
	if err != nil {
		return nil, fmt.Errorf("stock kernel: %w", err)
	}
	files, err := nfsServerFiles(kernel)
	if err != nil {
		return nil, err
	}
	initrd, err := s.Initramfs(nfsServerBody, files)
	if err != nil {
		return nil, err
	}
	port, err := vm.FreePort()
	if err != nil {
		return nil, err
	}
	appendLine := ""
	if exportMiB > 0 {
		appendLine = fmt.Sprintf("kjtest.export=%dm", exportMiB)
	}
	m, err := s.Start(vm.Config{Name: "nfs-server", Kernel: kernel, Initrd: initrd, Append: appendLine, Net: &vm.Net{Listen: true, Port: port}, Monitor: true})
	if err != nil {
		return nil, err
	}
	if _, err := m.ExpectString("NFSD ready on", 3*time.Minute); err != nil {
		return nil, err
	}
	return &nfsServer{m: m, port: port}, nil
}

// nfsServerFiles returns the server's kernel modules (the ones nfsd and
// virtio-net need, listed in load order in /etc/kjtest-modules) and the
// host's nfs-kernel-server programs with their shared libraries.
func nfsServerFiles(kernel string) (map[string]vm.File, error) {
	files, err := stockModuleFiles(kernel, "virtio_pci", "virtio_net", "nfsd")
	if err != nil {
		return nil, err
	}
	for _, f := range []string{"/etc/netconfig", "/etc/services", "/etc/protocols"} {
		files[f[1:]] = vm.File{Host: f, Mode: 0o644}
	}
	for _, prog := range []string{"/usr/sbin/rpc.nfsd", "/usr/sbin/rpc.mountd", "/usr/sbin/exportfs"} {
		if _, err := os.Stat(prog); err != nil {
			return nil, fmt.Errorf("%s: %w (apt-get install nfs-kernel-server)", prog, err)
		}
		files[prog[1:]] = vm.File{Host: prog}
		libs, err := sharedLibs(prog)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			files[l[1:]] = vm.File{Host: l, Mode: 0o755}
		}
	}
	return files, nil
}

// stockModuleFiles returns the stock kernel's modules for names, with
// their dependencies, and /etc/kjtest-modules listing them in load order.
func stockModuleFiles(kernel string, names ...string) (map[string]vm.File, error) {
	mods, err := filepath.Glob(filepath.Join(filepath.Dir(kernel), "lib", "modules", "*", "modules.dep"))
	if err != nil || len(mods) != 1 {
		return nil, fmt.Errorf("no modules.dep next to the stock kernel %s (kernel/stock.sh keeps them; KJUMP_STOCK_KERNEL needs them too)", kernel)
	}
	modDir := filepath.Dir(mods[0])
	order, err := moduleOrder(mods[0], names...)
	if err != nil {
		return nil, err
	}
	files := map[string]vm.File{}
	var list strings.Builder
	for _, rel := range order {
		img := filepath.Join("lib/modules", filepath.Base(modDir), rel)
		files[img] = vm.File{Host: filepath.Join(modDir, rel), Mode: 0o644}
		fmt.Fprintf(&list, "/%s\n", img)
	}
	files["etc/kjtest-modules"] = vm.File{Data: []byte(list.String()), Mode: 0o644}
	return files, nil
}

// moduleOrder returns the modules (paths relative to the modules
// directory) to insmod, dependencies first, for the named modules.
func moduleOrder(depFile string, names ...string) ([]string, error) {
	f, err := os.Open(depFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	deps := map[string][]string{}
	byName := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
		base := strings.TrimSuffix(filepath.Base(mod), filepath.Ext(mod))
		byName[moduleName(strings.TrimSuffix(base, ".ko"))] = mod
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var order []string
	seen := map[string]bool{}
	add := func(m string) {
		if !seen[m] {
			seen[m] = true
			order = append(order, m)
		}
	}
	for _, n := range names {
		mod, ok := byName[moduleName(n)]
		if !ok {
			return nil, fmt.Errorf("module %s is not in %s", n, depFile)
		}
		// depmod lists a module's dependencies so that the last loads first.
		d := deps[mod]
		for i := len(d) - 1; i >= 0; i-- {
			add(d[i])
		}
		add(mod)
	}
	return order, nil
}

// moduleName is a module's name as the kernel has it: a file
// virtio-gpu.ko is the module virtio_gpu.
func moduleName(s string) string { return strings.ReplaceAll(s, "-", "_") }

var lddLine = regexp.MustCompile(`(?:=>\s*)?(/\S+)\s+\(0x`)

// sharedLibs lists the libraries prog loads, with the dynamic loader, at
// the paths the loader will look for them.
func sharedLibs(prog string) ([]string, error) {
	out, err := exec.Command("ldd", prog).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", prog, err)
	}
	var libs []string
	for _, m := range lddLine.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, m[1])
	}
	if len(libs) == 0 {
		return nil, fmt.Errorf("ldd %s lists no libraries", prog)
	}
	return libs, nil
}
