//go:build e2e

package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

// Real storage device classes (issue 18 section 3) on Debian's modular
// 6.12 kernel: QEMU's emulated xHCI + USB stick, NVMe and AHCI controllers.
// Across a jump each controller is frozen by the original, initialised from
// scratch by the helper (or restore) kernel from the modules 'hibernate
// prepare' put in its initramfs, and handed back to the original's restore
// callbacks; after the resume the original writes to and reads back from
// the device, and the host checks what reached the disk.
func init() {
	const k = "6.12" + distroSuffix
	register(Scenario{Name: "usb-stick-hibernate-resume", Timeout: 20 * time.Minute,
		Run: func(s *S) error { return classHibernateResume(s, k, usbStickBesideSATA) }})
	register(Scenario{Name: "usb-stick-by-path-hibernate-resume", Timeout: 20 * time.Minute,
		Run: func(s *S) error { return classHibernateResume(s, k, usbStickByPath) }})
	register(Scenario{Name: "usb-stick-pulled-jumps-back", Timeout: 20 * time.Minute,
		Run: func(s *S) error {
			return targetPulledJumpsBack(s, k, withClass(usbStick), withSlowImageDisk(stickWriteBPS))
		}})
	register(Scenario{Name: "nvme-root-hibernate-resume", Timeout: 20 * time.Minute,
		Run: func(s *S) error { return nvmeRootHibernateResume(s, k) }})
	register(Scenario{Name: "ahci-target-hibernate-resume", Timeout: 20 * time.Minute,
		Run: func(s *S) error { return classHibernateResume(s, k, sataDisk) }})
}

// stickWriteBPS is a slow USB 2 stick's write speed (QEMU throttling): the
// helper writes the ~150 MiB compressed image for long enough to pull the
// stick between its progress lines.
const stickWriteBPS = 4 << 20

// diskClass puts the image disk behind another controller than virtio.
// The disk has a GPT partition table; the image goes to the partition
// labelled label, named PARTLABEL=label (a raw target's filesystem UUID
// and LABEL do not survive the image, docs/setup.md), which the original,
// resume and the helper find whatever the kernel calls the disk.
type diskClass struct {
	bus   string // vm.BusUSB, vm.BusNVMe, vm.BusAHCI
	label string // GPT name of the image partition
	node  string // that partition's name in the original, e.g. /dev/sda1
	// modules: the drivers between the partition and the PCI bus (the
	// original also loads the virtio and ext4 ones of its data disk).
	modules kernelModules
	// rootMiB > 0: partition 1 holds the original's root filesystem
	// (ext4, rootNode), the image partition follows.
	rootMiB  int
	rootNode string
	// internal, if set, is the bus of a laptop's internal disk (blank):
	// the original loads its driver first and names it sda, then the
	// class's drivers (modules.late), so the stick is sdb there. The
	// helper and restore kernels load only the stick's drivers and call it
	// helperNode: they must find it by its PARTLABEL, and name it to the
	// original as node.
	internal, helperNode string
	// byPath gives hibernate and resume the original's device path
	// (node) instead of PARTLABEL=: the helper must still find the
	// partition by the PARTUUID the original read off it.
	byPath bool
}

func withBoot(mods ...string) []string { return append(append([]string{}, bootModules...), mods...) }

var (
	// The USB stick of usbStick in a laptop with an internal SATA disk.
	usbStickBesideSATA = &diskClass{bus: vm.BusUSB, label: "kjstick", node: "/dev/sdb1", internal: vm.BusAHCI, helperNode: "/dev/sda1",
		modules: kernelModules{
			boot:   withBoot("ahci", "sd_mod"),
			late:   []string{"xhci_pci", "usb_storage"},
			helper: usbStick.modules.helper}}
	// The same stick given as /dev/sdb1, as a user types it.
	usbStickByPath = func() *diskClass { c := *usbStickBesideSATA; c.byPath = true; return &c }()
	// A USB stick: usb-storage (bulk-only, as QEMU's usb-storage; uas
	// drives only UAS devices) on an xHCI controller, a SCSI disk.
	usbStick = &diskClass{bus: vm.BusUSB, label: "kjstick", node: "/dev/sda1", modules: kernelModules{
		boot:   withBoot("xhci_pci", "usb_storage", "sd_mod"),
		helper: []string{"xhci_pci", "xhci_hcd", "usb_storage", "sd_mod"}}}
	// A SATA disk on an AHCI controller (libata, a SCSI disk).
	sataDisk = &diskClass{bus: vm.BusAHCI, label: "kjsata", node: "/dev/sda1", modules: kernelModules{
		boot:   withBoot("ahci", "sd_mod"),
		helper: []string{"ahci", "sd_mod"}}}
	// An NVMe disk holding the original's root filesystem and, in a
	// second partition, the image. One disk: two NVMe controllers probe
	// asynchronously, so which one is nvme0 may differ between the
	// original and the helper kernel.
	nvmeRoot = &diskClass{bus: vm.BusNVMe, label: "kjimage", node: "/dev/nvme0n1p2", rootMiB: 512, rootNode: "/dev/nvme0n1p1",
		modules: kernelModules{boot: withBoot("nvme"), helper: []string{"nvme"}}}
)

