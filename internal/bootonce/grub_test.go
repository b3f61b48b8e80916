package bootonce

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kjump/kjump/internal/resolve"
)

// The entry names the kernel relative to its filesystem (a separate /boot
// or a btrfs subvolume) and escapes every $ for GRUB's parser.
func TestGrubEntry(t *testing.T) {
	e := Entry{Linux: "/boot/kjump/helper.bzImage", Initrd: "/boot/kjump/helper.cpio.gz",
		Options: []string{"console=ttyS0", "memmap=1023K$0x100000", "memmap=2G$0x8000000", "kjump.direct=0x7000000-0x8000000", "kjump.resume=PARTLABEL=kjump"},
		Target:  "PARTLABEL=kjump"}
	for _, c := range []struct {
		name  string
		mount resolve.Mount
		path  string
	}{
		{"root", resolve.Mount{Point: "/", Root: "/", FSType: "ext4", Source: "/dev/vda1"}, "/boot/kjump/helper.bzImage"},
		{"separate /boot", resolve.Mount{Point: "/boot", Root: "/", FSType: "ext4", Source: "/dev/vda1"}, "/kjump/helper.bzImage"},
		{"btrfs subvolume", resolve.Mount{Point: "/", Root: "/@", FSType: "btrfs", Source: "/dev/vda1"}, "/@/boot/kjump/helper.bzImage"},
	} {
		text, err := grubEntry(e, func(string) (resolve.Mount, error) { return c.mount, nil },
			func(string) (string, error) { return "0f1e-uuid", nil })
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for _, want := range []string{"--id " + ID + " {", "search --no-floppy --fs-uuid --set=root 0f1e-uuid",
			"\tlinux " + c.path + " console=ttyS0 memmap=1023K\\$0x100000 memmap=2G\\$0x8000000 kjump.direct=0x7000000-0x8000000 kjump.resume=PARTLABEL=kjump\n",
			"\tinitrd " + strings.TrimSuffix(c.path, "helper.bzImage") + "helper.cpio.gz\n"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: entry lacks %q:\n%s", c.name, want, text)
			}
		}
	}
	spaced := e
	spaced.Linux = "/boot/my kernels/helper"
	if _, err := grubEntry(spaced, func(string) (resolve.Mount, error) { return resolve.Mount{Point: "/", Root: "/", FSType: "ext4"}, nil },
		func(string) (string, error) { return "u", nil }); err == nil || !strings.Contains(err.Error(), "plain characters") {
		t.Errorf("a path with a space: %v, want a refusal", err)
	}
	if _, err := grubEntry(e, func(string) (resolve.Mount, error) {
		return resolve.Mount{Point: "/", Root: "/", FSType: "ext4", Source: "/dev/mapper/vg-root"}, nil
	}, func(string) (string, error) { return "u", nil }); err == nil || !strings.Contains(err.Error(), "LVM") {
		t.Errorf("/boot on LVM: %v, want a refusal", err)
	}
	_, err := grubEntry(e, func(string) (resolve.Mount, error) {
		return resolve.Mount{Point: "/", Root: "/", FSType: "zfs", Source: "rpool/root"}, nil
	}, func(string) (string, error) { return "x", nil })
	if err == nil || !strings.Contains(err.Error(), "not zfs") {
		t.Errorf("zfs /boot: %v, want a refusal naming zfs", err)
	}
}

// The script grub-mkconfig runs is valid shell and yields the block with
// GRUB_DEFAULT as the fallback, saved entries followed by variable.
func TestGrubScript(t *testing.T) {
	p := filepath.Join(t.TempDir(), "42_kjump_direct")
	if err := os.WriteFile(p, []byte(GrubScriptText()), 0o755); err != nil {
		t.Fatal(err)
	}
	for def, want := range map[string]string{"": `set fallback="0"`, "2": `set fallback="2"`, "saved": `set fallback="${saved_entry}"`} {
		cmd := exec.Command("sh", p)
		cmd.Env = append(os.Environ(), "GRUB_DEFAULT="+def)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("GRUB_DEFAULT=%q: %v", def, err)
		}
		s := string(out)
		for _, w := range []string{grubMarker, `if [ "${default}" = kjump-direct ]; then`, "load_env next_entry", `source "${prefix}/kjump-direct.cfg"`, want} {
			if !strings.Contains(s, w) {
				t.Errorf("GRUB_DEFAULT=%q: output lacks %q:\n%s", def, w, s)
			}
		}
	}
}

// Arm writes the entry file and next_entry; FindGRUB knows a grub.cfg
// by the block.
func TestArm(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "boot/grub")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "grub.cfg"), []byte("menuentry x {}\n"), 0o644)
	if FindGRUB(root) != nil {
		t.Fatal("a grub.cfg without the block was taken")
	}
	os.WriteFile(filepath.Join(dir, "grub.cfg"), []byte("menuentry x {}\n"+grubMarker+"\n"), 0o644)
	g := FindGRUB(root)
	if g == nil || g.Dir != dir {
		t.Fatalf("FindGRUB = %+v", g)
	}
	e := Entry{Linux: "/proc/self/exe", Initrd: "/proc/self/exe", Options: []string{"a"}, Target: "/dev/x"}
	if err := g.Arm(e); err == nil || !strings.Contains(err.Error(), "grub-editenv") {
		t.Fatalf("Arm without grubenv: %v, want the command that creates it", err)
	}
}
