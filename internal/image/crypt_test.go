package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

var testKeyFile = []byte("0123456789abcdef0123456789abcdef-test-key")

func encryptedImage(t testing.TB, s Secret) ([]byte, Source, []byte) {
	t.Helper()
	k, err := NewKey(s)
	if err != nil {
		t.Fatal(err)
	}
	mem := testMemory(7, 96<<10)
	clear(mem[32<<10 : 48<<10])
	src := RangeSource(bytes.NewReader(mem), []Range{{Start: 0, End: 40 << 10}, {Start: 48 << 10, End: 64 << 10}, {Start: 72 << 10, End: 96 << 10}})
	img, _ := writeImage(t, src, WithChunkSize(16<<10), WithThreads(2), WithKey(k))
	return img.b, src, mem
}

func verifyWith(img []byte, opts ...ReaderOption) error {
	r, err := Open(&memImage{b: img}, opts...)
	if err != nil {
		return err
	}
	_, err = r.Verify(context.Background(), WithThreads(1))
	return err
}

func TestEncryptedRoundTrip(t *testing.T) {
	for _, s := range []Secret{KeyFileSecret(testKeyFile), PassphraseSecret([]byte("correct horse battery staple"))} {
		img, src, mem := encryptedImage(t, s)
		if bytes.Contains(img, mem[:4096]) || bytes.Contains(img, []byte("kjump hibernates linux")) {
			t.Fatalf("%v: plaintext pages appear in the encrypted image", s)
		}
		r, err := Open(&memImage{b: img}, WithSecret(s))
		if err != nil || r.Status() != nil {
			t.Fatalf("%v: open %v, status %v", s, err, r.Status())
		}
		if info := r.Info(); info.Version != "6.0" || !strings.Contains(info.Encryption, s.Source().String()) {
			t.Fatalf("info: %+v", info)
		}
		sink := &sparseMem{}
		if _, err := r.Restore(context.Background(), sink); err != nil {
			t.Fatal(err)
		}
		expectRestored(t, src, sink.b)
		// The restore kernel gets only the derived key.
		r2, _ := Open(&memImage{b: img}, WithKey(r.Key()))
		if _, err := r2.Verify(context.Background()); err != nil {
			t.Fatalf("verify with the derived key: %v", err)
		}
	}
}

func TestEncryptedRefusals(t *testing.T) {
	img, _, _ := encryptedImage(t, KeyFileSecret(testKeyFile))
	var kr *KeyRequiredError
	if err := verifyWith(img); !errors.As(err, &kr) || !strings.Contains(err.Error(), "--key-file") {
		t.Fatalf("no key: %v", err)
	}
	other := bytes.Clone(testKeyFile)
	other[0] ^= 1
	if err := verifyWith(img, WithSecret(KeyFileSecret(other))); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("wrong key: %v", err)
	}
	var km *KeyMismatchError
	if err := verifyWith(img, WithSecret(PassphraseSecret([]byte("x")))); !errors.As(err, &km) {
		t.Fatalf("passphrase for a key file image: %v", err)
	}
	// A key derived for another image (another salt) is another key.
	k2, _ := NewKey(KeyFileSecret(testKeyFile))
	if err := verifyWith(img, WithKey(k2)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("other salt: %v", err)
	}
	// A plain image where an encrypted one is expected: the substitution
	// an attacker without the key can make.
	plain, _, _ := smallImage(t)
	if err := verifyWith(plain, WithSecret(KeyFileSecret(testKeyFile))); !errors.Is(err, ErrNotEncrypted) {
		t.Fatalf("plain image with a key: %v", err)
	}
	if err := verifyWith(plain); err != nil {
		t.Fatalf("plain image without a key must keep working: %v", err)
	}
}