// withClass puts the image disk behind c's controller.
func withClass(c *diskClass) hibOption { return func(o *hibSetup) { o.class = c } }

// imageOffset is where the image partition starts on the disk.
func (c *diskClass) imageOffset() int64 { return int64(1+c.rootMiB) << 20 }

// createDisk makes the disk: a GPT with the root partition (if any, with
// an empty ext4) and the image partition of imageMiB.
func (c *diskClass) createDisk(path string, imageMiB int) error {
	if err := vm.CreateDisk(path, c.rootMiB+imageMiB+2); err != nil {
		return err
	}
	table := "label: gpt\n"
	if c.rootMiB > 0 {
		table += fmt.Sprintf("start=2048, size=%dMiB, name=kjroot\n", c.rootMiB)
	}
	table += fmt.Sprintf("start=%d, size=%dMiB, name=%s\n", c.imageOffset()/512, imageMiB, c.label)
	cmd := exec.Command("sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", path)
	cmd.Stdin = strings.NewReader(table)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("sfdisk %s: %v: %s", path, err, out)
	}
	if c.rootMiB > 0 {
		out, err := exec.Command("mkfs.ext4", "-q", "-F", "-t", "ext4", "-L", "kjroot", "-E", "offset=1048576", path, fmt.Sprintf("%dM", c.rootMiB)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("mkfs.ext4 in %s: %v: %s", path, err, out)
		}
	}
	return nil
}

// boot wraps the machine's script: it waits for the class's partitions
// (USB and SCSI scanning are asynchronous), and with a root partition the
// initramfs copies itself there and switch_roots into it, running the
// script (stage2) from the disk, as a distribution's initramfs would after
// its resume hook found no image.
func (c *diskClass) boot(body string, files map[string]vm.File) (string, map[string]vm.File) {
	nodes := []string{c.node}
	if c.rootNode != "" {
		nodes = append(nodes, c.rootNode)
	}
	wait := ""
	if c.internal != "" {
		wait = `
i=0; while [ ! -b /dev/sda ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
echo "HIB internal disk: sda $(cat /sys/block/sda/device/vendor 2>/dev/null) $(cat /sys/block/sda/device/model 2>/dev/null)"
while read -r m; do insmod "$m" 2>/dev/null; done </etc/kjtest-late-modules
`
	}
	wait += fmt.Sprintf(`
for n in %s; do
  i=0; while [ ! -b $n ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
  [ -b $n ] && echo "HIB $n appeared within $((i/10))s" || echo "HIB $n did not appear within 60s"
done
`, strings.Join(nodes, " "))
	if c.rootMiB == 0 {
		return wait + body, files
	}
	files["kjtest-stage2"] = vm.File{Data: []byte(initPrelude + body + initEpilogue), Mode: 0o755}
	return wait + `
if grep -q kjtest=resume /proc/cmdline; then
` + body + `
fi
mkdir -p /newroot && mount -t ext4 ` + c.rootNode + ` /newroot || return 1
for d in /*; do
  case $d in /proc|/sys|/dev|/run|/tmp|/newroot) ;; *) cp -a $d /newroot/ || return 1 ;; esac
done
mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp
echo "HIB root: switching to ` + c.rootNode + ` ($(du -sm /newroot | cut -f1) MiB copied)"
exec switch_root /newroot /kjtest-stage2
`, files
}

// deviceCheck runs in the resumed original: 1 MiB of random data written
// to the last MiB of partition dev and read back, both with O_DIRECT, so
// that the restored driver really moves the data (checked on the host by
// hostCheck).
func deviceCheck(dev string) string {
	return strings.ReplaceAll(`
n=$(( $(cat /sys/class/block/$(basename DEV)/size) / 2048 - 1 ))
head -c 1048576 /dev/urandom > /tmp/devcheck
dd if=/tmp/devcheck of=DEV bs=1M seek=$n count=1 oflag=direct conv=fsync 2>/dev/null; w=$?
r=$(dd if=DEV bs=1M skip=$n count=1 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
echo "HIB device DEV after resume: write rc=$w sha=$(sha256sum /tmp/devcheck | cut -d' ' -f1) read=$r at MiB $n"
echo "HIB block errors=$(dmesg | grep -cE 'I/O error|EXT4-fs error|critical medium error|rejecting I/O')"
`, "DEV", dev)
}

