//go:build e2e

package e2e

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "hibernate-resume", CPUs: 2, Timeout: 20 * time.Minute, Run: func(s *S) error { return hibernateResume(s, "") }})
	register(Scenario{Name: "hibernate-resume-5g", CPUs: 2, Timeout: 30 * time.Minute, Run: hibernateResume5G})
	register(Scenario{Name: "hibernate-resume-32g", CPUs: 2, Timeout: 30 * time.Minute, Run: hibernateResume32G})
	register(Scenario{Name: "hibernate-resume-linux7.3", Timeout: 40 * time.Minute, Run: func(s *S) error { return hibernateResume(s, "7.3") }})
	register(Scenario{Name: "slow-target-gets-zstd", CPUs: 2, Timeout: 25 * time.Minute, Run: slowTargetGetsZstd})
	register(Scenario{Name: "corrupt-image-refused", CPUs: 2, Timeout: 20 * time.Minute, Run: corruptImageRefused})
	register(Scenario{Name: "undecodable-chunk-reboots", CPUs: 2, Timeout: 25 * time.Minute, Run: undecodableChunkReboots})
	register(Scenario{Name: "double-resume-refused", CPUs: 2, Timeout: 25 * time.Minute, Run: doubleResumeRefused})
}

// hibernateScript is the machine under test's /init body. It boots one
// initramfs; the kernel command line says whether this boot hibernates or
// resumes, as a real initramfs hook would run `resume` early on every boot.
// before runs just before `hibernate now`, after just after it returned
// (fault scenarios: the helper jumped back). target is the image's target
// as hibernate and resume are given it, data the kernel name of the data
// disk (a raw disk and an ext4 disk: /dev/vda and vdb).
func hibernateScript(target, data, before, after string) string {
	return strings.NewReplacer("$TARGET", target, "$DATA", data).Replace(`
if grep -q kjtest=resume /proc/cmdline; then
  if grep -q kjtest=stock /proc/cmdline; then
    # Debian's stock kernel: its virtio drivers are modules.
    while read -r m; do insmod "$m"; done </etc/kjtest-modules
    i=0; while [ ! -b /dev/vda ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
    echo "HIB resuming on $(uname -r)"
  fi
  /bin/resume --from $TARGET   # by path: busybox sh prefers its own swsusp "resume" applet
  echo "HIB resume rc=$?"
  echo "HIB booted normally"
  return 0
fi
mkdir -p /mnt/data && mount -o ro /dev/$DATA /mnt/data
sha=$(sha256sum /mnt/data/cached.bin | cut -d' ' -f1)
echo "HIB file cached sha=$sha reads=$(awk '{print $1}' /sys/block/$DATA/stat)"
`) + workloadStart + before + `
echo "HIB before counter=$(cat /run/kjump-workload/counter) date=$(date +%s) uptime=$(cut -d' ' -f1 /proc/uptime)"
hibernate now --to ` + target + `
echo "HIB now rc=$?"
` + after + strings.ReplaceAll(`
echo "HIB cpus=$(cat /sys/devices/system/cpu/online)"
echo "HIB after counter=$(cat /run/kjump-workload/counter) date=$(date +%s) uptime=$(cut -d' ' -f1 /proc/uptime)"
r1=$(awk '{print $1}' /sys/block/$DATA/stat)
sha2=$(sha256sum /mnt/data/cached.bin | cut -d' ' -f1)
r2=$(awk '{print $1}' /sys/block/$DATA/stat)
echo "HIB reread sha=$sha2 reads-before=$r1 reads-after=$r2"
kjump-workload verify
`, "$DATA", data)
}

