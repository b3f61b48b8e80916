// Package bootentry reads Boot Loader Specification entries
// (loader/entries/*.conf), what systemd-boot and GRUB's blscfg boot and
// kernel-install writes: both hibernate check (what the next boot's command
// line is) and hibernate setup (did kernel-install carry the reservation)
// read them the same way.
package bootentry

import "strings"

// Dirs are where distributions keep the entries, relative to the root.
var Dirs = []string{"/boot/loader/entries", "/efi/loader/entries", "/boot/efi/loader/entries"}

// Parse returns an entry's kernel release ("version") and its command line
// (every "options" line joined with spaces, as the specification says).
func Parse(entry []byte) (version, options string) {
	var opts []string
	for _, l := range strings.Split(string(entry), "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		switch k {
		case "version":
			version = strings.TrimSpace(v)
		case "options":
			opts = append(opts, strings.TrimSpace(v))
		}
	}
	return version, strings.Join(opts, " ")
}
