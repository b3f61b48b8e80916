package image

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"hash"

	"golang.org/x/crypto/argon2"
)

// Encryption (format major 2): every chunk's compressed pages are sealed
// with AES-256-GCM; the header, index and commit record are authenticated
// by an HMAC-SHA256 stored in the commit record's digest field. See
// docs/image-format.md and docs/security.md.
//
// Key hierarchy:
//
//	secret (key file contents | passphrase)
//	  -> master key M (32 bytes): HKDF-SHA256(secret, salt) | Argon2id(passphrase, salt, t, m, p)
//	     salt: 32 random bytes per image, in the header
//	  -> per image, HKDF-SHA256(M, salt = image id, info = purpose):
//	     chunk key (AES-256-GCM), MAC key (HMAC-SHA256), key check value
//
// Only M crosses the handoff area (to the helper and restore kernels); the
// secret never leaves the process that read it.

// KeySource says how the master key is derived from the user's secret.
type KeySource uint32

const (
	KeySourceFile       KeySource = 1 // key file, HKDF-SHA256
	KeySourcePassphrase KeySource = 2 // passphrase, Argon2id
)

func (s KeySource) String() string {
	switch s {
	case KeySourceFile:
		return "key file"
	case KeySourcePassphrase:
		return "passphrase"
	}
	return fmt.Sprintf("key source %d", uint32(s))
}

const (
	cipherAES256GCM = 1
	encBlockLen     = 128 // header bytes after the fixed part in major 2
	saltLen         = 32
	keyLen          = 32
	kcvLen          = 32
	gcmTagLen       = 16

	// Argon2id defaults: RFC 9106's second recommendation (64 MiB, 3 passes,
	// 4 lanes). Parsed limits keep a forged header from making resume use
	// more than 1 GiB or run for minutes.
	argonTime      = 3
	argonMemoryKiB = 64 << 10
	argonThreads   = 4
	// The caps are what a boot can afford: resume derives the key in the
	// initramfs of a machine that may have little RAM, on every boot with
	// an image, so a forged header must not make it allocate more than the
	// default (the 64 MiB a reader may use on any input) or run for more
	// than a few seconds.
	maxArgonTime    = 8
	maxArgonMemKiB  = argonMemoryKiB
	maxArgonThreads = 16

	// MinKeyFileLen is the shortest key file accepted: 256 bits.
	MinKeyFileLen = 32
	// MaxKeyFileLen bounds what is read from a key file.
	MaxKeyFileLen = 4096
)

// Secret is what the user holds: a key file's contents or a passphrase.
type Secret struct {
	source KeySource
	b      []byte
}

// KeyFileSecret wraps the contents of a key file (at least MinKeyFileLen bytes).
func KeyFileSecret(b []byte) Secret { return Secret{KeySourceFile, b} }

// PassphraseSecret wraps a passphrase.
func PassphraseSecret(b []byte) Secret { return Secret{KeySourcePassphrase, b} }

// Source says whether s came from a key file or a passphrase.
func (s Secret) Source() KeySource { return s.source }

// Wipe overwrites the secret in memory.
func (s Secret) Wipe() { clear(s.b) }

func (s Secret) String() string { return "image.Secret(" + s.source.String() + ", redacted)" }

// Key is a master key with the parameters that derive it from the secret.
// It is JSON so resume and hibernate can hand it to the restore and helper
// kernels through the handoff area; String redacts it for logs.
type Key struct {
	Source    KeySource `json:"source"`
	Salt      []byte    `json:"salt"`
	Time      uint32    `json:"time,omitempty"`       // Argon2id passes
	MemoryKiB uint32    `json:"memory_kib,omitempty"` // Argon2id memory
	Threads   uint32    `json:"threads,omitempty"`    // Argon2id lanes
	Master    []byte    `json:"master"`
}

func (k *Key) String() string {
	if k == nil {
		return "no key"
	}
	return fmt.Sprintf("%s key (salt %x…, redacted)", k.Source, k.Salt[:min(4, len(k.Salt))])
}

// Wipe overwrites the master key in memory.
func (k *Key) Wipe() {
	if k != nil {
		clear(k.Master)
	}
}

// NewKey derives a master key for a new image from s with a fresh salt.
func NewKey(s Secret) (*Key, error) {
	p := encParams{Source: s.source, Time: argonTime, MemoryKiB: argonMemoryKiB, Threads: argonThreads}
	if s.source == KeySourceFile {
		p.Time, p.MemoryKiB, p.Threads = 0, 0, 0
	}
	if _, err := rand.Read(p.Salt[:]); err != nil {
		return nil, fmt.Errorf("salt: %w", err)
	}
	return deriveKey(s, p)
}

// encParams is the header's encryption block minus the key check value.
type encParams struct {
	Source                   KeySource
	Time, MemoryKiB, Threads uint32
	Salt                     [saltLen]byte
	KCV                      [kcvLen]byte
}

func deriveKey(s Secret, p encParams) (*Key, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	k := &Key{Source: p.Source, Salt: p.Salt[:], Time: p.Time, MemoryKiB: p.MemoryKiB, Threads: p.Threads}
	switch {
	case s.source != p.Source:
		return nil, &KeyMismatchError{Have: s.source, Need: p.Source}
	case p.Source == KeySourceFile:
		if len(s.b) < MinKeyFileLen {
			return nil, fmt.Errorf("key file holds %d bytes, fewer than the %d needed: make one with 'head -c 32 /dev/urandom > FILE; chmod 600 FILE'", len(s.b), MinKeyFileLen)
		}
		m, err := hkdf.Key(sha256.New, s.b, p.Salt[:], "kjump image master key v2", keyLen)
		if err != nil {
			return nil, err
		}
		k.Master = m
	default:
		if len(s.b) == 0 {
			return nil, fmt.Errorf("empty passphrase")
		}
		k.Master = argon2.IDKey(s.b, p.Salt[:], p.Time, p.MemoryKiB, uint8(p.Threads), keyLen)
	}
	return k, nil
}