// hibernatedDisks boots a machine, lets it hibernate to a raw disk and
// power off. It returns the machine's files: the image disk and a data
// disk with a file the machine read into its page cache.
type hibernated struct {
	kernel, initrd, imageDisk, dataDisk string
	memMiB                              int // guest RAM; 0: vm's default
	sha                                 string
	console, consoleText                string // the hibernating boot's log
	resumeAppend                        string // extra command line of resume boots
	marker                              []byte // random bytes the machine holds in RAM (a file in its rootfs)
	display                             string // vm.Config.Display of every boot (with the monitor)
	// The test's side of the scripts around `hibernate now` (withSteps).
	beforeSteps, afterSteps func(*vm.Machine) error

	// bus puts disks behind other controllers than virtio (vm.Config.Bus);
	// target is what hibernate and resume were given, device the
	// original's name of it (the helper and restore kernels report it so).
	bus            map[string]string
	target, device string
	imageOffset    int64    // where the image partition starts on imageDisk
	extraDisks     []string // after imageDisk and dataDisk (a laptop's internal disk)
}

// hibOption changes how hibernateOnce sets up the machine.
type hibOption func(*hibSetup)

type hibSetup struct {
	hibArgs      string // extra arguments of 'hibernate now'
	resumeAppend string
	files        map[string]vm.File
	// Fault scenarios:
	imageMiB      int    // size of the image disk (vda); default 2048
	memMiB        int    // guest RAM in MiB; default vm's (1024)
	writeEIO      int64  // > 0: writes touching this byte offset of vda fail with EIO
	writeBPS      int64  // > 0: vda writes this many bytes per second at most
	smallMiB      int    // > 0: a third disk (vdc) of this size
	unpluggable   bool   // disks hot-pluggable, monitor on (vm.Machine.UnplugDisk)
	before, after string // see hibernateScript
	// Device scenarios:
	display                 string         // vm.Config.Display, monitor on (vm.Machine.Screendump)
	modules                 *kernelModules // on a modular kernel; default virtioModules
	beforeSteps, afterSteps func(*vm.Machine) error
	// class puts the image disk behind another controller than virtio
	// (devices_storage_test.go); nil: virtio vda.
	class *diskClass
}

// withImageDisk sizes the image disk (vda) in MiB.
func withImageDisk(mib int) hibOption { return func(o *hibSetup) { o.imageMiB = mib } }

// withMemMiB gives the machine mib MiB of RAM.
func withMemMiB(mib int) hibOption { return func(o *hibSetup) { o.memMiB = mib } }

// withWriteEIO makes writes touching byte offset off of vda fail with EIO.
func withWriteEIO(off int64) hibOption { return func(o *hibSetup) { o.writeEIO = off } }

// withSlowImageDisk caps vda's writes at bps bytes per second.
func withSlowImageDisk(bps int64) hibOption { return func(o *hibSetup) { o.writeBPS = bps } }

// withSmallDisk adds a third disk (vdc) of mib MiB.
func withSmallDisk(mib int) hibOption { return func(o *hibSetup) { o.smallMiB = mib } }

// withFiles adds files to the machine's initramfs.
func withFiles(files map[string]vm.File) hibOption {
	return func(o *hibSetup) {
		if o.files == nil {
			o.files = map[string]vm.File{}
		}
		for k, v := range files {
			o.files[k] = v
		}
	}
}

// withScript runs shell before and after `hibernate now` (hibernateScript),
// after what earlier withScript options added.
func withScript(before, after string) hibOption {
	return func(o *hibSetup) { o.before, o.after = o.before+before, o.after+after }
}

// withSteps runs the test's side of scripts that wait for it on the
// console: before on the hibernating machine, ahead of its "HIB before"
// line; after on the resumed one, right after "HIB now rc=0".
func withSteps(before, after func(*vm.Machine) error) hibOption {
	return func(o *hibSetup) { o.beforeSteps, o.afterSteps = before, after }
}

// withDisplay gives every boot a graphics device (vm.Config.Display) and
// the modules its devices need on a modular kernel.
func withDisplay(display string, mods kernelModules) hibOption {
	return func(o *hibSetup) { o.display, o.modules = display, &mods }
}

