package vm

// DebianRootfs returns a tar archive of a Debian bookworm root file system
// with systemd as init and the initramfs generator given
// ("initramfs-tools" or "dracut"): e2e/debian/rootfs.sh debootstraps it
// once and caches it under CacheDir()/rootfs/, keyed by a hash of the
// script (which holds the package list) and the generator. Building it
// needs root and deb.debian.org.
func DebianRootfs(generator string) (string, error) {
	return script("e2e/debian/rootfs.sh", generator)
}