// An attacker can change data and keep every checksum: the tags catch it.
func TestForgeryKeepingCRCs(t *testing.T) {
	s := WithSecret(KeyFileSecret(testKeyFile))
	img, _, _ := encryptedImage(t, KeyFileSecret(testKeyFile))
	r, _ := Open(&memImage{b: img}, s)
	n, bad := forgeChunk(t, img, entriesOf(t, r), 2)
	err := verifyWith(bad, s)
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Chunk != n || !strings.Contains(err.Error(), fmt.Sprintf("image forged or corrupt: chunk %d failed authentication", n)) {
		t.Fatalf("sum-preserving chunk forgery: %v", err)
	}
	// Resume's check before the point of no return catches it too.
	rb, _ := Open(&memImage{b: bad}, s)
	if _, err := rb.VerifyStored(context.Background()); !errors.As(err, &ae) || ae.Chunk != n {
		t.Fatalf("sum-preserving chunk forgery, VerifyStored: %v", err)
	}
	// The same on a plain image is only caught (if at all) by decoding.
	// Header: change the metadata and fix the CRC.
	bad = bytes.Clone(img)
	hdr := bad[:r.hdrLen]
	i := bytes.Index(hdr, []byte("6.1.0-test"))
	hdr[i] = '7'
	le.PutUint32(hdr[len(hdr)-crcLen:], crc(hdr[:len(hdr)-crcLen]))
	if err := verifyWith(bad, s); !errors.Is(err, ErrForged) || !strings.Contains(err.Error(), "header, index and commit record failed authentication") {
		t.Fatalf("header forgery: %v", err)
	}
	// Commit record: flip invalidated back to committed with a valid CRC.
	inv := &memImage{b: bytes.Clone(img)}
	if err := Invalidate(inv, s); err != nil {
		t.Fatal(err)
	}
	if err := verifyWith(inv.b, s); !errors.Is(err, ErrInvalidated) {
		t.Fatalf("invalidated: %v", err)
	}
	r3, _ := Open(inv, s)
	if _, err := r3.Verify(context.Background(), WithForce()); err != nil {
		t.Fatalf("invalidated --force: %v", err)
	}
	for _, at := range []int{len(inv.b) - commitArea, len(inv.b) - commitBlock} {
		cb := inv.b[at : at+commitLen]
		le.PutUint32(cb[12:], stateCommitted)
		le.PutUint32(cb[124:], crc(cb[:124]))
	}
	if err := verifyWith(inv.b, s); !errors.Is(err, ErrForged) {
		t.Fatalf("state flipped back to committed: %v", err)
	}
	// Invalidating needs the key.
	var kr *KeyRequiredError
	if err := Invalidate(&memImage{b: bytes.Clone(img)}); !errors.As(err, &kr) {
		t.Fatalf("invalidate without key: %v", err)
	}
}

// Every single-byte change of an encrypted image is refused, and no wrong
// byte reaches the sink.
func TestEncryptedEverySingleByteCorruptionDetected(t *testing.T) {
	s := KeyFileSecret(testKeyFile)
	img, _, mem := encryptedImage(t, s)
	bad := bytes.Clone(img)
	for off := range img {
		bad[off] = img[off] ^ 0x81
		r, err := Open(&memImage{b: bad}, WithSecret(s))
		if err == nil && off >= len(img)-commitArea {
			// A copy of the commit record: the other one counts.
			if r.Status() != nil {
				t.Fatalf("byte %d: one damaged commit record copy made the image unusable: %v", off, r.Status())
			}
		} else if err == nil {
			_, verr := r.Verify(context.Background(), WithThreads(1))
			_, serr := r.VerifyStored(context.Background(), WithThreads(1))
			sink := &sparseMem{}
			_, rerr := r.Restore(context.Background(), sink, WithThreads(1), WithForce())
			if verr == nil || serr == nil || rerr == nil {
				t.Fatalf("byte %d: not detected (%v, %v, %v)", off, verr, serr, rerr)
			}
			for i, b := range sink.b {
				if b != 0 && b != mem[i] {
					t.Fatalf("byte %d: wrong byte restored at %#x", off, i)
				}
			}
		}
		bad[off] = img[off]
	}
}

func TestKeyStringRedacted(t *testing.T) {
	k, _ := NewKey(KeyFileSecret(testKeyFile))
	for _, s := range []string{k.String(), KeyFileSecret(testKeyFile).String()} {
		if strings.Contains(s, string(testKeyFile)) || strings.Contains(s, string(k.Master)) {
			t.Fatalf("key leaks into %q", s)
		}
	}
	if _, err := NewKey(KeyFileSecret([]byte("short"))); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom") {
		t.Fatalf("short key file: %v", err)
	}
}
