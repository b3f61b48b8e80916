// Package forgery makes the changes an attacker without the key can make
// to an image, for tests that prove encrypted images refuse them. A chunk
// record's checksum is XXH64 (low 32 bits), which is no obstacle: every
// step after the last 32-byte stripe is invertible, so eight bytes there
// can be chosen to give any sum. Only the authentication tags stop that.
package forgery

import (
	"encoding/binary"
	"errors"
	"math/bits"
)

// XXH64's primes (the algorithm's published constants).
const (
	p1 uint64 = 11400714785074694791
	p2 uint64 = 14029467366897019727
	p3 uint64 = 1609587929392839161
	p4 uint64 = 9650029242287828579
	p5 uint64 = 2870177450012600261
)

var le = binary.LittleEndian

// FlipKeepingSum XORs x into b[at] and then rewrites the first eight bytes
// after b's last 32-byte stripe so that XXH64 of b (seed 0) is what it was
// before. It returns where those eight bytes start; it fails when fewer
// than eight bytes follow the last stripe (len(b)%32 < 8) or at lies
// among them.
func FlipKeepingSum(b []byte, at int, x byte) (int, error) {
	fix := len(b) - len(b)%32
	if len(b)%32 < 8 || at < 0 || at >= len(b) || (at >= fix && at < fix+8) || x == 0 {
		return 0, errors.New("forgery: no eight bytes after the last stripe, or the flip lies among them")
	}
	want := Sum64(b)
	b[at] ^= x
	h := stripes(b[:fix], uint64(len(b)))
	// Undo, from the wanted sum back, every step after the fixed lane.
	need := unavalanche(want)
	tail := b[fix+8:]
	var steps []func(uint64) uint64
	for len(tail) >= 8 {
		k := round(0, le.Uint64(tail))
		steps = append(steps, func(h uint64) uint64 { return unlane(h) ^ k })
		tail = tail[8:]
	}
	if len(tail) >= 4 {
		k := uint64(le.Uint32(tail)) * p1
		steps = append(steps, func(h uint64) uint64 { return bits.RotateLeft64((h-p3)*inv2, -23) ^ k })
		tail = tail[4:]
	}
	for _, c := range tail {
		k := uint64(c) * p5
		steps = append(steps, func(h uint64) uint64 { return bits.RotateLeft64(h*inv1, -11) ^ k })
	}
	for i := len(steps) - 1; i >= 0; i-- {
		need = steps[i](need)
	}
	// need = rotl(h ^ round(0, lane), 27)*p1 + p4: solve for the lane.
	r := unlane(need) ^ h
	lane := bits.RotateLeft64(r*inv1, -31) * inv2
	le.PutUint64(b[fix:], lane)
	if Sum64(b) != want {
		return 0, errors.New("forgery: sum not preserved")
	}
	return fix, nil
}

// Sum64 is XXH64 with seed 0.
func Sum64(b []byte) uint64 {
	fix := len(b) - len(b)%32
	h := stripes(b[:fix], uint64(len(b)))
	tail := b[fix:]
	for len(tail) >= 8 {
		h = bits.RotateLeft64(h^round(0, le.Uint64(tail)), 27)*p1 + p4
		tail = tail[8:]
	}
	if len(tail) >= 4 {
		h = bits.RotateLeft64(h^uint64(le.Uint32(tail))*p1, 23)*p2 + p3
		tail = tail[4:]
	}
	for _, c := range tail {
		h = bits.RotateLeft64(h^uint64(c)*p5, 11) * p1
	}
	h ^= h >> 33
	h *= p2
	h ^= h >> 29
	h *= p3
	h ^= h >> 32
	return h
}

// stripes is XXH64's state after the 32-byte stripes of b (a multiple of
// 32 bytes) and the total length n.
func stripes(b []byte, n uint64) uint64 {
	if len(b) == 0 {
		return p5 + n
	}
	q1, q2 := p1, p2 // variables: the seed's sums wrap around
	v1, v2, v3, v4 := q1+q2, q2, uint64(0), -q1
	for ; len(b) >= 32; b = b[32:] {
		v1 = round(v1, le.Uint64(b))
		v2 = round(v2, le.Uint64(b[8:]))
		v3 = round(v3, le.Uint64(b[16:]))
		v4 = round(v4, le.Uint64(b[24:]))
	}
	h := bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) + bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
	for _, v := range []uint64{v1, v2, v3, v4} {
		h = (h^round(0, v))*p1 + p4
	}
	return h + n
}

func round(acc, in uint64) uint64 { return bits.RotateLeft64(acc+in*p2, 31) * p1 }

// unlane undoes an 8-byte tail lane's step, h = rotl(h ^ k, 27)*p1 + p4,
// up to the XOR with k.
func unlane(h uint64) uint64 { return bits.RotateLeft64((h-p4)*inv1, -27) }

var inv1, inv2, inv3 = inverse(p1), inverse(p2), inverse(p3)

// unavalanche inverts XXH64's final mixing.
func unavalanche(h uint64) uint64 {
	h = unshift(h, 32)
	h *= inv3
	h = unshift(h, 29)
	h *= inv2
	return unshift(h, 33)
}

// unshift inverts h ^= h >> s.
func unshift(y uint64, s uint) uint64 {
	x := y
	for i := uint(0); i < 64; i += s {
		x = y ^ x>>s
	}
	return x
}

// inverse is the multiplicative inverse of odd a modulo 2^64 (Newton's
// iteration doubles the correct low bits each step).
func inverse(a uint64) uint64 {
	x := a
	for range 6 {
		x *= 2 - a*x
	}
	return x
}