// hibernateOnce boots a machine and lets it hibernate to its raw disk and
// power off.
func hibernateOnce(s *S, version string, opts ...hibOption) (*hibernated, error) {
	h, m, err := startHibernating(s, version, opts...)
	if err != nil {
		return nil, err
	}
	if h.beforeSteps != nil {
		if err := h.beforeSteps(m); err != nil {
			return nil, err
		}
	}
	if _, err := m.ExpectString("HIB before counter=", 5*time.Minute); err != nil {
		return nil, err
	}
	if _, err := m.ExpectString("kjump-helper: image committed:", 5*time.Minute); err != nil {
		return nil, err
	}
	// The helper read the original's buddy allocator and left its free
	// pages out; resuming then proves none of them was in use.
	if free, ok := match(`kjump-helper: free pages: (\S+ \S+) of the original's RAM is free`, m.Console()); !ok || strings.HasPrefix(free, "0 ") {
		return nil, fmt.Errorf("the helper did not exclude the original's free pages (free pages line: %q)", free)
	}
	if _, err := m.ExpectString("kjump-helper: image committed; powering off", time.Minute); err != nil {
		return nil, err
	}
	if err := m.Wait(2 * time.Minute); err != nil {
		return nil, fmt.Errorf("machine did not power off after hibernating: %w", err)
	}
	if strings.Contains(m.Console(), "HIB now rc=") {
		return nil, fmt.Errorf("hibernate now returned instead of powering off")
	}
	h.console, h.consoleText = m.ConsolePath(), m.Console()
	return h, nil
}

// startHibernating boots the machine under test and returns once it has
// read its data file; `hibernate now` follows.
func startHibernating(s *S, version string, opts ...hibOption) (*hibernated, *vm.Machine, error) {
	var o hibSetup
	for _, f := range opts {
		f(&o)
	}
	marker := make([]byte, 256<<10)
	rand.Read(marker)
	files := map[string]vm.File{"root/marker.bin": {Data: marker, Mode: 0o600}}
	for k, v := range o.files {
		files[k] = v
	}
	h := &hibernated{imageDisk: filepath.Join(s.Dir, "image.raw"),
		dataDisk: filepath.Join(s.Dir, "data.ext4"), resumeAppend: o.resumeAppend, marker: marker, memMiB: o.memMiB,
		target: "/dev/vda", device: "/dev/vda", display: o.display, beforeSteps: o.beforeSteps, afterSteps: o.afterSteps}
	data, mods := "vdb", virtioModules
	if c := o.class; c != nil {
		h.target, h.device, data, mods = "PARTLABEL="+c.label, c.node, "vda", c.modules
		if c.byPath {
			h.target = c.node
		}
		h.bus, h.imageOffset = map[string]string{h.imageDisk: c.bus}, c.imageOffset()
		if c.internal != "" {
			internal := filepath.Join(s.Dir, "internal.raw")
			if err := vm.CreateDisk(internal, 256); err != nil {
				return nil, nil, err
			}
			h.extraDisks, h.bus[internal] = []string{internal}, c.internal
		}
	}
	body := hibernateScript(h.target, data, o.before, o.after)
	if o.hibArgs != "" {
		body = strings.Replace(body, "hibernate now --to "+h.target+"\n", "hibernate now --to "+h.target+" "+o.hibArgs+"\n", 1)
	}
	if o.class != nil {
		body, files = o.class.boot(body, files)
	}
	var err error
	if o.modules != nil {
		mods = *o.modules
	}
	if h.kernel, h.initrd, err = s.jumpingBootWith(version, mods, body, files); err != nil {
		return nil, nil, err
	}
	if o.imageMiB == 0 {
		o.imageMiB = 2048
	}
	if o.class != nil {
		err = o.class.createDisk(h.imageDisk, o.imageMiB)
	} else {
		err = vm.CreateDisk(h.imageDisk, o.imageMiB)
	}
	if err != nil {
		return nil, nil, err
	}
	dataDir := filepath.Join(s.Dir, "data")
	os.MkdirAll(dataDir, 0o755)
	blob := make([]byte, 32<<20)
	for i := range blob {
		blob[i] = byte(i*7 + i>>12)
	}
	if err := os.WriteFile(filepath.Join(dataDir, "cached.bin"), blob, 0o644); err != nil {
		return nil, nil, err
	}
	if err := vm.MakeExt4(h.dataDisk, 64, "kjdata", dataDir); err != nil {
		return nil, nil, err
	}
	cfg := vm.Config{Name: "hibernate", Kernel: h.kernel, Initrd: h.initrd, SMP: 2, MemMiB: o.memMiB, Append: region,
		Disks: append([]string{h.imageDisk, h.dataDisk}, h.extraDisks...), Bus: h.bus}
	if o.smallMiB > 0 {
		small := filepath.Join(s.Dir, "small.raw")
		if err := vm.CreateDisk(small, o.smallMiB); err != nil {
			return nil, nil, err
		}
		cfg.Disks = append(cfg.Disks, small)
	}
	if o.writeEIO > 0 {
		cfg.WriteEIO = map[string]int64{h.imageDisk: o.writeEIO}
	}
	if o.writeBPS > 0 {
		cfg.WriteBPS = map[string]int64{h.imageDisk: o.writeBPS}
	}
	cfg.Unpluggable, cfg.Monitor = o.unpluggable, o.unpluggable || o.display != ""
	cfg.Display = o.display
	m, err := s.Start(cfg)
	if err != nil {
		return nil, nil, err
	}
	sm, err := m.Expect(`HIB file cached sha=(\w+)`, 5*time.Minute)
	if err != nil {
		return nil, nil, err
	}
	h.sha = sm[1]
	return h, m, nil
}

