package fsstate

import (
	"crypto/sha256"
	"fmt"
)

// btrfs proves its state by its superblock: every transaction commit
// writes it with a higher generation, and an fsync that only writes the
// log tree writes it with a new log root. Its whole hash is compared.
func readBtrfs(d *disk) (state, error) {
	sb, err := d.read(64<<10, 4096, 0)
	if err != nil {
		return state{}, err
	}
	if string(sb[0x40:0x48]) != "_BHRfS_M" {
		return state{}, fmt.Errorf("%s holds no btrfs superblock", d.name)
	}
	sum := sha256.Sum256(sb)
	return state{uuid: uuidString(sb[0x20:0x30]),
		gen: fmt.Sprintf("generation=%d log_root=%d sb=%x", le.Uint64(sb[0x48:]), le.Uint64(sb[0x60:]), sum[:6])}, nil
}
