package vm

// DebianRootfs returns a tar archive of a Debian bookworm root file system
// with systemd as init (e2e/debian/rootfs.sh: debootstrap once, cached
// under CacheDir()/rootfs/ keyed by a hash of the script and its package
// list). Building it needs root and deb.debian.org.
func DebianRootfs() (string, error) {
	return script("e2e/debian/rootfs.sh")
}