// bootResume boots the hibernated machine's disks in a new QEMU process.
func (h *hibernated) bootResume(s *S, name string) (*vm.Machine, error) {
	return h.bootResumeWith(s, name, h.resumeAppend)
}

// bootResumeWith boots like bootResume with another extra command line.
func (h *hibernated) bootResumeWith(s *S, name, extra string) (*vm.Machine, error) {
	return h.bootResumeOn(s, name, h.kernel, extra)
}

// bootResumeOn boots like bootResumeWith, another kernel than the one that
// hibernated.
func (h *hibernated) bootResumeOn(s *S, name, kernel, extra string) (*vm.Machine, error) {
	return s.Start(vm.Config{Name: name, Kernel: kernel, Initrd: h.initrd, SMP: 2, MemMiB: h.memMiB, Append: region + " kjtest=resume " + extra,
		Disks: append([]string{h.imageDisk, h.dataDisk}, h.extraDisks...), Bus: h.bus,
		Display: h.display, Monitor: h.display != ""})
}

// resumeWhole boots the machine to resume, and checks that resume verified
// the image and the original woke up whole.
func (h *hibernated) resumeWhole(s *S, name string) (*vm.Machine, error) {
	m, err := h.bootResume(s, name)
	if err != nil {
		return nil, err
	}
	if _, err := m.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return nil, err
	}
	return m, h.expectResumed(m)
}

