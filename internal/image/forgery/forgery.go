// Package forgery makes the changes an attacker without the key can make
// to an image, for tests that prove encrypted images refuse them. CRC32C
// is linear, so anyone can change data without changing its checksum;
// only the authentication tags stop that.
package forgery

import (
	"errors"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// FlipKeepingCRC XORs x into b[at] and then changes the four bytes at
// b[fix:fix+4] so that the CRC32C of b is what it was before. fix must not
// overlap at.
func FlipKeepingCRC(b []byte, at int, x byte, fix int) error {
	if fix < 0 || fix+4 > len(b) || at < 0 || at >= len(b) || (at >= fix && at < fix+4) || x == 0 {
		return errors.New("forgery: positions out of range or overlapping")
	}
	want := crc32.Checksum(b, castagnoli)
	b[at] ^= x
	// For a fixed length, crc(b ^ d) = crc(b) ^ L(d) with L linear over
	// GF(2): solve L(d) = crc(b) ^ want for d inside the 4-byte window.
	base := crc32.Checksum(b, castagnoli)
	var cols [32]uint32
	for j := range 32 {
		b[fix+j/8] ^= 1 << (j % 8)
		cols[j] = crc32.Checksum(b, castagnoli) ^ base
		b[fix+j/8] ^= 1 << (j % 8)
	}
	target := base ^ want
	// Gaussian elimination: rows are the 32 output bits, unknowns the 32
	// window bits, solved as (column combos) tracking which bits make each.
	var basis [32]uint32 // basis[i]: a combination of columns with leading bit i
	var how [32]uint32   // which window bits make basis[i]
	for j := range 32 {
		v, h := cols[j], uint32(1)<<j
		for i := 31; i >= 0; i-- {
			if v>>i&1 == 0 {
				continue
			}
			if basis[i] == 0 {
				basis[i], how[i] = v, h
				break
			}
			v, h = v^basis[i], h^how[i]
		}
	}
	var sol uint32
	for i := 31; i >= 0; i-- {
		if target>>i&1 == 0 {
			continue
		}
		if basis[i] == 0 {
			return errors.New("forgery: window cannot compensate")
		}
		target, sol = target^basis[i], sol^how[i]
	}
	for j := range 32 {
		if sol>>j&1 == 1 {
			b[fix+j/8] ^= 1 << (j % 8)
		}
	}
	if crc32.Checksum(b, castagnoli) != want {
		return errors.New("forgery: CRC not preserved")
	}
	return nil
}
