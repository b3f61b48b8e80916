package vm

// bootArgs are QEMU's boot options: -kernel and -append for a direct
// kernel boot, or, without Config.Kernel, the firmware (SeaBIOS) booting
// the first disk's MBR, whose boot loader picks the kernel and its
// command line as on a real machine.
func bootArgs(cfg Config, appendLine string) []string {
	if cfg.Kernel == "" {
		return []string{"-boot", "order=c,strict=on"}
	}
	return []string{"-kernel", cfg.Kernel, "-append", appendLine}
}

// DebianBootDisk returns a raw disk image that boots like an installed
// machine: an MBR partition table, GRUB for BIOS in the MBR gap, and the
// Debian bookworm system of DebianRootfs("initramfs-tools") plus grub-pc
// on its one ext4 partition (label kjroot), GRUB's menu on the serial
// console. It holds no kernel: a scenario installs one into a copy and
// runs update-grub. e2e/debian/disk.sh builds it once and caches it under
// CacheDir()/disk/. Building it needs root and deb.debian.org.
func DebianBootDisk() (string, error) {
	return script("e2e/debian/disk.sh")
}