// expectResumed checks the original woke up whole: workload memory and
// counter, CPUs, clocks, and the page cache (no disk reads for a file read
// before hibernation).
func (h *hibernated) expectResumed(m *vm.Machine) error {
	// The restore kernel names a raw target as the original does: "dev
	// (spec)" when a tag named it.
	on := regexp.QuoteMeta(h.device)
	if h.target != h.device {
		on += ` \(` + regexp.QuoteMeta(h.target) + `\)`
	}
	if _, err := m.Expect(`hibernate: RESUMED from image \w+ on `+on+` `, 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("HIB now rc=0", time.Minute); err != nil {
		return err
	}
	if h.afterSteps != nil {
		if err := h.afterSteps(m); err != nil {
			return err
		}
	}
	if cpus, err := m.Expect(`HIB cpus=(\S+)`, time.Minute); err != nil {
		return err
	} else if cpus[1] != "0-1" {
		return fmt.Errorf("CPUs online after resume: %s, want 0-1", cpus[1])
	}
	con := m.Console()
	b, a := `HIB before counter=(\d+) date=(\d+) uptime=(\d+)`, `HIB after counter=(\d+) date=(\d+) uptime=(\d+)`
	after, err := m.Expect(a, time.Minute)
	if err != nil {
		return err
	}
	cb, _ := intMatch(b, con, 1)
	db, _ := intMatch(b, con, 2)
	ub, _ := intMatch(b, con, 3)
	if ca := atoi(after[1]); ca < cb {
		return fmt.Errorf("workload counter went back: %d before hibernating, %d after resume", cb, ca)
	}
	if da := atoi(after[2]); da < db {
		return fmt.Errorf("wall clock went back across hibernation: %d -> %d", db, da)
	}
	if ua := atoi(after[3]); ua < ub {
		return fmt.Errorf("uptime went back: %d -> %d (the original did not continue)", ub, ua)
	}
	rr, err := m.Expect(`HIB reread sha=(\w+) reads-before=(\d+) reads-after=(\d+)`, time.Minute)
	if err != nil {
		return err
	}
	if rr[1] != h.sha {
		return fmt.Errorf("file content changed across hibernation: %s, want %s", rr[1], h.sha)
	}
	if rr[2] != rr[3] {
		return fmt.Errorf("re-reading a cached 32 MiB file after resume read the disk (%s -> %s reads): page cache was lost", rr[2], rr[3])
	}
	if _, err := m.Expect(`WORKLOAD VERIFY ok`, time.Minute); err != nil {
		return err
	}
	if _, err := m.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	return m.Wait(time.Minute)
}

// freedRandom leaves 128 MiB of random data in free pages: written to a
// rootfs file and deleted, as memory a finished program left behind.
const freedRandom = `
dd if=/dev/urandom of=/freed.bin bs=1M count=128 2>/dev/null
rm /freed.bin
echo "HIB freed 128 MiB of random data"
`

// highMemory fills a tmpfs with random data; with 5 GiB of RAM the kernel
// takes those pages from above 4 GiB (ZONE_NORMAL) first.
const (
	highMemoryFill = `
mkdir -p /big && mount -t tmpfs -o size=1g big /big
dd if=/dev/urandom of=/big/r.bin bs=1M count=384 2>/dev/null
echo "HIB big sha=$(sha256sum /big/r.bin | cut -d' ' -f1)"
`
	highMemoryCheck = `
echo "HIB big after sha=$(sha256sum /big/r.bin | cut -d' ' -f1)"
`
)

// hibernateResume5G: a machine with 5 GiB of RAM (QEMU maps 3 GiB below
// 4 GiB and 2 GiB above) and 384 MiB of random data in a tmpfs hibernates
// and resumes: RAM ranges and pages above 4 GiB, as on any real machine.
func hibernateResume5G(s *S) error { return hibernateResumeBig(s, 5) }

// hibernateResume32G: a machine whose RAM would need 64 MiB of page tables
// to map at once (/proc/vmcore and /dev/mem fill them in at mmap time),
// half of what the helper kernel has; the helper and the restore kernel map
// it in bounded windows.
func hibernateResume32G(s *S) error { return hibernateResumeBig(s, 32) }

func hibernateResumeBig(s *S, gib int) error {
	h, err := hibernateOnce(s, "", withMemMiB(gib<<10), withImageDisk((gib+1)<<10), withScript(highMemoryFill, highMemoryCheck))
	if err != nil {
		return err
	}
	// The RAM less the reserved region and the holes: more than the 3 GiB
	// below 4 GiB only if the ranges above were saved.
	ram, _ := match(`kjump-helper: image committed: ([\d.]+) GiB of RAM`, h.consoleText)
	if saved, _ := strconv.ParseFloat(ram, 64); saved < float64(gib)-0.5 {
		return fmt.Errorf("the helper saved %q GiB of RAM, want about %d (ranges above 4 GiB)", ram, gib)
	}
	before, ok := match(`HIB big sha=(\w+)`, h.consoleText)
	if !ok {
		return fmt.Errorf("no tmpfs checksum before hibernating")
	}
	m, err := h.resumeWhole(s, "resume")
	if err != nil {
		return err
	}
	// Printed right after the jump back, before what expectResumed waits for.
	if after, ok := match(`HIB big after sha=(\w+)`, m.Console()); !ok || after != before {
		return fmt.Errorf("tmpfs data changed across hibernation: %s before, %q after", before, after)
	}
	return m.Wait(time.Minute)
}

// slowTargetGetsZstd: to an image disk that writes 16 MiB/s (QEMU
// throttling, a USB 2 stick's speed) the helper's compression workers wait
// on the disk, so the default codec (auto) turns to zstd; the mixed
// image resumes. On the unthrottled disks of the other scenarios it writes
// mostly S2.
func slowTargetGetsZstd(s *S) error {
	h, err := hibernateOnce(s, "", withSlowImageDisk(16<<20))
	if err != nil {
		return err
	}
	mix, ok := match(`kjump-helper: image committed: .*zero pages, ([^),]*chunks)`, h.consoleText)
	if !ok {
		return fmt.Errorf("no codec mix in the helper's log")
	}
	var z, s2 int
	if n, _ := fmt.Sscanf(mix, "%d zstd + %d s2 chunks", &z, &s2); n != 2 {
		if _, err := fmt.Sscanf(mix, "%d zstd chunks", &z); err != nil {
			return fmt.Errorf("the helper wrote %q to a slow disk, want mostly zstd", mix)
		}
	}
	// Most chunks, not a fixed share: how long the disk keeps the workers
	// waiting depends on how fast the host runs the emulated CPUs (172
	// zstd + 51 s2 with three other scenarios running, 132 + 89 at load 6,
	// nearly all zstd on a quiet host); a broken auto writes almost no zstd.
	if z <= s2 {
		return fmt.Errorf("the helper wrote %s to a disk taking 16 MiB/s, want most chunks zstd", mix)
	}
	m, err := h.resumeWhole(s, "resume")
	if err != nil {
		return err
	}
	return m.Wait(time.Minute)
}

func hibernateResume(s *S, version string, opts ...hibOption) error {
	return hibernateResumeWith(s, version, nil, opts...)
}

// hibernateResumeWith is hibernateResume with options (another disk
// class; a withScript adds to the default, freedRandom before
// hibernating); check, if not nil, runs once the resumed machine powered
// off, before the free-pages check.
func hibernateResumeWith(s *S, version string, check func(*hibernated, *vm.Machine) error, opts ...hibOption) error {
	h, err := hibernateOnce(s, version, append([]hibOption{withScript(freedRandom, "")}, opts...)...)
	if err != nil {
		return err
	}
	// Saved, the freed random pages alone would take 128 MiB (the image
	// is about 300 MiB without them): leaving free pages out must keep them
	// out of the image.
	if mib, ok := match(`kjump-helper: image committed: \S+ \S+ of RAM in ([\d.]+) MiB`, h.consoleText); !ok {
		return fmt.Errorf("no image size in the helper's log")
	} else if v, _ := strconv.ParseFloat(mib, 64); v > 380 {
		return fmt.Errorf("image is %s MiB: the 128 MiB of freed random data were saved, not left out as free pages", mib)
	}
	// The control for encrypted-hibernate-resume: a plain image holds the
	// machine's RAM in the clear, so the marker search can find it.
	if found, err := markerWindows(h.imageDisk, h.imageOffset, h.marker); err != nil {
		return err
	} else if found == 0 {
		return fmt.Errorf("the RAM marker is not in the unencrypted image: the plaintext check of encrypted-hibernate-resume would prove nothing")
	}
	m, err := h.resumeWhole(s, "resume")
	if err != nil {
		return err
	}
	if check != nil {
		if err := check(h, m); err != nil {
			return err
		}
	}
	// The test kernels do not zero free pages (/proc/config.gz, or for
	// the distribution kernel /boot/config-RELEASE: "#
	// CONFIG_INIT_ON_FREE_DEFAULT_ON is not set"), so the restore kernel
	// leaves them as it finds them, and the resumed system checked out
	// whole all the same (resumeWhole).
	if left, ok := match(`kjump-helper: restored in .*; (\S+ \S+) of free pages left as they were`, m.Console()); !ok || strings.HasPrefix(left, "0 ") {
		return fmt.Errorf("the restore kernel zeroed the free pages (%q left as they were); init_on_free is off on the test kernels", left)
	}
	if os.Getenv("KJUMP_DEMO") != "" {
		printDemo(h, m)
	}
	return nil
}

// printDemo tells a person what just happened, from both machines' consoles.
func printDemo(h *hibernated, resumed *vm.Machine) {
	show := func(console string, patterns ...string) {
		for _, line := range strings.Split(console, "\n") {
			for _, p := range patterns {
				if strings.Contains(line, p) {
					fmt.Println("   ", strings.TrimSpace(line))
					break
				}
			}
		}
	}
	fmt.Println("\n=== kjump demo: hibernate a 1 GiB, 2-CPU VM to a raw disk, power off, resume in a new VM ===")
	fmt.Println("--- first boot (console:", h.console+")")
	show(h.consoleText, "WORKLOAD ready", "HIB before", "hibernate: helper loaded", "kjump-helper: up", "kjump-helper: free pages", "kjump-helper: writing", "image committed", "reboot: Power down")
	fmt.Println("--- second boot, a new QEMU process (console:", resumed.ConsolePath()+")")
	show(resumed.Console(), "resume: verifying", "verified and invalidated", "kjump-helper: restoring", "jumping into the restored",
		"hibernate: RESUMED", "HIB cpus", "HIB after", "HIB reread", "WORKLOAD VERIFY")
	fmt.Println("=== the workload's 256 MiB buffer and counter survived, both CPUs are back, and a file read before")
	fmt.Println("    hibernating was re-read from the page cache with no disk reads (reads-before == reads-after) ===")
}

// corruptImageRefused flips one byte of the image's index: resume, which
// authenticates header, index and commit record before the point of no
// return, refuses it with a clear message and the machine boots normally
// with no restore kernel. Then, with the index intact again, one byte
// inside the chunk data: resume reads the chunks no more (issue 19: the
// image is read once), so the restore kernel finds it, refuses the chunk
// before writing its pages and reboots, never jumping into the original.
func corruptImageRefused(s *S) error {
	h, err := hibernateOnce(s, "")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(h.imageDisk, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	n, err := rawImageLen(f)
	if err != nil {
		return err
	}
	flip := func(off int64) error {
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			return err
		}
		b[0] ^= 0x40
		if _, err := f.WriteAt(b, off); err != nil {
			return err
		}
		return f.Sync()
	}
	// The last byte before the commit area: the index's CRC, or padding
	// that must be zero.
	idx := rawImageOffset + n - 8192 - 1
	if err := flip(idx); err != nil {
		return err
	}
	m, err := h.bootResume(s, "resume-corrupt-index")
	if err != nil {
		return err
	}
	refusal, err := normalBootRefusesCorrupt(m)
	if err != nil {
		return err
	}
	if strings.Contains(m.Console(), "restore kernel") {
		return fmt.Errorf("a restore kernel was started for an image with a corrupt index")
	}
	if err := m.Wait(time.Minute); err != nil {
		return err
	}
	fmt.Printf("  %s: %s\n", s.Name, refusal)
	if err := flip(idx); err != nil {
		return err
	}
	const off = 24 << 20 // well inside the chunks of a >256 MiB image
	if err := flip(off); err != nil {
		return err
	}
	m, err = h.bootResume(s, "resume-corrupt-chunk")
	if err != nil {
		return err
	}
	if _, err := m.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	failed, err := m.Expect(`RESTORE FAILED: (image is corrupt: chunk \d+ at offset \d+: .*)`, 10*time.Minute)
	if err != nil {
		return err
	}
	e, err := m.WaitExit(time.Minute)
	if err != nil {
		return err
	}
	if e.PowerDown || e.Panic != "" || e.Killed || strings.Contains(m.Console(), "jumping into the restored kernel") {
		return fmt.Errorf("the restore kernel should refuse the chunk and reboot, got %+v", e)
	}
	fmt.Printf("  %s: restore kernel: %s\n", s.Name, failed[1])
	return nil
}

// undecodableChunkReboots: a chunk whose payload was changed with its
// record sum kept (a plain image has no authentication tags) passes
// resume's check of the stored bytes, so resume invalidates the image and
// starts the restore kernel. That kernel decodes each chunk and checks its
// pages' sum before writing them: it refuses the chunk, reboots, and the
// next boot is a normal one that names the interrupted restore.
func undecodableChunkReboots(s *S) error {
	h, err := hibernateOnce(s, "")
	if err != nil {
		return err
	}
	chunk, err := forgeChunkKeepingSum(h.imageDisk, true)
	if err != nil {
		return err
	}
	m, err := h.bootResume(s, "resume-undecodable")
	if err != nil {
		return err
	}
	if _, err := m.Expect(`resume: image \w+ verified and invalidated`, 5*time.Minute); err != nil {
		return err
	}
	if _, err := m.Expect(fmt.Sprintf(`RESTORE FAILED: image is corrupt: chunk %d at offset \d+: (decompressing|page data checksum mismatch)`, chunk), 5*time.Minute); err != nil {
		return err
	}
	e, err := m.WaitExit(time.Minute)
	if err != nil {
		return err
	}
	if e.PowerDown || e.Panic != "" || e.Killed {
		return fmt.Errorf("the restore kernel should reboot after refusing the chunk, got %+v", e)
	}
	m2, err := h.bootResume(s, "resume-after-refusal")
	if err != nil {
		return err
	}
	// The restore did not finish: the image stays for a retry with
	// kjump.force=1, which a normal boot does not do.
	if _, err := m2.Expect(`resume: no image to resume: a restore of image \w+ on /dev/vda started at an earlier boot and did not finish`, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m2, time.Minute, "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	return m2.Wait(time.Minute)
}

// doubleResumeRefused: after a successful resume the image is spent; the
// next boot must not resume it again.
func doubleResumeRefused(s *S) error {
	h, err := hibernateOnce(s, "")
	if err != nil {
		return err
	}
	m, err := h.bootResume(s, "resume")
	if err != nil {
		return err
	}
	if err := h.expectResumed(m); err != nil {
		return err
	}
	m2, err := h.bootResume(s, "resume-again")
	if err != nil {
		return err
	}
	if _, err := m2.Expect(`resume: no image to resume: image \w+ on /dev/vda was already used or refused \(invalidated\)`, 5*time.Minute); err != nil {
		return err
	}
	if err := expectAll(m2, time.Minute, "HIB resume rc=0", "HIB booted normally", "E2E exit rc=0"); err != nil {
		return err
	}
	return m2.Wait(time.Minute)
}

// normalBootRefusesCorrupt expects m's normal boot to refuse a corrupt
// image, say what is corrupt and boot on; it returns the refusal.
func normalBootRefusesCorrupt(m *vm.Machine) (string, error) {
	refusal, err := m.Expect(`resume: (image \w+ on /dev/vda is not resumable, booting normally: .*)`, 5*time.Minute)
	if err != nil {
		return "", err
	}
	if !strings.Contains(refusal[1], "image is corrupt") {
		return "", fmt.Errorf("refusal does not say what is corrupt: %q", refusal[1])
	}
	return refusal[1], expectAll(m, time.Minute, "HIB resume rc=1", "HIB booted normally", "E2E exit rc=0")
}