func (p *encParams) check() error {
	switch p.Source {
	case KeySourceFile:
		if p.Time != 0 || p.MemoryKiB != 0 || p.Threads != 0 {
			return fmt.Errorf("key file images carry no Argon2id parameters")
		}
	case KeySourcePassphrase:
		if p.Time < 1 || p.Time > maxArgonTime || p.MemoryKiB < 8*p.Threads || p.MemoryKiB > maxArgonMemKiB || p.Threads < 1 || p.Threads > maxArgonThreads {
			return fmt.Errorf("Argon2id parameters t=%d m=%d KiB p=%d outside the accepted t<=%d, m<=%d KiB, 1<=p<=%d", p.Time, p.MemoryKiB, p.Threads, maxArgonTime, maxArgonMemKiB, maxArgonThreads)
		}
	default:
		return fmt.Errorf("unknown key source %d", uint32(p.Source))
	}
	return nil
}

func (k *Key) params() (encParams, error) {
	p := encParams{Source: k.Source, Time: k.Time, MemoryKiB: k.MemoryKiB, Threads: k.Threads}
	if len(k.Salt) != saltLen || len(k.Master) != keyLen {
		return p, fmt.Errorf("malformed key: salt %d bytes, master key %d bytes", len(k.Salt), len(k.Master))
	}
	copy(p.Salt[:], k.Salt)
	return p, p.check()
}

// sameParams reports whether k was derived with the header's parameters.
func (k *Key) sameParams(p encParams) bool {
	q, err := k.params()
	return err == nil && q.Source == p.Source && q.Time == p.Time && q.MemoryKiB == p.MemoryKiB && q.Threads == p.Threads && q.Salt == p.Salt
}

// imageKeys are one image's working keys, derived from M and the image id.
type imageKeys struct {
	aead cipher.AEAD
	mac  []byte
	kcv  [kcvLen]byte
}

func newImageKeys(master []byte, id [16]byte) (*imageKeys, error) {
	sub := func(purpose string, n int) []byte {
		b, err := hkdf.Key(sha256.New, master, id[:], "kjump image v2 "+purpose, n)
		if err != nil {
			panic(err) // only for n > 255*32
		}
		return b
	}
	ck := sub("chunk key", keyLen)
	defer clear(ck)
	block, err := aes.NewCipher(ck)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	k := &imageKeys{aead: aead, mac: sub("mac key", keyLen)}
	copy(k.kcv[:], sub("key check value", kcvLen))
	return k, nil
}

// chunkNonce is unique per (image key, chunk): the chunk key is derived
// from the random image id, so no two images share it, and a chunk's slot
// number appears at most once per image (slots strictly increase). The
// leading 1 is the record type, leaving room for other sealed records.
func chunkNonce(slot uint32) []byte {
	n := make([]byte, 12)
	le.PutUint32(n[0:], 1)
	le.PutUint32(n[4:], slot)
	return n
}

// mac authenticates header ‖ index ‖ commit bytes 0..71 (everything in the
// commit record before the digest field, the state included).
func (k *imageKeys) macOf(hdr, idx, commitHead []byte) [commitDigestLen]byte {
	m := hmac.New(sha256.New, k.mac)
	m.Write(hdr)
	m.Write(idx)
	m.Write(commitHead)
	var out [commitDigestLen]byte
	m.Sum(out[:0])
	return out
}

// newMAC starts macOf for a reader that feeds the index in pieces.
func (k *imageKeys) newMAC() hash.Hash { return hmac.New(sha256.New, k.mac) }

func (k *imageKeys) checkKCV(p encParams) bool {
	return subtle.ConstantTimeCompare(k.kcv[:], p.KCV[:]) == 1
}

// encodeEncBlock lays out the encryption block that follows the fixed header.
//
//	off len field
//	  0   4 cipher (1 = AES-256-GCM)
//	  4   4 key source (1 key file, 2 passphrase)
//	  8   4 Argon2id passes (0 for key files)
//	 12   4 Argon2id memory KiB
//	 16   4 Argon2id lanes
//	 20   4 reserved, zero
//	 24  32 salt
//	 56  32 key check value
//	 88  40 reserved, zero
func encodeEncBlock(b []byte, p *encParams) {
	le.PutUint32(b[0:], cipherAES256GCM)
	le.PutUint32(b[4:], uint32(p.Source))
	le.PutUint32(b[8:], p.Time)
	le.PutUint32(b[12:], p.MemoryKiB)
	le.PutUint32(b[16:], p.Threads)
	copy(b[24:56], p.Salt[:])
	copy(b[56:88], p.KCV[:])
}

func parseEncBlock(b []byte) (*encParams, error) {
	if c := le.Uint32(b[0:]); c != cipherAES256GCM {
		return nil, corrupt("header", headerFixedLen, "unknown cipher %d: this image needs a newer kjump", c)
	}
	p := &encParams{Source: KeySource(le.Uint32(b[4:])), Time: le.Uint32(b[8:]), MemoryKiB: le.Uint32(b[12:]), Threads: le.Uint32(b[16:])}
	copy(p.Salt[:], b[24:56])
	copy(p.KCV[:], b[56:88])
	if !allZero(b[20:24]) || !allZero(b[88:encBlockLen]) {
		return nil, corrupt("header", headerFixedLen+20, "reserved encryption bytes are not zero")
	}
	if err := p.check(); err != nil {
		return nil, corrupt("header", headerFixedLen+4, "%v", err)
	}
	return p, nil
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
