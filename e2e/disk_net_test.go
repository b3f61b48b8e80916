//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kjump/kjump/internal/vm"
)

func init() {
	register(Scenario{Name: "disk-ext4", Run: diskExt4})
	register(Scenario{Name: "net-pair", CPUs: 2, Run: netPair})
}

// diskExt4 checks the disk helpers and the kernel's virtio-blk/ext4: the
// guest reads a file from an image made by MakeExt4, writes one back, and
// writes raw bytes to a blank disk; the host reads both.
func diskExt4(s *S) error {
	kernel, err := vm.Kernel()
	if err != nil {
		return fmt.Errorf("test kernel: %w", err)
	}
	token := fmt.Sprintf("token-%d", time.Now().UnixNano())
	src := filepath.Join(s.Dir, "fs")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "in.txt"), []byte(token+"\n"), 0o644); err != nil {
		return err
	}
	fsImg, rawImg := filepath.Join(s.Dir, "fs.img"), filepath.Join(s.Dir, "raw.img")
	if err := vm.MakeExt4(fsImg, 64, "kjtest", src); err != nil {
		return err
	}
	if err := vm.CreateDisk(rawImg, 8); err != nil {
		return err
	}
	initrd, err := s.Initramfs(`
mount -t ext4 /dev/vda /mnt || return 1
echo "DISK read $(cat /mnt/sub/in.txt) label=$(dd if=/dev/vda bs=1 skip=1144 count=16 2>/dev/null | tr -d '\0')"  # ext4 s_volume_name
echo "from-guest $(cat /mnt/sub/in.txt)" >/mnt/out.txt
umount /mnt || return 1
echo "raw-$(cat /proc/sys/kernel/random/boot_id)" | dd of=/dev/vdb bs=4096 seek=1 conv=fsync 2>/dev/null
echo "DISK wrote boot_id $(cat /proc/sys/kernel/random/boot_id)"
`, nil)
	if err != nil {
		return err
	}
	m, err := s.Start(vm.Config{Kernel: kernel, Initrd: initrd, Disks: []string{fsImg, rawImg}})
	if err != nil {
		return err
	}
	if _, err := m.ExpectString("DISK read "+token+" label=kjtest", 3*time.Minute); err != nil {
		return err
	}
	sm, err := m.Expect(`DISK wrote boot_id (\S+)`, time.Minute)
	if err != nil {
		return err
	}
	if _, err := m.ExpectString("E2E exit rc=0", time.Minute); err != nil {
		return err
	}
	if err := m.Wait(time.Minute); err != nil {
		return err
	}
	out, err := exec.Command("debugfs", "-R", "cat /out.txt", fsImg).Output()
	if err != nil {
		return fmt.Errorf("debugfs: %w", err)
	}
	if got := strings.TrimSpace(string(out)); got != "from-guest "+token {
		return fmt.Errorf("file written by the guest reads %q", got)
	}
	raw, err := os.ReadFile(rawImg)
	if err != nil {
		return err
	}
	want := "raw-" + sm[1] + "\n"
	if got := string(raw[4096 : 4096+len(want)]); got != want {
		return fmt.Errorf("raw disk at 4096 holds %q, want %q", got, want)
	}
	return nil
}

// netPair connects two VMs through QEMU's socket netdev on 127.0.0.1 and
// sends a message from one to the other.
func netPair(s *S) error {
	kernel, err := vm.Kernel()
	if err != nil {
		return fmt.Errorf("test kernel: %w", err)
	}
	port, err := vm.FreePort()
	if err != nil {
		return err
	}
	const ifup = `
dev=$(ls /sys/class/net | grep -v '^lo$' | head -1)
ip link set lo up; ip link set "$dev" up; ip addr add "$ADDR/24" dev "$dev" || return 1
`
	listener, err := s.Initramfs(`ADDR=10.0.2.1`+ifup+`
echo "NET listening on $dev"
msg=$(nc -l -p 5000)
echo "NET got: $msg"
`, nil)
	if err != nil {
		return err
	}
	connector, err := s.Initramfs(`ADDR=10.0.2.2`+ifup+`
for i in $(seq 30); do ping -c 1 -W 2 10.0.2.1 >/dev/null && echo "NET ping ok" && break; done
for i in 1 2 3 4 5 6 7 8 9 10; do
	echo "hello from $ADDR" | nc -w 5 10.0.2.1 5000 && break
	sleep 1
done
echo "NET sent"
`, nil)
	if err != nil {
		return err
	}
	a, err := s.Start(vm.Config{Name: "a", Kernel: kernel, Initrd: listener, Net: &vm.Net{Listen: true, Port: port}})
	if err != nil {
		return err
	}
	// The connecting QEMU needs the listening one's socket, and the
	// guest's nc a configured peer: start it once the listener is ready.
	if _, err := a.ExpectString("NET listening on", 3*time.Minute); err != nil {
		return err
	}
	b, err := s.Start(vm.Config{Name: "b", Kernel: kernel, Initrd: connector, Net: &vm.Net{Port: port}})
	if err != nil {
		return err
	}
	if err := expectAll(b, 3*time.Minute, "NET ping ok", "NET sent", "E2E exit rc=0"); err != nil {
		return err
	}
	if err := expectAll(a, time.Minute, "NET got: hello from 10.0.2.2", "E2E exit rc=0"); err != nil {
		return err
	}
	if err := a.Wait(time.Minute); err != nil {
		return err
	}
	return b.Wait(time.Minute)
}