// hostCheck reads what deviceCheck wrote from the disk image, after the
// resumed machine powered off.
func (c *diskClass) hostCheck(h *hibernated, m *vm.Machine) error {
	con := m.Console()
	sm := matchAll(`HIB device (\S+) after resume: write rc=(\d+) sha=(\w+) read=(\w*) at MiB (\d+)`, con)
	if sm == nil {
		return fmt.Errorf("no device check after the resume")
	}
	if sm[1] != c.node || sm[2] != "0" || sm[3] != sm[4] {
		return fmt.Errorf("the resumed original could not write and read back %s: %s", c.node, sm[0])
	}
	if n, _ := match(`HIB block errors=(\d+)`, con); n != "0" {
		return fmt.Errorf("the resumed original logged %s block I/O errors", n)
	}
	f, err := os.Open(h.imageDisk)
	if err != nil {
		return err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, io.NewSectionReader(f, c.imageOffset()+int64(atoi(sm[5]))<<20, 1<<20)); err != nil {
		return err
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != sm[3] {
		return fmt.Errorf("the data the resumed original wrote to %s is not on the disk: sha %s, want %s", c.node, got, sm[3])
	}
	fmt.Printf("  %s: after the resume the original wrote 1 MiB to %s with O_DIRECT; the disk holds it\n", c.bus, c.node)
	return nil
}

// matchAll returns every submatch of the first match of re in text.
func matchAll(re, text string) []string { return regexp.MustCompile(re).FindStringSubmatch(text) }

// classHibernateResume is hibernate-resume with the image on c's disk:
// hibernate to PARTLABEL= (or the device path), power off, a new boot resumes from it (resume
// and the restore kernel load c's drivers), and the resumed original
// still drives the disk.
func classHibernateResume(s *S, version string, c *diskClass) error {
	check := func(h *hibernated, m *vm.Machine) error {
		if c.helperNode != "" {
			// Both the helper and the restore kernel found the stick
			// under another name than the original's.
			renamed := fmt.Sprintf("target %s is %s in this kernel (%s in the original's)", h.target, c.helperNode, c.node)
			for what, con := range map[string]string{"helper": h.consoleText, "restore kernel": m.Console()} {
				if !strings.Contains(con, renamed) {
					return fmt.Errorf("the %s did not say %q", what, renamed)
				}
			}
			fmt.Printf("  %s: helper and restore kernel: %s\n", s.Name, renamed)
		}
		return c.hostCheck(h, m)
	}
	return hibernateResumeWith(s, version, check, withClass(c), withScript("", deviceCheck(c.node)))
}

// nvmeRootHibernateResume: the original's root filesystem is ext4 on an
// NVMe disk (the initramfs switch_roots into it), with the workload's
// binary mapped from it and a shell holding a log file open on it,
// appending a line every second (as a logging daemon does; it does not
// sync: ext4 commits its journal every 5 s, and a commit between the
// stale-disk guard's fingerprint and the jump would rightly make resume
// refuse the image); the image goes to a second partition of that disk.
// After the resume the writer goes on through its open file descriptor,
// sync succeeds, the root is still mounted read-write, and the disk takes
// direct writes.
func nvmeRootHibernateResume(s *S, version string) error {
	const writer = `
mkdir -p /var/log
( exec 3>>/var/log/kjtest.log; while :; do echo "tick $(cat /run/kjump-workload/counter)" >&3; sleep 1; done ) &
sleep 2
echo "HIB root writer: $(wc -l </var/log/kjtest.log) lines, workload binary on $(awk '$2=="/"{print $1}' /proc/mounts)"
`
	const after = `
n1=$(wc -l </var/log/kjtest.log); sleep 3; n2=$(wc -l </var/log/kjtest.log)
sync; echo "HIB root writer lines=$n1 then $n2, sync rc=$?"
echo "HIB root mount: $(awk '$2=="/"{print $1, $3, $4}' /proc/mounts)"
`
	check := func(h *hibernated, m *vm.Machine) error {
		con := m.Console()
		if root, ok := match(`HIB root writer: .*workload binary on (\S+)`, h.consoleText); !ok || root != nvmeRoot.rootNode {
			return fmt.Errorf("the original's root was not %s before hibernating (%q)", nvmeRoot.rootNode, root)
		}
		w := matchAll(`HIB root writer lines=(\d+) then (\d+), sync rc=(\d+)`, con)
		if w == nil || atoi(w[2]) <= atoi(w[1]) || w[3] != "0" {
			return fmt.Errorf("the log writer holding a file open on the NVMe root stopped after the resume, or sync failed (%v)", w)
		}
		// The stale-disk guard fingerprinted the root despite the
		// writer, and resume proved it unchanged.
		if !regexp.MustCompile(`resume: filesystems proven unchanged since the image: .*ext4 ` + nvmeRoot.rootNode).MatchString(con) {
			return fmt.Errorf("resume did not prove the NVMe root %s unchanged", nvmeRoot.rootNode)
		}
		mnt, _ := match(`HIB root mount: (.*)`, con)
		if !strings.HasPrefix(mnt, nvmeRoot.rootNode+" ext4 rw,") {
			return fmt.Errorf("the NVMe root after the resume: %q, want %s mounted ext4 rw", mnt, nvmeRoot.rootNode)
		}
		return nvmeRoot.hostCheck(h, m)
	}
	return hibernateResumeWith(s, version, check, withClass(nvmeRoot), withScript(writer, after+deviceCheck(nvmeRoot.node)))
}
